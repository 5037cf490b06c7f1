"""Shards of ``step=mine`` (``shard.index``, ``shard.count``) and what ``step=merge`` reads of them: which rows a
shard mines, how a rerun of a sharded multirun resumes, the part's record in its summary (``shard``: its rows and
the digests of what it wrote), and the finished parts of a multirun folder, checked before they are joined."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prep import contract
from prep.config.dotted import dotted
from prep.errors import DataError, UsageError
from prep.io.digest import digest
from prep.io.paths import rejected_beside, run_dir

if TYPE_CHECKING:
    from prep.config.schema import Config

log = logging.getLogger(__name__)

# Settings a part may differ in from the others: where it ran, what it wrote, which shard it was.
OWN_TO_EACH_PART = ("shard", "run_dir", "output", "overwrite")


def row_block(rows: int, index: int, count: int) -> range:
    """Shard ``index`` of ``count``: a contiguous block of the rows, the first ``rows % count`` blocks one row
    longer, so that the blocks in shard order are the input in its order."""
    size, longer = divmod(rows, count)
    start = index * size + min(index, longer)
    return range(start, start + size + (index < longer))


def finished_shard(settings: Config) -> dict[str, Any] | None:
    """A shard's earlier run in this run folder, when it finished with the same settings (its summary and output
    are there): its summary, and nothing is mined again. How a rerun of a sharded multirun (same
    ``hydra.sweep.dir``) resumes: only the shards that had not finished run. A run folder with no summary held a
    job that was killed: the files it left there (the default output names) are removed first; an ``output=``
    outside it is never removed."""
    folder = run_dir(settings)
    path = folder / contract.SUMMARY
    if not path.is_file():
        if settings.output is None:  # a job killed before its summary: what it left in its own folder is stale
            for leftover in (folder / contract.MINED, rejected_beside(folder / contract.MINED)):
                if leftover.is_file():
                    log.info("shard %d of %d did not finish here before: %s is replaced", settings.shard.index,
                             settings.shard.count, leftover)
                    leftover.unlink()
        return None
    try:
        summary = contract.load(path)
    except DataError as exc:
        log.warning("mined again: %s", exc)
        return None
    same = summary.get("config") == json.loads(json.dumps(dataclasses.asdict(settings), default=str))
    if not same or summary.get("step") != "mine" or not Path(summary.get("output", "")).exists():
        return None
    log.info("shard %d of %d already mined with these settings (%s): skipped", settings.shard.index,
             settings.shard.count, summary["output"])
    return summary


def shard_record(settings: Config, span: range, input_rows: int, output: Path, rejected: Path | None
                 ) -> contract.ShardRecord:
    """The summary's ``shard``: which shard, its first row, and the digests of its part (and rejected rows) as
    written, which ``step=merge`` checks before it joins the parts in this order."""
    return contract.ShardRecord(settings.shard.index, settings.shard.count, span.start, input_rows, digest(output),
                                None if rejected is None else digest(rejected))


@dataclass
class Part:
    """A finished shard's part as ``step=merge`` reads it: its job folder, its summary's records, and its files
    where they are now (``located``)."""

    job: Path
    summary: contract.MineSummary
    run: contract.RunRecord
    output: Path
    rejected: Path | None

    @classmethod
    def read(cls, job: Path, data: dict[str, Any]) -> Part:
        summary, run = contract.read(contract.MineSummary, data), contract.read(contract.RunRecord, data)
        written_in = Path(run.summary or job / contract.SUMMARY).parent
        rejected = None if summary.rejected is None else located(job, written_in, Path(summary.rejected))
        return cls(job, summary, run, located(job, written_in, Path(run.output)), rejected)


def find_parts(folder: Path) -> list[Part]:
    """The multirun's parts in shard order, checked: one per shard, same settings, on disk, each file what its
    shard wrote."""
    if not folder.is_dir():
        raise UsageError(f"input={folder}: not a folder; step=merge reads the multirun folder of a sharded step=mine")
    parts = [Part.read(job, data) for job, data in parts_by_shard(folder)]
    check_same_settings(parts)
    for part in parts:
        if not part.output.exists():
            raise UsageError(f"{part.job}: its part {part.output} is not there")
        check_digest(part, part.output, part.summary.shard.digest)
        if part.rejected is not None:
            check_digest(part, part.rejected, part.summary.shard.rejected_digest)
    return parts


def parts_by_shard(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Each shard's job folder and summary in shard order, every shard of ``0..count-1`` there exactly once."""
    summaries = []
    for path in sorted(folder.glob(f"*/{contract.SUMMARY}")):
        summary = contract.load(path)
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
    return [by_index[index] for index in range(count)]


def check_same_settings(parts: list[Part]) -> None:
    """Every part mined with the first part's settings, but for those each part has its own of."""
    reference = shared_settings(parts[0].run.config)
    for part in parts[1:]:
        settings = shared_settings(part.run.config)
        differs = sorted(key for key in set(reference) | set(settings) if reference.get(key) != settings.get(key))
        if differs:
            key = differs[0]
            raise UsageError(f"{part.job}: mined with other settings than {parts[0].job}: {key}={settings.get(key)} "
                             f"against {reference.get(key)}")


def located(job: Path, written_in: Path, path: Path) -> Path:
    """Where a part's file is now: one its shard wrote into its own run folder is read from the job folder given (a
    copied or moved sweep folder merges its own parts, not the originals); an ``output=`` outside it stays where it
    was written."""
    return job / path.name if path.parent == written_in else path


def check_digest(part: Part, path: Path, recorded: str | None) -> None:
    """A part whose bytes are not what its shard wrote (truncated, appended to, a line deleted) is refused."""
    if recorded is None:
        log.warning("%s: its summary records no digest of %s (a shard run before digests were kept): not checked",
                    part.job, path)
        return
    if digest(path) != recorded:
        raise UsageError(f"{part.job}: {path} is not what shard {part.summary.shard.index} wrote (its digest differs "
                         "from the one in its summary.json): rerun that shard (delete its summary.json and rerun the "
                         "multirun), or restore the file")


def shared_settings(config: dict[str, Any] | None) -> dict[str, Any]:
    """A part's settings as dotted keys, without those each part has its own of."""
    return dotted({k: v for k, v in (config or {}).items() if k not in OWN_TO_EACH_PART})
