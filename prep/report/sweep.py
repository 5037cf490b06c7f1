"""The sweep summary: a Hydra callback that tabulates every job of a multirun when it ends.

Hydra hands ``on_multirun_end`` no job results, so the table is built from each job's
``summary.json`` under ``hydra.sweep.dir`` (this also works when jobs ran on other machines).
Writes ``sweep_summary.csv``, ``sweep_summary.md``, ``sweep_similarity.png`` and ``sweep_report.html`` into the
sweep folder; with ``tracking=mlflow`` it also opens the sweep's parent run when the multirun starts and closes it
with those files when it ends. Imports stay light (numpy, Hydra's own): Hydra builds the callback before any job starts.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from prep import contract
from prep.config.schema import SAMPLING_KEYS, MinerConfig, ProbeConfig
from prep.errors import DataError
from prep.io.atomic import atomic_file
from prep.report.html import write_sweep_report
from prep.report.noise import Difference, default_setting, paired_difference, verdict
from prep.report.plots import difference_plot, sweep_boxplot
from prep.report.tracking import (
    finish_parent,
    start_parent,  # nothing happens unless tracking=mlflow
)

log = logging.getLogger(__name__)

COLUMNS = [
    "job", "overrides", "rows", "rows_short", "filled_random", "negatives_mean",
    "neg_sim_mean", "neg_sim_p5", "neg_sim_p25", "neg_sim_p50", "neg_sim_p75", "neg_sim_p95",
    "neg_rank_mean", "pos_sim_mean", "seconds_total", "seconds_encode", "passages_encoded",
    "cache_hits", "cache_misses",
    # step=probe: the student's metrics on the dev queries after training (and nDCG@10 before), the objective
    # (probe.metric after training), its mean over the seeds of the same setting where the sweep has several, and
    # the best job (the best setting's jobs), marked "*"
    "probe_ndcg@10_before", "probe_ndcg@10", "probe_mrr@10", "probe_recall@10", "probe_recall@100", "objective",
    "objective_mean", "best",
    # how the probe trained: its loss, the student's temperature, the teacher (probe.teacher) and its temperature
    "probe_loss", "probe_temperature", "probe_teacher", "probe_teacher_temperature",
    # the setting's objective minus the best setting's, paired over the dev queries of each seed, with its 95%
    # interval; "tied": not distinguishable from the best (report/noise.py)
    "vs_best", "vs_best_low", "vs_best_high", "tied",
]



def job_row(job: str, summary: dict[str, Any]) -> dict[str, Any]:
    """One table row from one job's summary, read as its records (``contract``): steps other than mine and probe
    leave the mining columns empty, and a field an older summary lacks leaves its cell empty."""
    kind = contract.STEP_SUMMARIES.get(summary.get("step"))
    record = contract.read(kind, summary) if kind else None
    probe = record.probe if isinstance(record, contract.ProbeSummary) else None
    before, after = ((probe.before or {}), (probe.after or {})) if probe else ({}, {})
    return {**job_columns(job, contract.read(contract.RunRecord, summary), record),
            "probe_ndcg@10_before": before.get("ndcg@10"),
            **{f"probe_{name}": after.get(name) for name in ("ndcg@10", "mrr@10", "recall@10", "recall@100")},
            "objective": summary.get("objective"), "objective_mean": None, "best": "",
            "probe_loss": probe and probe.loss, "probe_temperature": probe and probe.temperature,
            "probe_teacher": probe and probe.teacher, "probe_teacher_temperature": probe and probe.teacher_temperature,
            "vs_best": None, "vs_best_low": None, "vs_best_high": None, "tied": ""}


def job_columns(job: str, run: contract.RunRecord, record: contract.StepSummary | None) -> dict[str, Any]:
    """The columns every job has (its overrides, rows, seconds, cache) and the mining figures of a mine job or a
    probe's mining (empty for the other steps)."""
    if isinstance(record, contract.ProbeSummary):
        mining = record.probe.mine if record.probe else None
    else:
        mining = record if isinstance(record, contract.MineSummary) else None
    negatives = mining.negatives if mining else None
    similarity = (mining.similarity if mining else None) or {}
    negative = similarity.get("negative") or {}
    cache, seconds = getattr(record, "cache", None), run.seconds or {}
    return {
        "job": job,
        "overrides": " ".join(run.overrides or []),
        "rows": record and record.rows,
        "rows_short": negatives and negatives.rows_short,
        "filled_random": negatives and negatives.filled_random,
        "negatives_mean": negatives and negatives.mean,
        "neg_sim_mean": negative.get("mean"),
        **{f"neg_sim_p{p}": negative.get(f"p{p}") for p in (5, 25, 50, 75, 95)},
        "neg_rank_mean": ((mining.negative_rank if mining else None) or {}).get("mean"),
        "pos_sim_mean": (similarity.get("positive") or {}).get("mean"),
        "seconds_total": seconds.get("total"),
        "seconds_encode": seconds.get("encode"),
        "passages_encoded": (getattr(mining or record, "encoded", None) or {}).get("passages"),
        "cache_hits": cache and cache.hits,
        "cache_misses": cache and cache.misses,
    }


