"""The probe's student: fine-tuned briefly with sentence-transformers' own trainer, judged with its own evaluator.

Training: ``SentenceTransformerTrainer`` with ``MultipleNegativesRankingLoss`` (or its cached variant, for
larger batches in the same memory; or FlagEmbedding's distillation from teacher scores, ``evaluation/losses.py``)
over (query, positive, negative_1..k) rows, k negatives drawn from each row's mined ones as FlagEmbedding's trainer
draws them, no duplicate texts within a batch, ``max_steps`` steps, seeded, under bf16 autocast where
``hardware.use_bf16`` makes the miner run in bf16. Evaluation: ``InformationRetrievalEvaluator`` with cosine
similarity: nDCG@10, MRR@10, recall@10 and recall@100 (in fp32).

``sentence_transformers`` and ``datasets`` are imported inside the functions that use them: loading is slow, and a
config error or ``--help`` answers without waiting for it.
"""

from __future__ import annotations

import functools
import logging
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from prep import seeds
from prep.contract import ProbeTraining
from prep.evaluation.losses import distillation_loss_class
from prep.progress import on_terminal, progress

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import TrainerCallback

    from prep.config.schema import ProbeConfig

log = logging.getLogger(__name__)

METRICS = {"ndcg@10": "cosine_ndcg@10", "mrr@10": "cosine_mrr@10", "recall@10": "cosine_recall@10",
           "recall@100": "cosine_recall@100"}


class TrainingRow(NamedTuple):
    """A mined row as the student trains on it; ``scores``: the teacher's, of the positive then of each negative
    (None when the rows were not scored)."""

    query: str
    positive: str
    negatives: list[str]
    scores: list[float] | None = None


@dataclass(frozen=True)
class DevSet:
    """Queries, corpus and which corpus passages answer each query, keyed as the evaluator takes them;
    ``ignored``: passages left out of a query's ranking before it is scored (near duplicates of its positive that
    the labels do not mark, say), by query."""

    queries: dict[str, str]
    corpus: dict[str, str]
    relevant: dict[str, set[str]]
    ignored: dict[str, set[str]] = field(default_factory=dict)


def training_rows(rows: list[dict[str, Any]]) -> list[TrainingRow]:
    """Mined rows (``query``, ``pos``, ``neg``) as the student trains on them: the first positive, every negative,
    and the teacher's scores of both where the rows were scored (``pos_scores`` and ``neg_scores``; a mined row keeps
    its input's ``pos_scores`` but not the ``neg_scores`` of its old negatives, and trains without scores)."""
    return [TrainingRow(row["query"], row["pos"][0], row["neg"],
                        [row["pos_scores"][0], *row["neg_scores"]] if "neg_scores" in row and "pos_scores" in row
                        else None)
            for row in rows]


def load_student(name_or_path: str, max_length: int | None, on_cpu: bool, dropout: bool = True
                 ) -> SentenceTransformer:
    """The student, reading at most ``max_length`` tokens per text (None: its own, as sentence-transformers sets);
    without ``dropout``, built with every dropout probability of its config at 0 (``without_dropout``)."""
    from sentence_transformers import SentenceTransformer

    config = {} if dropout else without_dropout(name_or_path)
    model = SentenceTransformer(name_or_path, device="cpu" if on_cpu else None, local_files_only=True,
                                config_kwargs=config)
    if max_length is not None:
        model.max_seq_length = max_length
    return model


