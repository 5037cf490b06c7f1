"""Teachers that score (query, passage) pairs: any FlagEmbedding reranker, or the miner's bi-encoder.

Each teacher has an ``identity`` (everything that changes its scores, model files included) that
keys the score cache, and ``score(pairs) -> list[float]``. Models load on the first ``score`` call,
so a run whose pairs are all cached loads nothing.

``torch`` and ``FlagEmbedding`` are imported inside the functions that use them: loading is slow, and a config error
or ``--help`` answers without waiting for it.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from prep.models import batching, embedder, flag, runtime
from prep.models.availability import check_model_source
from prep.models.lengths import teacher_lengths, with_own_lengths

if TYPE_CHECKING:
    from FlagEmbedding.abc.inference import AbsEmbedder, AbsReranker

    from prep.config.schema import Config, HardwareConfig, MinerConfig, RerankerConfig

log = logging.getLogger(__name__)

EMBEDDER = "embedder"
# Passed to FlagEmbedding only when set, so a class keeps its own defaults (decoder-only rerankers
# default to the "A: " / "B: " instructions and their own prompt).
OPTIONAL_KEYS = ("peft_path", "query_instruction_for_rerank", "passage_instruction_for_rerank", "query_max_length",
                 "prompt", "cutoff_layers", "compress_layers", "cache_dir")


class RerankerTeacher:
    """A cross-encoder (or decoder-only reranker) loaded through ``FlagAutoReranker``."""

    def __init__(self, reranker: RerankerConfig, hardware: HardwareConfig):
        check_model_source(reranker.model_name_or_path, "reranker.model_name_or_path", reranker.cache_dir)
        if reranker.peft_path:
            check_model_source(reranker.peft_path, "reranker.peft_path")
        self.reranker, self.hardware = reranker, hardware
        self.model: AbsReranker | None = None
        self.warned = False
        self.description = f"reranker {reranker.model_name_or_path} ({reranker.model_class})"
        self.lengths: dict[str, Any] = {}  # summary.json's: each length and its source (make_teacher)

    def reproducible(self) -> dict[str, Any]:
        """``summary.json``'s ``reproducible`` for the scores (as ``embedder.reproducibility``)."""
        dtype = runtime.effective_dtype(self.hardware)
        if not self.reranker.batch_invariant:
            return {"dtype": dtype, "across_batches": False,
                    "why": "reranker.batch_invariant=false: length-sorted batches, scores move with their neighbours"}
        if runtime.on_gpu(self.hardware):
            return {"dtype": dtype, "across_batches": None,
                    "why": "exact passes on a GPU are not measured yet (make bench-gpu checks them)"}
        return {"dtype": dtype, "across_batches": True}

    def load(self) -> None:
        runtime.before_model_imports()
        from FlagEmbedding import FlagAutoReranker

        r = self.reranker
        options: dict[str, Any] = {
            "use_fp16": self.hardware.use_fp16,
            "use_bf16": runtime.use_bf16(self.hardware),
            "devices": runtime.devices_argument(self.hardware),
            "trust_remote_code": r.trust_remote_code,
            "query_instruction_format": r.query_instruction_format_for_rerank,
            "passage_instruction_format": r.passage_instruction_format_for_rerank,
            "batch_size": r.batch_size,
            "max_length": r.max_length,
            "normalize": r.normalize,
        }
        if r.model_class == "decoder-only-lightweight":
            options["compress_ratio"] = r.compress_ratio
        for key in OPTIONAL_KEYS:
            value = getattr(r, key)
            if value is not None:
                options[key] = value
        if r.query_instruction_from_row:  # the step formats each query with its row's instruction (query_text)
            options.pop("query_instruction_for_rerank", None)
        model_class = None if r.model_class == "auto" else str(r.model_class)
        log.info("reranker %s, forward passes in %s", r.model_name_or_path, runtime.describe_dtype(self.hardware))
        self.model = FlagAutoReranker.from_finetuned(r.model_name_or_path, model_class=model_class, **options)

    def score(self, pairs: list[tuple[str, str]]) -> list[float]:
        if self.model is None:
            self.load()
        if flag.is_plain_reranker(self.model) and len(self.model.target_devices) == 1:
            return score_encoder_only(self.model, [list(pair) for pair in pairs], self.hardware,
                                      self.reranker.batch_invariant)
        options = {}
        if self.reranker.batch_invariant:
            # FlagEmbedding's own loop batches by sorted length: only a pass of one pair keeps a score its own.
            if not self.warned:
                log.warning("%s: scored one pair per forward pass (reranker.batch_invariant=true), as this class "
                            "runs FlagEmbedding's own loop; reranker.batch_invariant=false batches it, with scores "
                            "that move in the last digits with their batch", self.description)
                self.warned = True
            options["batch_size"] = 1
        scores = self.model.compute_score([list(pair) for pair in pairs], **options)
        return [float(s) for s in np.atleast_1d(np.asarray(scores, dtype=np.float64))]


