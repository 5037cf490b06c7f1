"""``step=probe``: mine as ``step=mine`` does, train a fresh student briefly on the result, and score it on
queries the training never saw. The verdict a sweep over mining settings needs (docs/probe.md).

    python run.py step=probe input=train.jsonl [miner.candidate_pool=pool.jsonl] [probe.steps=30]
    python run.py +sweep=probe_grid input=train.jsonl      # every preset; the best one's settings as a file

Phases: hold out a dev set (``evaluation.holdout``: no dev positive is a training positive), mine the
training rows through the cache (a sweep encodes the pool once), with ``probe.teacher`` score them as
``step=score`` does (``probe.loss=distill`` learns from those scores), evaluate the untouched student, train it
(``evaluation.student``), evaluate again. The run's objective, ``probe.metric`` after training, is what
the Hydra task function returns, so Hydra's sweepers can optimise it.

``torch`` is imported inside the functions that use it: loading is slow, and a config error or ``--help`` answers
without waiting for it.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prep import contract, seeds
from prep.cache import tables
from prep.cache.evaluations import cached_evaluation, dev_texts
from prep.cache.identity import texts_fingerprint
from prep.cache.store import Cache
from prep.config.choices import Step
from prep.config.schema import Config, ProbeConfig
from prep.config.settings import settings_of
from prep.errors import UsageError
from prep.evaluation.holdout import hold_out
from prep.evaluation.student import DevSet, evaluate, evaluate_queries, load_student, train, training_rows
from prep.io import paths
from prep.io.atomic import write_json
from prep.io.jsonl import check_training_row, read_jsonl
from prep.io.pool import corpus_texts, open_pool
from prep.io.reader import Reader
from prep.io.sources import Source
from prep.models.availability import check_model_source
from prep.models.lengths import miner_lengths, student_length
from prep.models.runtime import check_devices, effective_dtype, on_cpu
from prep.models.teacher import make_teacher
from prep.steps import mine, score
from prep.steps.frame import StepRun, stage

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = logging.getLogger(__name__)


def run(cfg: DictConfig | Config) -> dict[str, Any]:
    settings = settings_of(cfg)
    probe = settings.probe
    student_name = probe.student or settings.miner.model_name_or_path
    check_model_source(student_name, "probe.student" if probe.student else "miner.model_name_or_path")
    check_devices(settings.hardware)
    resolved = student_length(settings, student_name)
    settings = resolved.settings
    miner_lengths(settings)  # a miner length past the model's positions is said now, not after the hold-out
    if probe.teacher:
        make_teacher(settings)  # found (not loaded) now, so a missing teacher does not surface after mining
    step = StepRun(settings, "probe")
    source, pool_source = paths.input_sources(settings)
    reader = tables.reader(settings)
    with step.phase("load"):
        rows = reader.training_rows(source, check_training_row)
        training, dev = split(step, rows, pool_source, reader)
    mined = mine_training_rows(step, training)
    if probe.teacher:
        mined = score_training_rows(step, mined)
    judged = judge(step, student_name, mined, dev)
    objective = judged.after[str(probe.metric)]
    log.info("probe: %s %.4f after %d steps (%.4f before); dev of %d queries over %d passages", probe.metric,
             objective, judged.trained.steps, judged.before[str(probe.metric)], len(dev.queries), len(dev.corpus))
    return step.finish(contract.ProbeSummary(
        rows=len(rows),
        objective=objective,
        probe=contract.ProbeRecord(
            metric=str(probe.metric), student=student_name, loss=str(probe.loss), temperature=probe.temperature,
            **teacher_figures(training_settings(settings), mined),
            before=judged.before, after=judged.after, before_cached=judged.before_cached, train=judged.trained,
            dev=contract.ProbeDev(queries=len(dev.queries), corpus=len(dev.corpus),
                                  source=probe.dev or f"hold-out of {probe.dev_fraction} of the input",
                                  split=str(step.run_dir / contract.PROBE_SPLIT)),
            mine=contract.read(contract.ProbeMining, mined["summary"])),
        lengths={**resolved.summary(), **mined["summary"]["lengths"]},
        input=source.label,
        candidate_pool=pool_source.label if pool_source else None,
    ), ("load", "mine", *(("score",) if probe.teacher else ()), "evaluate", "train"))


def training_settings(settings: Config) -> ProbeConfig:
    """``probe`` as the training uses it: a null ``teacher_temperature`` resolved (schema.ProbeConfig) to 1.0,
    FlagEmbedding's, for a cross-encoder's logits, and to the student's temperature for a bi-encoder's cosines.
    The run's recorded settings keep the null, so a sweep's default setting is still found by it."""
    probe = settings.probe
    if probe.teacher_temperature is not None:
        return probe
    temperature = probe.temperature if settings.reranker.model_class == "embedder" else 1.0
    return dataclasses.replace(probe, teacher_temperature=temperature)


def split(step: StepRun, rows: list[dict[str, Any]], pool: Source | None, reader: Reader
          ) -> tuple[list[dict[str, Any]], DevSet]:
    """The rows to mine and train on, and the dev set; the split (row numbers) is written beside the summary."""
    probe, seed = step.settings.probe, step.settings.seed
    if probe.dev:
        dev_rows = reader.training_rows(reader.source(probe.dev), check_training_row)
        training_index, dev_index = list(range(len(rows))), []
        held = {p for row in dev_rows for p in row["pos"]}
        if any(p in held for row in rows for p in row["pos"]):
            log.warning("probe.dev shares positives with the training rows: the probe rewards memorising them")
    else:
        training_index, dev_index = hold_out([row["pos"] for row in rows], probe.dev_fraction, seed)
        if not dev_index:
            raise UsageError(f"step=probe: none of the {len(rows)} input rows can be held out as dev queries (a "
                             "row's group, the rows linked to it by shared positives, must leave rows to train on); "
                             "give more rows with distinct positives, or a dev set as probe.dev=FILE")
        dev_rows = [rows[i] for i in dev_index]
    write_json(step.run_dir / contract.PROBE_SPLIT, {"seed": seed, "train": training_index, "dev": dev_index})
    training = [rows[i] for i in training_index]
    return training, dev_set(step, dev_rows, training, pool, reader)


def dev_set(step: StepRun, dev_rows: list[dict[str, Any]], training: list[dict[str, Any]], pool: Source | None,
            reader: Reader) -> DevSet:
    """Dev queries over a corpus: ``probe.dev_corpus`` when given, else the dev rows' passages plus
    ``probe.dev_distractors`` passages drawn (seeded) from what is mined: the pool, or the training rows'."""
    probe = step.settings.probe
    if probe.dev_corpus:
        texts = list(reader.pool_texts(reader.source(probe.dev_corpus)))
    else:
        texts = list(corpus_texts(dev_rows, None))
        # The mined corpus as step=mine reads it: distinct texts in first-seen order, in a memory-mapped pool.
        with step.work_dir(".probe-") as work_dir, open_pool(training, pool, Path(work_dir), reader) as pool:
            texts += pool.take(sample_ids(len(pool), probe.dev_distractors, step.settings.seed))
    corpus_ids = {text: f"c{i}" for i, text in enumerate(dict.fromkeys(texts))}
    missing = [p for row in dev_rows for p in row["pos"] if p not in corpus_ids]
    if missing:
        raise UsageError(f"probe.dev_corpus: {len(missing)} dev positives are not in it, e.g. {missing[0][:60]!r}")
    return DevSet(queries={f"q{i}": row["query"] for i, row in enumerate(dev_rows)},
                  corpus={cid: text for text, cid in corpus_ids.items()},
                  relevant={f"q{i}": {corpus_ids[p] for p in row["pos"]} for i, row in enumerate(dev_rows)})


