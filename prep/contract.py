"""What a run writes, stated once: the names of its files, and each step's ``summary.json`` as a typed record.

Every step builds its summary as one of the dataclasses below; the step frame (``steps.frame.StepRun.finish``)
serialises it once (``as_json``) and adds the ``RunRecord`` every summary shares. The keys are shared/DESIGN.md's
contract: a field's name is its key, fields in the order the file shows them, and a field marked ``OMITTED_WHEN_NONE``
is left out instead of written as null. Readers that want the record back (``step=merge`` reads its parts so)
call ``read``. Nested values that are free-form by nature (a distribution's statistics from ``report.stats``, the
settings, the counts of a filter or a retriever by name) stay dicts.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from prep.errors import DataError

SUMMARY = "summary.json"  # every step's summary, in its run folder
MINED = "mined.jsonl"  # step=mine's output when output= is not set
SCORED = "scored.jsonl"  # step=score's
SIMILARITIES = "similarities.npz"  # step=mine's similarity of positives and negatives, for the sweep's plot
REPORT_ROWS = "report_rows.jsonl"  # step=mine's sample of mined rows for report.html's row viewer
SIMILARITY_PLOT = "similarity.png"
FILTERS_PLOT = "filters.png"
RUN_REPORT = "report.html"
SWEEP_CSV = "sweep_summary.csv"
SWEEP_MARKDOWN = "sweep_summary.md"
SWEEP_REPORT = "sweep_report.html"
SWEEP_SIMILARITY_PLOT = "sweep_similarity.png"
SWEEP_OBJECTIVE_PLOT = "sweep_objective.png"
BEST_SAMPLING = "best_sampling.yaml"  # a sweep's best sampling settings, as a config file
PROBE_SPLIT = "probe_split.json"  # step=probe's training and dev row numbers
PROBE_QUERIES = "probe_queries.json"  # step=probe's metrics per dev query after training (a sweep pairs them)
SWEEP_DIFFERENCE_PLOT = "sweep_differences.png"  # each setting minus the best, with its interval

OMITTED_WHEN_NONE = {"omitted_when_none": True}
Stats = dict[str, Any]  # report.stats.describe's: count, mean and percentiles (None when there were no values)


@dataclass
class OutputCounts:
    """The output's format and its rows in and out (``io.formats.Written``)."""

    name: str
    rows_in: int
    rows_out: int
    rows_short: int  # n-tuple: (query, positive) rows left out for having fewer than n negatives


@dataclass
class CacheStats:
    enabled: bool
    hits: int
    misses: int
    dir: str | None


@dataclass
class NegativeCounts:
    """Negatives per written row: mined and kept own ones; of those, random fills."""

    mean: float
    min: int
    max: int
    rows_short: int
    filled_random: int
    rows_filled: int


@dataclass
class Candidates:
    """Candidates in the rank window: how many each filter removed, how many qualified, and with the teacher and
    ``sampling_strategy=top`` how many were never needed."""

    in_window: int
    removed: dict[str, int]
    qualifying: int
    not_needed: int


@dataclass
class ShardRecord:
    """A part of a sharded ``step=mine``: which shard, its first row, and the digests ``step=merge`` checks."""

    index: int
    count: int
    first_row: int
    input_rows: int
    digest: str
    rejected_digest: str | None = field(default=None, metadata=OMITTED_WHEN_NONE)


@dataclass
class MineSummary:
    rows: int
    corpus_size: int
    negatives: NegativeCounts
    candidates: Candidates
    sampling_strategy: str
    teacher_filter: dict[str, Any] | None
    similarity: dict[str, Stats]  # positive, negative, negative_window
    negative_rank: Stats
    searched_top_k: int
    index: dict[str, Any]
    cache: CacheStats
    encoded: dict[str, int]
    scores_removed: dict[str, int]
    output_format: OutputCounts
    positive_rank: dict[str, Any]  # Stats, past_searched_depth, searched_top_k
    rows_rejected: int
    rejected: str | None
    other_positives: dict[str, int]
    input_negatives_kept: int
    retriever: str
    reproducible: dict[str, Any]
    lengths: dict[str, Any]
    negatives_by_retriever: dict[str, int]
    input: str
    candidate_pool: str | None
    shard: ShardRecord | None = field(default=None, metadata=OMITTED_WHEN_NONE)