def score_encoder_only(reranker: AbsReranker, pairs: list[list[str]], hardware: HardwareConfig,
                       exact: bool) -> list[float]:
    """FlagEmbedding's encoder-only scoring in our passes: exact ones (``batching.exact_passes``: a pair's score
    depends on the pair alone) or, with ``exact`` false, length-sorted ones; never its probe pass.

    Instructions, query truncation (``query_max_length``, else 3/4 of ``max_length``), pair
    truncation (``only_second``) and the sigmoid of ``normalize`` are FlagEmbedding's own, so the
    scores equal ``compute_score``'s (tests/test_score.py).
    """
    import torch

    pairs = reranker.get_detailed_inputs(pairs)
    tokenizer = reranker.tokenizer
    max_length = reranker.max_length
    query_max_length = reranker.query_max_length or max_length * 3 // 4
    device = reranker.target_devices[0]
    model = reranker.model.to(device=device, dtype=runtime.torch_dtype(runtime.effective_dtype(hardware)))
    model.eval()
    query_ids = tokenizer([p[0] for p in pairs], add_special_tokens=False, max_length=query_max_length,
                          truncation=True)["input_ids"]
    passage_ids = tokenizer([p[1] for p in pairs], add_special_tokens=False, max_length=max_length,
                            truncation=True)["input_ids"]
    inputs = [flag.prepare_pair(tokenizer, q, p, max_length) for q, p in zip(query_ids, passage_ids)]
    shape = batching.PassShape.on(device, reranker.batch_size, hardware, max_length)
    planner = batching.exact_passes if exact else batching.sorted_passes
    scores = np.empty(len(pairs), dtype=np.float64)
    with torch.inference_mode():
        for step in planner([(i, item, len(item["input_ids"])) for i, item in enumerate(inputs)], shape):
            padded = flag.pad(tokenizer, step.filled(), step.length).to(device)
            logits = model(**padded, return_dict=True).logits.view(-1)[:len(step.items)]
            scores[step.positions] = logits.float().cpu().numpy()
    if reranker.normalize:
        scores = 1.0 / (1.0 + np.exp(-scores))
    return scores.tolist()