SHORT_NAMES = {"miner.similarity_range=": "sim=", "miner.range_for_sampling=": "ranks=", "miner.": ""}


def short_label(job: str, overrides: str) -> str:
    """A plot label: the job number and its overrides, one per line, with the long key names shortened."""
    for long, short in SHORT_NAMES.items():
        overrides = overrides.replace(long, short)
    return "\n".join([f"job {job}", *overrides.split(" ")])[:120]


def _job_folders(sweep_dir: Path) -> list[Path]:
    folders = [p.parent for p in sweep_dir.glob(f"*/{contract.SUMMARY}")]
    return sorted(folders, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))


def markdown_table(rows: list[dict[str, Any]]) -> str:
    def cell(value: Any) -> str:
        return "" if value is None else str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(row[c]) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def job_summaries(folders: list[Path]) -> tuple[list[Path], list[dict[str, Any]]]:
    """The jobs' folders and summaries; a job whose summary does not load is left out, with a warning."""
    kept, summaries = [], []
    for folder in folders:
        try:
            summaries.append(contract.load(folder / contract.SUMMARY))
        except DataError as exc:
            log.warning("left out of the sweep summary: %s", exc)
            continue
        kept.append(folder)
    return kept, summaries


def write_sweep_summary(sweep_dir: Path) -> list[dict[str, Any]]:
    """Write the CSV, Markdown, PNG and HTML summaries of the jobs found in ``sweep_dir``; return the rows."""
    folders, summaries = job_summaries(_job_folders(sweep_dir))
    # Overrides that every job shares are said once, above the table; each row shows what varies.
    shared = set.intersection(*(set(s.get("overrides", [])) for s in summaries)) if summaries else set()
    rows, distributions = [], []
    for folder, summary in zip(folders, summaries):
        varying = {**summary, "overrides": [o for o in summary.get("overrides", []) if o not in shared]}
        row = job_row(folder.name, varying)
        rows.append(row)
        similarities = folder / contract.SIMILARITIES
        if not similarities.is_file():
            similarities = folder / "mine" / contract.SIMILARITIES  # a probe job mines in its mine/ folder
        if similarities.is_file():
            with np.load(similarities) as data:
                label = short_label(folder.name, row["overrides"])
                distributions.append((label, data["positive"], data["negative"]))
    best = mark_best(rows, summaries)
    judged = judge_noise(sweep_dir, rows, folders, summaries, best)
    if best is not None:
        write_best_sampling(sweep_dir, folders[best], summaries[best], judged.note if judged else None)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_file(sweep_dir / contract.SWEEP_CSV, overwrite=True) as handle:
        handle.write(text.getvalue())
    common = [o for o in summaries[0].get("overrides", []) if o in shared] if summaries else []
    with atomic_file(sweep_dir / contract.SWEEP_MARKDOWN, overwrite=True) as handle:
        handle.write(f"Sweep of {len(rows)} jobs in {sweep_dir}\n\nEvery job: `{' '.join(common) or '(defaults)'}`\n\n")
        if judged:
            handle.write(f"Verdict: {judged.line}\n\n")
        handle.write(markdown_table(rows))
    if distributions:
        sweep_boxplot(sweep_dir / contract.SWEEP_SIMILARITY_PLOT, distributions)
    write_sweep_report(sweep_dir, rows, common, best, judged.line if judged else None)
    return rows