@dataclass
class ScoreSummary:
    rows: int
    pairs: int
    pairs_distinct: int
    pairs_cached: int
    pairs_scored: int
    teacher: str
    reproducible: dict[str, Any]
    lengths: dict[str, Any]
    scores: dict[str, Stats]  # positive, negative
    cache: CacheStats
    input: str
    output_format: OutputCounts


@dataclass
class SplitSummary:
    rows: int
    texts: int
    texts_tokenized: int
    texts_per_second: float | None
    length_list: list[int]
    files: list[dict[str, Any]]  # per input file: its buckets and what was written
    input: str
    output: str
    output_format: str | None = field(default=None, metadata=OMITTED_WHEN_NONE)  # a table input's buckets


@dataclass
class EncodeShard:
    index: int
    count: int
    chunks: list[int]


@dataclass
class EncodeSummary:
    corpus_size: int
    chunk_size: int
    chunks: int
    shard: EncodeShard
    chunks_encoded: int
    chunks_cached: int
    encoded: dict[str, int]
    cache: CacheStats
    reproducible: dict[str, Any]
    lengths: dict[str, Any]
    input: str | None
    candidate_pool: str | None


@dataclass
class ProbeTraining:
    """What the probe's training ran; a run that trained no step says why (``not_trained``) and nothing more."""

    steps: int
    rows: int
    negatives_per_row: int | None = field(default=None, metadata=OMITTED_WHEN_NONE)
    precision: str | None = field(default=None, metadata=OMITTED_WHEN_NONE)  # autocast: bf16, fp16 or fp32
    train_loss: float | None = field(default=None, metadata=OMITTED_WHEN_NONE)
    short: str | None = field(default=None, metadata=OMITTED_WHEN_NONE)  # fewer steps than probe.steps: why
    not_trained: str | None = field(default=None, metadata=OMITTED_WHEN_NONE)


@dataclass
class ProbeDev:
    """The dev set the student is judged on: its queries, its corpus, where it came from, the split's file."""

    queries: int
    corpus: int
    source: str
    split: str


@dataclass
class ProbeMining:
    """The probe's mining figures (its ``mine/`` run's, a part of its ``MineSummary``)."""

    negatives: NegativeCounts
    candidates: Candidates
    similarity: dict[str, Stats]
    negative_rank: Stats
    encoded: dict[str, int]


@dataclass
class TeacherScores:
    """How the probe's teacher scored the training rows: distinct pairs, how many came from the cache, the scores."""

    pairs: int
    pairs_cached: int
    scores: dict[str, Stats]  # positive, negative


@dataclass(kw_only=True)  # keyword-only: the optional teacher fields sit where the file shows them
class ProbeRecord:
    """``step=probe``'s own figures: the metric and the student, how it trained (loss, temperatures, teacher), its
    metrics on the dev set before and after training."""

    metric: str
    student: str
    loss: str
    temperature: float
    teacher: str | None  # the teacher's identity with probe.teacher, else None
    teacher_scores: TeacherScores | None = field(default=None, metadata=OMITTED_WHEN_NONE)
    teacher_temperature: float | None = field(default=None, metadata=OMITTED_WHEN_NONE)  # probe.loss=distill's
    before: dict[str, float]  # ndcg@10, mrr@10, recall@10, recall@100
    after: dict[str, float]
    before_cached: bool
    train: ProbeTraining
    dev: ProbeDev
    mine: ProbeMining


@dataclass
class ProbeSummary:
    rows: int
    objective: float | None
    probe: ProbeRecord
    lengths: dict[str, Any]
    input: str
    candidate_pool: str | None


@dataclass
class MergedPart:
    shard: int
    output: str
    rows: int


@dataclass
class MergeSummary:
    rows: int
    rows_out: int
    parts: list[MergedPart]
    input: str
    rejected: str | None


@dataclass
class PipelineSummary:
    """``step=pipeline``: its rows and output folder, and each step's own summary (without its settings and
    overrides, which the pipeline's record holds once)."""

    rows: int
    output: str
    mine: dict[str, Any]
    score: dict[str, Any]
    split: dict[str, Any]