def without_dropout(name_or_path: str) -> dict[str, float]:
    """The student's config keys that hold a dropout probability, each set to 0.

    Set in the config, before the layers are built, rather than on the built ``Dropout`` modules: transformers'
    fused attention (SDPA) takes its dropout from a float the layer copied out of the config
    (``attention_probs_dropout_prob`` in BERT), so zeroing the modules would leave attention's dropout on."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(name_or_path, local_files_only=True).to_dict()
    return {key: 0.0 for key, value in config.items() if "dropout" in key and isinstance(value, float)}


def evaluate(model: SentenceTransformer, dev: DevSet, batch_size: int = 64,
             corpus_vectors: torch.Tensor | None = None) -> dict[str, float]:
    """nDCG@10, MRR@10, recall@10 and recall@100 of ``model`` on ``dev`` (sentence-transformers' evaluator);
    ``corpus_vectors``: the corpus encoded already (``encode_corpus``), for several dev sets over one corpus."""
    return evaluate_queries(model, dev, batch_size, corpus_vectors)[0]


def encode_corpus(model: SentenceTransformer, dev: DevSet, batch_size: int = 64) -> torch.Tensor:
    """``dev``'s corpus as the evaluator encodes it (as documents, in the corpus's order)."""
    return model.encode_document(list(dev.corpus.values()), batch_size=batch_size, convert_to_tensor=True,
                                 show_progress_bar=False)


def evaluate_queries(model: SentenceTransformer, dev: DevSet, batch_size: int = 64,
                     corpus_vectors: torch.Tensor | None = None) -> tuple[dict[str, float], dict[str, list]]:
    """The metrics of ``evaluate``, and each dev query's: ``query_ids``, then one list per metric in that order
    (the evaluator averages them; a sweep compares settings query by query, ``report/noise.py``)."""
    from sentence_transformers import util

    # The evaluator keeps each query's top max(k) hits; the ignored ones are dropped from those, so it keeps as
    # many more as a query ignores at most (through map@k, which nothing reads), and recall@100 still sees 100.
    depth = 100 + max((len(passages) for passages in dev.ignored.values()), default=0)
    evaluator = _per_query_evaluator()(
        dev.queries, dev.corpus, dev.relevant, mrr_at_k=[10], ndcg_at_k=[10], accuracy_at_k=[10],
        precision_recall_at_k=[10, 100], map_at_k=[depth], batch_size=batch_size, write_csv=False,
        score_functions={"cosine": util.cos_sim}, main_score_function="cosine")
    evaluator.ignored = dev.ignored
    scores = evaluator(model, corpus_embeddings=corpus_vectors)
    metrics = {name: round(float(scores[key]), 6) for name, key in METRICS.items()}
    return metrics, {"query_ids": list(evaluator.queries_ids), **evaluator.per_query}


@functools.cache
def _per_query_evaluator() -> type:
    """sentence-transformers' ``InformationRetrievalEvaluator`` that also keeps each query's figures
    (``per_query``), computed from the very ranked hits its ``compute_metrics`` averages."""
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    # The evaluator logs every figure at INFO; the probe logs the ones it reports.
    logging.getLogger(InformationRetrievalEvaluator.__module__).setLevel(logging.WARNING)

    class PerQueryEvaluator(InformationRetrievalEvaluator):
        per_query: dict[str, list[float]]
        ignored: dict[str, set[str]]

        def compute_metrics(self, queries_result_list: list[Any]) -> dict[str, Any]:
            kept = [[hit for hit in hits if hit["corpus_id"] not in self.ignored.get(query_id, ())]
                    for query_id, hits in zip(self.queries_ids, queries_result_list)]
            self.per_query = per_query_metrics(self.queries_ids, self.relevant_docs, kept)
            return super().compute_metrics(kept)

    return PerQueryEvaluator


def per_query_metrics(query_ids: list[str], relevant: dict[str, set[str]], hits: list[list[dict[str, Any]]]
                      ) -> dict[str, list[float]]:
    """Each query's nDCG@10, reciprocal rank within 10, recall@10 and recall@100 from its hits (``corpus_id``,
    ``score``), by the formulas the evaluator averages: binary gains, log2 discounts, ranks by score."""
    found: dict[str, list[float]] = {name: [] for name in METRICS}
    for query_id, query_hits in zip(query_ids, hits):
        wanted = relevant[query_id]
        ranked = [hit["corpus_id"] in wanted for hit in sorted(query_hits, key=lambda hit: hit["score"],
                                                                 reverse=True)]
        dcg = sum(gain / np.log2(rank + 2) for rank, gain in enumerate(ranked[:10]))
        ideal = sum(1 / np.log2(rank + 2) for rank in range(min(len(wanted), 10)))
        first = next((rank for rank, gain in enumerate(ranked[:10]) if gain), None)
        found["ndcg@10"].append(float(dcg / ideal))
        found["mrr@10"].append(0.0 if first is None else 1.0 / (first + 1))
        found["recall@10"].append(sum(ranked[:10]) / len(wanted))
        found["recall@100"].append(sum(ranked[:100]) / len(wanted))
    return found


def training_columns(rows: list[TrainingRow], negatives: int, seed: int) -> dict[str, list]:
    """The trainer's columns: anchor, positive, negative_1..k, and ``label`` (the teacher's scores of the positive
    and the k negatives) when the rows carry scores. A row with more than ``negatives`` negatives gives
    ``negatives`` of them drawn at random (seeded), in its own order, as FlagEmbedding's trainer draws
    ``train_group_size - 1`` of a row's negatives; k is lowered to the fewest any row has (with a warning)."""

    fewest = min((len(row.negatives) for row in rows), default=0)
    if fewest < negatives:
        log.warning("probe.negatives=%d, but some rows have only %d negatives: training with %d per row",
                    negatives, fewest, fewest)
        negatives = fewest
    rng = seeds.stream(seed, seeds.STUDENT_NEGATIVES)
    drawn = [list(range(negatives)) if len(row.negatives) == negatives else
             sorted(int(i) for i in rng.choice(len(row.negatives), negatives, replace=False)) for row in rows]
    columns: dict[str, list] = {"anchor": [row.query for row in rows], "positive": [row.positive for row in rows]}
    for k in range(negatives):
        columns[f"negative_{k + 1}"] = [row.negatives[chosen[k]] for row, chosen in zip(rows, drawn)]
    if rows and all(row.scores is not None for row in rows):
        columns["label"] = [[row.scores[0], *(row.scores[1 + i] for i in chosen)] for row, chosen in zip(rows, drawn)]
    return columns


