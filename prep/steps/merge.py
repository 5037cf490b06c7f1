"""``step=merge``: join the parts of a sharded ``step=mine`` into one output, in input order.

    python run.py -m step=mine shard.index='range(0,8)' shard.count=8 input=train.jsonl hydra.sweep.dir=parts/
    python run.py step=merge input=parts/ output=mined.jsonl

Each job folder of the multirun holds the job's ``summary.json``, which names its part and its shard. Every check
runs before anything is written: each shard of ``0..count-1`` present exactly once, every part mined with the
same settings but for the shard, every part on disk. JSON-lines parts are joined byte for byte (the joined file is
the single run's, byte for byte: each row's sampling is seeded by its input row number); parquet and saved-dataset
parts are joined as Arrow tables. ``NAME.rejected.jsonl`` parts (``miner.max_positive_rank``) are joined beside the
output the same way.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from prep.config.dotted import dotted
from prep.config.settings import settings_of
from prep.errors import UsageError
from prep.io import paths
from prep.io.atomic import atomic_file, ensure_writable
from prep.io.digest import digest
from prep.io.formats import container_of, write_saved_dataset
from prep.steps.frame import StepRun

log = logging.getLogger(__name__)

# Settings a part may differ in from the others: where it ran, what it wrote, which shard it was.
OWN_TO_EACH_PART = ("shard", "run_dir", "output", "overwrite")


def run(cfg: Any) -> dict[str, Any]:
    settings = settings_of(cfg)
    folder = paths.user_path(settings.input)
    if folder is None:
        raise UsageError("step=merge: input=FOLDER names the multirun folder of a sharded step=mine")
    parts = find_parts(folder)
    suffix = Path(parts[0]["output"]).suffix
    step = StepRun(settings, "merge", default_output=f"merged{suffix}")
    taken = {Path(part[key]).resolve() for part in parts for key in ("output", "rejected") if part.get(key)}
    if step.output.resolve() in taken or paths.rejected_beside(step.output).resolve() in taken:
        raise UsageError(f"output={step.output}: that is one of the parts being merged (or their rejected rows); "
                         "name another file")
    if container_of(step.output) != container_of(parts[0]["output"]):
        raise UsageError(f"output={step.output}: the parts are {container_of(parts[0]['output'])} "
                         f"({parts[0]['output']}); name an output of the same kind")
    rejected = [part["rejected"] for part in parts if part.get("rejected")]
    rejected_output = paths.rejected_beside(step.output)
    if rejected:
        ensure_writable(rejected_output, settings.overwrite)
    with step.phase("write"):
        join([Path(part["output"]) for part in parts], step.output, settings.overwrite)
        if rejected:
            join([Path(path) for path in rejected], rejected_output, settings.overwrite)
    rows = sum(part["output_format"]["rows_out"] for part in parts)
    log.info("merged %d parts of %s: %d rows -> %s", len(parts), folder, rows, step.output)
    return step.finish({
        "rows": sum(part["rows"] for part in parts),
        "rows_out": rows,
        "parts": [{"shard": part["shard"]["index"], "output": part["output"], "rows": part["rows"]}
                  for part in parts],
        "input": str(folder),
        "rejected": str(rejected_output) if rejected else None,
    }, ("write",))


def find_parts(folder: Path) -> list[dict[str, Any]]:
    """The summaries of the multirun's parts in shard order, checked: one per shard, same settings, on disk."""
    if not folder.is_dir():
        raise UsageError(f"input={folder}: not a folder; step=merge reads the multirun folder of a sharded step=mine")
    summaries = []
    for path in sorted(folder.glob("*/summary.json")):
        summary = json.loads(path.read_text(encoding="utf-8"))
        if summary.get("step") == "mine" and "shard" in summary:
            summaries.append((path.parent, summary))
    if not summaries:
        raise UsageError(f"input={folder}: no finished part of a sharded step=mine there (no <job>/summary.json of "
                         "a run with shard.count > 1)")
    count = summaries[0][1]["shard"]["count"]
    by_index: dict[int, tuple[Path, dict[str, Any]]] = {}
    for job, summary in summaries:
        index = summary["shard"]["index"]
        if summary["shard"]["count"] != count:
            raise UsageError(f"{job}: shard.count={summary['shard']['count']}, but {summaries[0][0]} has "
                             f"shard.count={count}: parts of different shardings in one folder")
        if index in by_index:
            raise UsageError(f"{job} and {by_index[index][0]} both hold shard {index} of {count}")
        by_index[index] = (job, summary)
    missing = [index for index in range(count) if index not in by_index]
    if missing:
        raise UsageError(f"input={folder}: shard {missing[0]} of {count} is missing ({len(missing)} missing in all): "
                         "rerun the multirun with the same hydra.sweep.dir; finished shards are skipped")
    first_job, first = by_index[0]
    reference = shared_settings(first)
    for index in range(1, count):
        job, summary = by_index[index]
        settings = shared_settings(summary)
        differs = sorted(key for key in set(reference) | set(settings) if reference.get(key) != settings.get(key))
        if differs:
            key = differs[0]
            raise UsageError(f"{job}: mined with other settings than {first_job}: {key}={settings.get(key)} "
                             f"against {reference.get(key)}")
    parts = [located(*by_index[index]) for index in range(count)]
    for (job, _), part in zip((by_index[i] for i in range(count)), parts):
        if not Path(part["output"]).exists():
            raise UsageError(f"{job}: its part {part['output']} is not there")
        check_digest(job, part, "output", "digest")
        if part.get("rejected"):
            check_digest(job, part, "rejected", "rejected_digest")
    return parts


def located(job: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """The part's summary with its files where they are now: a file its shard wrote into its own run folder is read
    from the job folder given (a copied or moved sweep folder merges its own parts, not the originals); an
    ``output=`` outside the run folder stays where it was written."""
    written_in = Path(summary.get("summary", job / "summary.json")).parent
    moved = dict(summary)
    for key in ("output", "rejected"):
        if summary.get(key) and Path(summary[key]).parent == written_in:
            moved[key] = str(job / Path(summary[key]).name)
    return moved


def check_digest(job: Path, part: dict[str, Any], key: str, digest_key: str) -> None:
    """A part whose bytes are not what its shard wrote (truncated, appended to, a line deleted) is refused."""
    recorded = part["shard"].get(digest_key)
    if recorded is None:
        log.warning("%s: its summary records no digest of %s (a shard run before digests were kept): not checked",
                    job, part[key])
        return
    if digest(Path(part[key])) != recorded:
        raise UsageError(f"{job}: {part[key]} is not what shard {part['shard']['index']} wrote (its digest differs "
                         "from the one in its summary.json): rerun that shard (delete its summary.json and rerun the "
                         "multirun), or restore the file")


def shared_settings(summary: dict[str, Any]) -> dict[str, Any]:
    """A part's settings as dotted keys, without those each part has its own of."""
    return dotted({k: v for k, v in summary.get("config", {}).items() if k not in OWN_TO_EACH_PART})


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
