"""Shards of ``step=mine`` (``shard.index``, ``shard.count``) and what ``step=merge`` reads of them: which rows a
shard mines, how a rerun of a sharded multirun resumes, the part's record in its summary (``shard``: its rows and
the digests of what it wrote), and the finished parts of a multirun folder, checked before they are joined."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prep import contract
from prep.config.dotted import dotted
from prep.errors import UsageError
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
    summary = json.loads(path.read_text(encoding="utf-8"))
    same = summary.get("config") == json.loads(json.dumps(dataclasses.asdict(settings), default=str))
    if not same or summary.get("step") != "mine" or not Path(summary.get("output", "")).exists():
        return None
    log.info("shard %d of %d already mined with these settings (%s): skipped", settings.shard.index,
             settings.shard.count, summary["output"])
    return summary


def shard_record(settings: Config, span: range, input_rows: int, output: Path, rejected: Path | None
                 ) -> dict[str, Any]:
    """The summary's ``shard``: which shard, its first row, and the digests of its part (and rejected rows) as
    written, which ``step=merge`` checks before it joins the parts in this order."""
    record = {"index": settings.shard.index, "count": settings.shard.count, "first_row": span.start,
              "input_rows": input_rows, "digest": digest(output)}
    if rejected is not None:
        record["rejected_digest"] = digest(rejected)
    return record


def find_parts(folder: Path) -> list[dict[str, Any]]:
    """The summaries of the multirun's parts in shard order, checked: one per shard, same settings, on disk, each
    file what its shard wrote."""
    if not folder.is_dir():
        raise UsageError(f"input={folder}: not a folder; step=merge reads the multirun folder of a sharded step=mine")
    by_index = parts_by_shard(folder)
    count = len(by_index)
    check_same_settings(by_index)
    parts = [located(*by_index[index]) for index in range(count)]
    for index, part in enumerate(parts):
        job = by_index[index][0]
        if not Path(part["output"]).exists():
            raise UsageError(f"{job}: its part {part['output']} is not there")
        check_digest(job, part, "output", "digest")
        if part.get("rejected"):
            check_digest(job, part, "rejected", "rejected_digest")
    return parts


def parts_by_shard(folder: Path) -> dict[int, tuple[Path, dict[str, Any]]]:
    """Each shard's job folder and summary, every shard of ``0..count-1`` there exactly once."""
    summaries = []
    for path in sorted(folder.glob(f"*/{contract.SUMMARY}")):
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
    return by_index


def check_same_settings(by_index: dict[int, tuple[Path, dict[str, Any]]]) -> None:
    """Every part mined with the first part's settings, but for those each part has its own of."""
    first_job, first = by_index[0]
    reference = shared_settings(first)
    for index in range(1, len(by_index)):
        job, summary = by_index[index]
        settings = shared_settings(summary)
        differs = sorted(key for key in set(reference) | set(settings) if reference.get(key) != settings.get(key))
        if differs:
            key = differs[0]
            raise UsageError(f"{job}: mined with other settings than {first_job}: {key}={settings.get(key)} "
                             f"against {reference.get(key)}")


def located(job: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """The part's summary with its files where they are now: a file its shard wrote into its own run folder is read
    from the job folder given (a copied or moved sweep folder merges its own parts, not the originals); an
    ``output=`` outside it stays where it was written."""
    written_in = Path(summary.get("summary", job / contract.SUMMARY)).parent
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
