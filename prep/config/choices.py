"""The closed sets of values some settings take (``miner.sampling_strategy=top``, ``probe.loss=distill``).

``StrEnum`` types: OmegaConf checks a value against them when the config is composed, and they compare equal to
their strings. The configuration reference (``prep/config/reference.py``) lists each key's values from them.
"""

from __future__ import annotations

from enum import StrEnum


class Step(StrEnum):
    encode = "encode"
    mine = "mine"
    score = "score"
    split = "split"
    pipeline = "pipeline"
    probe = "probe"
    merge = "merge"


# FlagEmbedding's class names hold hyphens, so these enums are built from (name, value) pairs.
EmbedderClass = StrEnum("EmbedderClass", [(name, name) for name in (
    "encoder-only-base", "encoder-only-m3", "decoder-only-base", "decoder-only-icl", "decoder-only-pseudo_moe")])
# ``embedder`` scores with a bi-encoder (the offline default); ``auto`` lets FlagEmbedding pick from the name.
RerankerClass = StrEnum("RerankerClass", [(name, name) for name in (
    "embedder", "auto", "encoder-only-base", "decoder-only-base", "decoder-only-layerwise",
    "decoder-only-lightweight")])


class Pooling(StrEnum):
    cls = "cls"
    mean = "mean"
    last_token = "last_token"


class Strategy(StrEnum):
    random = "random"  # FlagEmbedding's: a uniform draw from the qualifying candidates
    top = "top"  # NV-Retriever's: the best-ranked qualifying candidates


class SearchBackend(StrEnum):
    auto = "auto"
    torch = "torch"
    faiss = "faiss"


class Retriever(StrEnum):
    dense = "dense"  # the miner's embedder (exact or approximate search)
    bm25 = "bm25"  # BM25 through bm25s (DPR's negatives)
    hybrid = "hybrid"  # both lists, fused (miner.fusion)


class Fusion(StrEnum):
    rrf = "rrf"  # reciprocal rank fusion (miner.rrf_k)
    union = "union"  # the union, a share of the places per retriever (miner.bm25_share)


class IndexKind(StrEnum):
    flat = "flat"
    ivf = "ivf"
    hnsw = "hnsw"


# What step=probe reports and returns to a sweeper (the metric after training), as sentence-transformers names them.
ProbeMetric = StrEnum("ProbeMetric", [(name, name) for name in ("ndcg@10", "mrr@10", "recall@10", "recall@100")])


class ProbeLoss(StrEnum):
    mnrl = "mnrl"  # MultipleNegativesRankingLoss: in-batch and mined negatives
    cached_mnrl = "cached_mnrl"  # CachedMultipleNegativesRankingLoss: the same loss, larger batches in less memory
    # FlagEmbedding's knowledge distillation: the contrastive term plus the student's distribution over a row's
    # positive and negatives against the teacher's (probe.teacher scores the mined rows; evaluation/losses.py)
    distill = "distill"


# Rows written by every step that writes rows: FlagEmbedding's (the input's keys, kept byte for byte) or one of
# sentence-transformers' four training formats, with the names and column orders of its mine_hard_negatives.
OutputFormat = StrEnum("OutputFormat", [(name, name) for name in (
    "flagembedding", "triplet", "n-tuple", "labeled-pair", "labeled-list")])


class TrackingBackend(StrEnum):
    none = "none"
    mlflow = "mlflow"


class CacheDtype(StrEnum):
    float32 = "float32"
    float16 = "float16"