class EmbedderTeacher:
    """The miner's bi-encoder as a teacher: the cosine of query and passage embeddings.

    Offline, with no reranker weights at hand, this is the default; a cross-encoder reads query and
    passage together and is the stronger teacher.
    """

    def __init__(self, miner: MinerConfig, hardware: HardwareConfig, reranker: RerankerConfig):
        # reranker.model_name_or_path names another bi-encoder (the miner's by default); reranker.max_length
        # and query_max_length cap its passages and queries, as they cap a cross-encoder's inputs.
        changes: dict[str, Any] = {"passage_max_length": reranker.max_length,
                                   "query_max_length": reranker.query_max_length, "batch_size": reranker.batch_size}
        if reranker.model_name_or_path:
            changes["model_name_or_path"] = reranker.model_name_or_path
        if reranker.query_instruction_from_row:  # the step formats each query with its row's instruction
            changes["query_instruction_for_retrieval"] = None
        miner = with_own_lengths(dataclasses.replace(miner, **changes))
        check_model_source(miner.model_name_or_path, "reranker.model_name_or_path", miner.cache_dir)
        self.miner, self.hardware = miner, hardware
        self.model: AbsEmbedder | None = None
        self.batch_invariant = reranker.batch_invariant
        self.description = f"bi-encoder {miner.model_name_or_path} (cosine)"
        self.lengths: dict[str, Any] = {}  # summary.json's: each length and its source (make_teacher)
        # Embeddings of texts seen in earlier chunks: a passage shared by many queries is encoded once.
        self._memo: dict[str, dict[str, np.ndarray]] = {"queries": {}, "passages": {}}

    def reproducible(self) -> dict[str, Any]:
        """As the miner's embeddings (``embedder.reproducibility``), where a class that runs FlagEmbedding's own loop
        is exact one text per pass (``reranker.batch_invariant``)."""
        found = embedder.reproducibility(self.miner, self.hardware)
        if found["across_batches"] is False and self.batch_invariant:
            return {"dtype": found["dtype"], "across_batches": True}
        return found

    def _embeddings(self, side: str, texts: list[str]) -> np.ndarray:
        memo = self._memo[side]
        new = [t for t in dict.fromkeys(texts) if t not in memo]
        if new:
            memo.update(zip(new, embedder.encode(self.model, self.miner, self.hardware, side, new)))
        return np.stack([memo[t] for t in texts]) if texts else np.empty((0, 0), dtype=np.float32)

    def score(self, pairs: list[tuple[str, str]]) -> list[float]:
        if self.model is None:
            self.model = embedder.load_embedder(self.miner, self.hardware)
            if self.batch_invariant and not embedder.exact(self.model):
                log.warning("%s: one text per forward pass (reranker.batch_invariant=true), as this class runs "
                            "FlagEmbedding's own loop", self.description)
                self.model.batch_size = 1
        queries = self._embeddings("queries", [q for q, _ in pairs])
        passages = self._embeddings("passages", [p for _, p in pairs])
        return np.einsum("ij,ij->i", queries, passages).astype(np.float64).tolist()


def query_text(row: dict[str, Any], settings: Config) -> str:
    """The query as the teacher reads it: with ``reranker.query_instruction_from_row``, formatted here with the
    row's instruction (or, for a row without one, the configured instruction) in the teacher's own format;
    otherwise the row's query, which the teacher formats itself."""
    column = settings.reranker.query_instruction_from_row
    if not column:
        return row["query"]
    value = row.get(column)
    if settings.reranker.model_class == EMBEDDER:
        fallback = settings.miner.query_instruction_for_retrieval
        template = settings.miner.query_instruction_format_for_retrieval or "{}{}"
    else:
        fallback = settings.reranker.query_instruction_for_rerank
        template = settings.reranker.query_instruction_format_for_rerank
    instruction = value if isinstance(value, str) and value else fallback
    return template.format(instruction, row["query"]) if instruction else row["query"]


def make_teacher(settings: Config) -> RerankerTeacher | EmbedderTeacher:
    """The ``reranker`` group's teacher; its model source is checked here, before any data is read (a missing model
    reads as one stating no length, then fails its check), and its lengths resolved (``lengths.teacher_lengths``:
    the model's own unless set), kept in ``teacher.lengths``."""
    resolved = teacher_lengths(settings)
    reranker = resolved.settings.reranker
    teacher: RerankerTeacher | EmbedderTeacher
    if reranker.model_class == EMBEDDER:
        log.info("teacher: the bi-encoder %s (cosine similarity). A cross-encoder reranker, e.g. "
                 "reranker=bge_reranker_base, is the stronger teacher for distillation.",
                 reranker.model_name_or_path or settings.miner.model_name_or_path)
        teacher = EmbedderTeacher(settings.miner, settings.hardware, reranker)
    else:
        teacher = RerankerTeacher(reranker, settings.hardware)
    teacher.lengths = resolved.summary()
    return teacher
