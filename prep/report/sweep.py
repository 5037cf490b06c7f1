"""The sweep summary: a Hydra callback that tabulates every job of a multirun when it ends.

Hydra hands ``on_multirun_end`` no job results, so the table is built from each job's
``summary.json`` under ``hydra.sweep.dir`` (this also works when jobs ran on other machines).
Writes ``sweep_summary.csv``, ``sweep_summary.md`` and ``sweep_similarity.png`` into the sweep folder.
Imports stay light: Hydra builds the callback before any job starts.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

log = logging.getLogger(__name__)

COLUMNS = [
    "job", "overrides", "rows", "rows_short", "filled_random", "negatives_mean",
    "neg_sim_mean", "neg_sim_p5", "neg_sim_p25", "neg_sim_p50", "neg_sim_p75", "neg_sim_p95",
    "neg_rank_mean", "pos_sim_mean", "seconds_total", "seconds_encode", "passages_encoded",
    "cache_hits", "cache_misses",
]


def _get(data: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def job_row(job: str, summary: dict[str, Any]) -> dict[str, Any]:
    """One table row from one job's summary (steps other than mine leave mining columns empty)."""
    negative = _get(summary, "similarity", "negative") or {}
    return {
        "job": job,
        "overrides": " ".join(summary.get("overrides", [])),
        "rows": summary.get("rows"),
        "rows_short": _get(summary, "negatives", "rows_short"),
        "filled_random": _get(summary, "negatives", "filled_random"),
        "negatives_mean": _get(summary, "negatives", "mean"),
        "neg_sim_mean": negative.get("mean"),
        **{f"neg_sim_p{p}": negative.get(f"p{p}") for p in (5, 25, 50, 75, 95)},
        "neg_rank_mean": _get(summary, "negative_rank", "mean"),
        "pos_sim_mean": _get(summary, "similarity", "positive", "mean"),
        "seconds_total": _get(summary, "seconds", "total"),
        "seconds_encode": _get(summary, "seconds", "encode"),
        "passages_encoded": _get(summary, "encoded", "passages"),
        "cache_hits": _get(summary, "cache", "hits"),
        "cache_misses": _get(summary, "cache", "misses"),
    }


SHORT_NAMES = {"miner.similarity_range=": "sim=", "miner.range_for_sampling=": "ranks=", "miner.": ""}


def short_label(job: str, overrides: str) -> str:
    """A plot label: the job number and its overrides, one per line, with the long key names shortened."""
    for long, short in SHORT_NAMES.items():
        overrides = overrides.replace(long, short)
    return "\n".join([f"job {job}", *overrides.split(" ")])[:120]


def _job_folders(sweep_dir: Path) -> list[Path]:
    folders = [p.parent for p in sweep_dir.glob("*/summary.json")]
    return sorted(folders, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))


def markdown_table(rows: list[dict[str, Any]]) -> str:
    def cell(value: Any) -> str:
        return "" if value is None else str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(row[c]) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_sweep_summary(sweep_dir: Path) -> list[dict[str, Any]]:
    """Write the CSV, Markdown and PNG summaries of the jobs found in ``sweep_dir``; return the rows."""
    import numpy as np

    from prep.io.atomic import atomic_file
    from prep.report.plots import sweep_boxplot

    folders = _job_folders(sweep_dir)
    summaries = [json.loads((folder / "summary.json").read_text(encoding="utf-8")) for folder in folders]
    # Overrides that every job shares are said once, above the table; each row shows what varies.
    shared = set.intersection(*(set(s.get("overrides", [])) for s in summaries)) if summaries else set()
    rows, distributions = [], []
    for folder, summary in zip(folders, summaries):
        varying = {**summary, "overrides": [o for o in summary.get("overrides", []) if o not in shared]}
        row = job_row(folder.name, varying)
        rows.append(row)
        similarities = folder / "similarities.npz"
        if similarities.is_file():
            with np.load(similarities) as data:
                label = short_label(folder.name, row["overrides"])
                distributions.append((label, data["positive"], data["negative"]))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_file(sweep_dir / "sweep_summary.csv", overwrite=True) as handle:
        handle.write(text.getvalue())
    common = [o for o in summaries[0].get("overrides", []) if o in shared] if summaries else []
    with atomic_file(sweep_dir / "sweep_summary.md", overwrite=True) as handle:
        handle.write(f"Sweep of {len(rows)} jobs in {sweep_dir}\n\nEvery job: `{' '.join(common) or '(defaults)'}`\n\n")
        handle.write(markdown_table(rows))
    if distributions:
        sweep_boxplot(sweep_dir / "sweep_similarity.png", distributions)
    return rows


class SweepSummary(Callback):
    """``hydra.callbacks.sweep_summary`` in conf/config.yaml."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        rows = write_sweep_summary(sweep_dir)
        log.info("sweep summary of %d jobs: %s", len(rows), sweep_dir / "sweep_summary.md")