def sample_ids(population: int, count: int, seed: int) -> list[int]:
    """Up to ``count`` distinct ids of ``range(population)`` drawn uniformly (reservoir sampling), seeded."""
    rng = seeds.stream(seed, seeds.DISTRACTORS)
    chosen: list[int] = []
    for seen in range(population):
        if len(chosen) < count:
            chosen.append(seen)
        elif (slot := int(rng.integers(seen + 1))) < count:
            chosen[slot] = seen
    return chosen


def mine_training_rows(step: StepRun, training: list[dict[str, Any]]) -> dict[str, Any]:
    """``step=mine`` on the training rows, in ``mine/`` of this run folder, through the cache."""
    settings = step.settings
    output = step.run_dir / contract.MINED
    with step.phase("mine"):
        summary = mine.run(stage(settings, Step.mine, step.run_dir / "mine", output), rows=training)
        mined = read_jsonl(output)
    return {"summary": summary, "rows": training_rows(mined)}


def score_training_rows(step: StepRun, mined: dict[str, Any]) -> dict[str, Any]:
    """``step=score`` on the mined rows, in ``score/`` of this run folder, through the score cache: the rows
    again, each with its teacher's scores of its first positive and of its negatives."""
    settings = step.settings
    output = step.run_dir / contract.SCORED
    with step.phase("score"):
        summary = score.run(stage(settings, Step.score, step.run_dir / "score", output,
                                  input=step.run_dir / contract.MINED))
        scored = read_jsonl(output)
    return {**mined, "rows": training_rows(scored), "score_summary": summary}


