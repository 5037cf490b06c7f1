"""``step=merge``: join the parts of a sharded ``step=mine`` into one output, in input order.

    python run.py -m step=mine shard.index='range(0,8)' shard.count=8 input=train.jsonl hydra.sweep.dir=parts/
    python run.py step=merge input=parts/ output=mined.jsonl

Each job folder of the multirun holds the job's ``summary.json``, which names its part and its shard. Every check
runs before anything is written: each shard of ``0..count-1`` present exactly once, every part mined with the
same settings but for the shard, every part on disk. JSON-lines parts are joined byte for byte (the joined file is
the single run's, byte for byte: each row's sampling is seeded by its input row number); parquet and saved-dataset
parts are joined as Arrow tables. ``NAME.rejected.jsonl`` parts (``miner.max_positive_rank``) are joined beside the
output the same way.

``datasets`` and ``pyarrow`` are imported inside the functions that use them: only table parts need them.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prep import contract
from prep.config.settings import settings_of
from prep.errors import UsageError
from prep.io import paths
from prep.io.atomic import atomic_file, ensure_writable
from prep.io.formats import container_of, write_saved_dataset
from prep.steps.frame import StepRun
from prep.steps.mine.shards import find_parts

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from prep.config.schema import Config

log = logging.getLogger(__name__)


def run(cfg: DictConfig | Config) -> dict[str, Any]:
    settings = settings_of(cfg)
    folder = paths.user_path(settings.input)
    if folder is None:
        raise UsageError("step=merge: input=FOLDER names the multirun folder of a sharded step=mine")
    parts = find_parts(folder)
    step = StepRun(settings, "merge", default_output=f"merged{parts[0].output.suffix}")
    taken = {path.resolve() for part in parts for path in (part.output, part.rejected) if path is not None}
    if step.output.resolve() in taken or paths.rejected_beside(step.output).resolve() in taken:
        raise UsageError(f"output={step.output}: that is one of the parts being merged (or their rejected rows); "
                         "name another file")
    if container_of(step.output) != container_of(parts[0].output):
        raise UsageError(f"output={step.output}: the parts are {container_of(parts[0].output)} "
                         f"({parts[0].output}); name an output of the same kind")
    rejected = [part.rejected for part in parts if part.rejected is not None]
    rejected_output = paths.rejected_beside(step.output)
    if rejected:
        ensure_writable(rejected_output, settings.overwrite)
    with step.phase("write"):
        join([part.output for part in parts], step.output, settings.overwrite)
        if rejected:
            join(rejected, rejected_output, settings.overwrite)
    rows = sum(part.summary.output_format.rows_out for part in parts)
    log.info("merged %d parts of %s: %d rows -> %s", len(parts), folder, rows, step.output)
    return step.finish(contract.MergeSummary(
        rows=sum(part.summary.rows for part in parts), rows_out=rows,
        parts=[contract.MergedPart(part.summary.shard.index, str(part.output), part.summary.rows) for part in parts],
        input=str(folder), rejected=str(rejected_output) if rejected else None), ("write",))


def join(parts: list[Path], output: Path, overwrite: bool) -> None:
    """The parts one after another into ``output``, atomically: JSON lines byte for byte, tables through Arrow."""
    container = container_of(output)
    if container == "jsonl":
        with atomic_file(output, overwrite, binary=True) as handle:
            for part in parts:
                with open(part, "rb") as source:
                    shutil.copyfileobj(source, handle, 1 << 20)
        return
    import pyarrow as pa

    if container == "parquet":
        import pyarrow.parquet as pq

        table = pa.concat_tables([pq.read_table(part) for part in parts], promote_options="permissive")
        with atomic_file(output, overwrite, binary=True) as handle:
            pq.write_table(table, handle)
        return
    import datasets

    tables = [datasets.load_from_disk(str(part)).data.table for part in parts]
    write_saved_dataset(output, pa.concat_tables(tables, promote_options="permissive"), overwrite)