def logged_steps() -> TrainerCallback:
    """The training's steps as log lines (``prep.progress``) where the trainer's own bar is off (not a terminal), so
    a batch job's log says how far training is rather than nothing for minutes."""
    from transformers import TrainerCallback

    class LoggedSteps(TrainerCallback):
        bar = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.bar = progress(total=state.max_steps, desc="train the student", unit="step")

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.bar.update(1)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.bar.close()

    return LoggedSteps()


def make_loss(model: SentenceTransformer, probe: ProbeConfig) -> torch.nn.Module:
    """``probe.loss`` for ``model``, its similarities divided by ``probe.temperature``."""
    from sentence_transformers.sentence_transformer import losses

    scale = 1 / probe.temperature
    if probe.loss == "cached_mnrl":
        return losses.CachedMultipleNegativesRankingLoss(model, scale=scale, mini_batch_size=probe.mini_batch_size)
    if probe.loss == "distill":
        return distillation_loss_class()(model, probe.temperature, probe.teacher_temperature)
    return losses.MultipleNegativesRankingLoss(model, scale=scale)


def train(model: SentenceTransformer, rows: list[TrainingRow], probe: ProbeConfig, seed: int, on_cpu: bool,
          precision: str = "fp32") -> ProbeTraining:
    """Fine-tune ``model`` in place on mined rows for ``probe.steps`` steps, under ``precision`` autocast (bf16,
    fp16 or fp32: none); returns what ran (steps, rows, negatives per row, the precision, the mean loss)."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )

    columns = training_columns(rows, probe.negatives, seed)
    negatives = len([name for name in columns if name.startswith("negative_")])
    if probe.loss == "distill" and "label" not in columns:
        raise ValueError("probe.loss=distill needs each training row's teacher scores")
    with tempfile.TemporaryDirectory(prefix="prep-probe-") as scratch:
        arguments = SentenceTransformerTrainingArguments(
            output_dir=scratch, max_steps=probe.steps, per_device_train_batch_size=probe.batch_size,
            learning_rate=probe.learning_rate, warmup_ratio=0.1, seed=seed, data_seed=seed, save_strategy="no",
            report_to=[], logging_steps=max(1, probe.steps // 5), disable_tqdm=not on_terminal(), use_cpu=on_cpu,
            bf16=precision == "bf16", fp16=precision == "fp16",
            batch_sampler=BatchSamplers.NO_DUPLICATES, dataloader_drop_last=True)
        # The student is never saved, so its model card needs no widget examples: sentence-transformers computes
        # them (under a progress bar of its own, which disable_tqdm does not reach) only while the card has none.
        model.model_card_data.widget = [{"text": "unused"}]
        trainer = SentenceTransformerTrainer(model=model, args=arguments, train_dataset=Dataset.from_dict(columns),
                                             loss=make_loss(model, probe),
                                             callbacks=None if on_terminal() else [logged_steps()])
        result = trainer.train()
    return ProbeTraining(steps=int(result.global_step), rows=len(rows), negatives_per_row=negatives,
                         precision=precision, train_loss=round(float(result.training_loss), 6))