@dataclass
class RunRecord:
    """What the step frame adds to every summary: seconds per phase, the output, where the summary is, and the run's
    overrides, seed, peak memory and settings."""

    seconds: dict[str, float]
    output: str | None = field(metadata=OMITTED_WHEN_NONE)  # none for step=probe, which writes no single output
    summary: str
    overrides: list[str]
    seed: int
    peak_memory_gb: float | None
    config: dict[str, Any]


StepSummary = (MineSummary | ScoreSummary | SplitSummary | EncodeSummary | ProbeSummary | MergeSummary
               | PipelineSummary)
STEP_SUMMARIES: dict[str, type] = {"mine": MineSummary, "score": ScoreSummary, "split": SplitSummary,
                                   "encode": EncodeSummary, "probe": ProbeSummary, "merge": MergeSummary,
                                   "pipeline": PipelineSummary}
T = TypeVar("T")


def as_json(record: Any) -> Any:
    """A record as the JSON value its file holds: fields in order, ``OMITTED_WHEN_NONE`` ones left out when None."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {f.name: as_json(getattr(record, f.name)) for f in dataclasses.fields(record)
                if not (f.metadata.get("omitted_when_none") and getattr(record, f.name) is None)}
    if isinstance(record, list):
        return [as_json(item) for item in record]
    return record


def load(path: Path) -> dict[str, Any]:
    """The JSON object of a ``summary.json``; a DataError naming the file when it is not one (empty, truncated,
    not UTF-8, not an object)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DataError(path, None, "is not a run's summary: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise DataError(path, None, f"is not a run's summary: not valid JSON ({exc.msg} at line {exc.lineno}, "
                                    f"column {exc.colno})") from None
    if not isinstance(data, dict):
        raise DataError(path, None, f"is not a run's summary: a JSON object was expected, got {type(data).__name__}")
    return data


def read(kind: type[T], data: dict[str, Any]) -> T:
    """The record of type ``kind`` that ``data`` (a summary's JSON, or a part of one) holds; keys of other records
    (``step``, the ``RunRecord``'s) are skipped; a missing field is None (a summary of an older version)."""
    hints = typing.get_type_hints(kind)
    values = {}
    for item in dataclasses.fields(kind):
        value = data.get(item.name)
        record_type = _record_type(hints[item.name])
        if record_type is not None and isinstance(value, dict):
            value = read(record_type, value)
        elif record_type is not None and isinstance(value, list):
            value = [read(record_type, v) if isinstance(v, dict) else v for v in value]
        values[item.name] = value
    return kind(**values)


def _record_type(hint: Any) -> type | None:
    """The dataclass a field holds (itself, optional, or a list of them), else None."""
    if dataclasses.is_dataclass(hint):
        return hint
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) in (typing.Union, list):
        return next((arg for arg in typing.get_args(hint) if dataclasses.is_dataclass(arg)), None)
    return None


def mismatches(kind: type, data: dict[str, Any], path: str = "") -> list[str]:
    """How ``data`` (a summary's JSON) differs from record ``kind``, both ways: keys the record lacks, fields the
    data lacks (but those ``OMITTED_WHEN_NONE``), in nested records too. ``[]``: they agree."""
    fields = {f.name: f for f in dataclasses.fields(kind)}
    found = [f"{path}{key}: not a field of {kind.__name__}" for key in data if key not in fields]
    found += [f"{path}{name}: missing" for name, f in fields.items()
              if name not in data and not f.metadata.get("omitted_when_none")]
    hints = typing.get_type_hints(kind)
    for name in fields:
        record_type, value = _record_type(hints[name]), data.get(name)
        if record_type is not None and isinstance(value, dict):
            found += mismatches(record_type, value, f"{path}{name}.")
        elif record_type is not None and isinstance(value, list):
            for number, item in enumerate(value):
                found += mismatches(record_type, item, f"{path}{name}[{number}].")
    return found


def summary_mismatches(data: dict[str, Any]) -> list[str]:
    """``mismatches`` of a whole ``summary.json``: ``step``, its step's record and the ``RunRecord``."""
    kind = STEP_SUMMARIES[data["step"]]
    own = {f.name for f in dataclasses.fields(kind)}
    run = {f.name for f in dataclasses.fields(RunRecord)}
    step_part = {k: v for k, v in data.items() if k != "step" and (k in own or k not in run)}
    run_part = {k: v for k, v in data.items() if k in run}  # output: the step's and the run's record alike
    return mismatches(kind, step_part) + mismatches(RunRecord, run_part)