def setting_of(summary: dict[str, Any]) -> tuple[str, ...]:
    """A job's setting: its overrides less its ``seed``."""
    return tuple(o for o in summary.get("overrides", []) if not o.startswith("seed="))


def jobs_by_setting(summaries: list[dict[str, Any]], with_objective: bool = False) -> dict[tuple[str, ...], list[int]]:
    """Each setting's jobs (indexes into ``summaries``, in order); with ``with_objective``, only the jobs that
    report an objective."""
    settings: dict[tuple[str, ...], list[int]] = {}
    for index, summary in enumerate(summaries):
        if not with_objective or isinstance(summary.get("objective"), (int, float)):
            settings.setdefault(setting_of(summary), []).append(index)
    return settings


def mark_best(rows: list[dict[str, Any]], summaries: list[dict[str, Any]]) -> int | None:
    """Mark the best setting's jobs; return its first job's index, or None without objectives.

    A setting is a job's overrides less its ``seed``. Where a setting ran under several seeds, settings are
    ranked by their mean objective (``objective_mean``): one seed's winner is often noise (on the Debian
    corpus, single-seed probes of 30 steps ranked the presets with Kendall tau 0.8 and 0.6 against full
    training, their mean with 1.0: docs/probe.md). Otherwise the highest
    objective wins; the first of equals.
    """
    settings = jobs_by_setting(summaries, with_objective=True)
    if not settings:
        return None
    means = {setting: sum(summaries[i]["objective"] for i in jobs) / len(jobs) for setting, jobs in settings.items()}
    if any(len(jobs) > 1 for jobs in settings.values()):
        for setting, jobs in settings.items():
            for index in jobs:
                rows[index]["objective_mean"] = round(means[setting], 6)
    best = max(settings, key=lambda setting: (means[setting], -settings[setting][0]))
    for index in settings[best]:
        rows[index]["best"] = "*"
    return settings[best][0]


def write_best_sampling(sweep_dir: Path, folder: Path, summary: dict[str, Any], note: str | None = None) -> None:
    """The best job's sampling settings as a ready ``conf/sampling/`` file: ``best_sampling.yaml``, headed by
    ``note`` when the best is no finding (not distinguishable from the default)."""

    miner = summary["config"]["miner"]
    recipe = OmegaConf.to_yaml({key: miner[key] for key in SAMPLING_KEYS if key in miner})
    header = ("# @package miner\n" + ("" if note is None else f"# {note}\n")
              + "# python run.py step=mine sampling=best_sampling   (copy this file to "
              f"conf/sampling/; the best job, {folder.name}, of the sweep {sweep_dir}:\n"
              f"# {summary.get('probe', {}).get('metric')} {summary['objective']} on held-out queries; its overrides: "
              f"{' '.join(summary.get('overrides', []))})\n")
    with atomic_file(sweep_dir / contract.BEST_SAMPLING, overwrite=True) as handle:
        handle.write(header + recipe)
    log.info("best job %s (objective %s): its sampling settings in %s", folder.name, summary["objective"],
             sweep_dir / contract.BEST_SAMPLING)


@dataclass(frozen=True)
class Judged:
    """The verdict line, and the note ``best_sampling.yaml`` carries when its pick is no finding."""

    line: str
    note: str | None