def teacher_figures(probe: ProbeConfig, mined: dict[str, Any]) -> dict[str, Any]:
    """What the summary says of the teacher: who it is and how its scores were made (None without
    ``probe.teacher``), and the temperature of its targets under ``probe.loss=distill``."""
    scored = mined.get("score_summary")
    if scored is None:
        return {"teacher": None}
    figures = {"teacher": scored["teacher"], "teacher_scores": contract.TeacherScores(
        pairs=scored["pairs_distinct"], pairs_cached=scored["pairs_cached"], scores=scored["scores"])}
    if probe.loss == "distill":
        figures["teacher_temperature"] = probe.teacher_temperature
    return figures


@dataclasses.dataclass(frozen=True)
class Judgement:
    """The student's metrics on the dev set before and after training, and what the training ran."""

    before: dict[str, float]
    after: dict[str, float]
    before_cached: bool  # the metrics before came from the cache
    trained: contract.ProbeTraining


def judge(step: StepRun, student_name: str, mined: dict[str, Any], dev: DevSet) -> Judgement:
    """The student's metrics on ``dev`` before and after training on the mined rows, and what the training ran."""
    import torch

    settings = step.settings
    cpu = on_cpu(settings.hardware) or not torch.cuda.is_available()
    torch.manual_seed(settings.seed)
    model = load_student(student_name, settings.probe.max_length, cpu, settings.probe.dropout)
    with step.phase("evaluate"):
        before, before_cached = cached_evaluation(
            Cache(settings.cache_dir, settings.cache), student_name, settings.probe.max_length,
            "cpu" if cpu else "cuda", dev, lambda: evaluate(model, dev))
    log.info("training the student for %d steps of %d rows (%s)", settings.probe.steps, settings.probe.batch_size,
             "the untouched student's metrics on this dev set came from the cache" if before_cached else
             f"about {step.timer.seconds()['evaluate']:.0f} s per evaluation here")
    if len(mined["rows"]) < settings.probe.batch_size:  # a batch never fills: the trainer would run no step
        log.warning("probe: %d training rows, fewer than probe.batch_size=%d: the student is not trained, and its "
                    "metrics after are those before", len(mined["rows"]), settings.probe.batch_size)
        not_trained = contract.ProbeTraining(
            steps=0, rows=len(mined["rows"]),
            not_trained=f"fewer training rows than probe.batch_size={settings.probe.batch_size}")
        return Judgement(before, before, before_cached, not_trained)
    with step.phase("train"):
        trained = train(model, mined["rows"], training_settings(settings), settings.seed, cpu,
                        effective_dtype(settings.hardware))
    if trained.steps < settings.probe.steps:
        # sentence-transformers' no-duplicate sampler leaves out a batch in which a text would come twice: rows
        # that share many negatives (a small pool) can fill fewer batches than asked, or none.
        trained.short = (f"{trained.steps} of probe.steps={settings.probe.steps} steps: too few batches of "
                            f"probe.batch_size={settings.probe.batch_size} rows without a repeated text")
        log.warning("probe: trained %s (rows share negatives); lower probe.batch_size or probe.negatives, or give "
                    "more rows or a larger pool", trained.short)
    with step.phase("evaluate"):
        after, per_query = evaluate_queries(model, dev)
    write_json(step.run_dir / contract.PROBE_QUERIES, {"dev": texts_fingerprint(dev_texts(dev)), **per_query})
    return Judgement(before, after, before_cached, trained)