def judge_noise(sweep_dir: Path, rows: list[dict[str, Any]], folders: list[Path], summaries: list[dict[str, Any]],
                best: int | None) -> Judged | None:
    """Every setting against the best, paired over the dev queries of each seed (``noise.paired_difference``):
    the rows' ``vs_best`` columns, the plot of the differences, and the verdict; None where the jobs kept no
    per-query figures (a sweep of step=mine, or probes from before they did)."""
    if best is None:
        return None
    metric = str(summaries[best].get("probe", {}).get("metric"))
    settings = jobs_by_setting(summaries)
    queries = [_per_query(folder, metric) for folder in folders]
    best_setting = setting_of(summaries[best])
    at_seed = {_seed(summaries[i]): queries[i] for i in settings[best_setting] if queries[i] is not None}
    differences: dict[tuple[str, ...], Difference | None] = {}
    for setting, jobs in settings.items():
        pairs = [(queries[i][2], at_seed[_seed(summaries[i])][2]) for i in jobs
                 if queries[i] is not None and _seed(summaries[i]) in at_seed
                 and queries[i][:2] == at_seed[_seed(summaries[i])][:2]]
        differences[setting] = paired_difference(pairs) if pairs else None
    if all(found is None for setting, found in differences.items() if setting != best_setting):
        return None
    labels = {setting: " ".join(o for o in rows[jobs[0]]["overrides"].split() if not o.startswith("seed="))
              or "(defaults)" for setting, jobs in settings.items()}
    for setting, jobs in settings.items():
        found = differences[setting]
        for index in jobs if found is not None else ():
            rows[index].update(vs_best=found.mean, vs_best_low=found.low, vs_best_high=found.high,
                               tied="yes" if found.tied and setting != best_setting else "")
    drawn = sorted((s for s in differences if differences[s] is not None), key=lambda s: -differences[s].mean)
    difference_plot(sweep_dir / contract.SWEEP_DIFFERENCE_PLOT,
                    [labels[s] + (" (best)" if s == best_setting else "") for s in drawn],
                    [(differences[s].mean, differences[s].low, differences[s].high) for s in drawn], metric)
    default = default_setting({s: judged_values(summaries[jobs[0]]) for s, jobs in settings.items()},
                              JUDGED_DEFAULTS)
    line = verdict(labels, best_setting, differences, default)
    log.info("sweep verdict: %s", line)
    note = None
    if default is not None and default != best_setting and differences[default] is not None:
        against = differences[default]
        if against.tied:
            note = (f"A tie, not a finding: the default ({labels[default]}) is not distinguishable from this setting "
                    f"({metric} {against.mean:+.4f}, 95% interval {against.low:+.4f} to {against.high:+.4f}): "
                    "keep the default")
    return Judged(line, note)


# What a sweep's default setting is judged by (noise.default_setting): the mining recipe and how the probe trained.
JUDGED_DEFAULTS = {**{f"miner.{key}": getattr(MinerConfig, key) for key in SAMPLING_KEYS},
                   **{f"probe.{field.name}": field.default for field in dataclasses.fields(ProbeConfig)}}


def judged_values(summary: dict[str, Any]) -> dict[str, Any]:
    """A job's values of the judged keys, by their dotted names."""
    config = summary.get("config", {})
    return {f"{group}.{key}": value for group in ("miner", "probe") for key, value in config.get(group, {}).items()}


def _seed(summary: dict[str, Any]) -> Any:
    return summary.get("config", {}).get("seed")


def _per_query(folder: Path, metric: str) -> tuple[str, list[str], list[float]] | None:
    """A probe job's dev set, query ids and per-query ``metric`` (``contract.PROBE_QUERIES``), or None."""
    path = folder / contract.PROBE_QUERIES
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return str(data["dev"]), list(data["query_ids"]), [float(v) for v in data[metric]]
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("%s does not load (%s): that job is not compared query by query", path, exc)
        return None


class SweepSummary(Callback):
    """``hydra.callbacks.sweep_summary`` in conf/config.yaml."""
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        start_parent(config.get("tracking"), Path(config.hydra.sweep.dir), list(config.hydra.overrides.task))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        rows = write_sweep_summary(sweep_dir)
        log.info("sweep summary of %d jobs: %s (and sweep_report.html)", len(rows), sweep_dir / contract.SWEEP_MARKDOWN)

        objectives = [row["objective"] for row in rows if isinstance(row.get("objective"), (int, float))]
        finish_parent(config.get("tracking"), sweep_dir, max(objectives) if objectives else None)
