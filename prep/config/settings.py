"""A run's settings: the composed config turned into the schema's typed objects and checked, once.

Hydra already rejects a wrong type or a value outside a closed set while composing. What it cannot see
is checked here, before a step does any work: keys added with ``+``, ranges and margins, counts that must
be positive, the split boundaries. Every message names the key. Steps then receive a ``Config`` whose
values are plain Python (enums that compare equal to their strings, lists, tuples).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import re
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from prep.config.schema import (
    GROUPS,
    ColumnsConfig,
    Config,
    MinerConfig,
    ProbeConfig,
    ReportConfig,
    ShardConfig,
    TrackingConfig,
)
from prep.config.values import check_mining, parse_length_list
from prep.errors import UsageError

SEED_LIMIT = 2**32
DEVICE_NAME = re.compile(r"cpu|cuda(:\d+)?|mps|npu(:\d+)?")


def reject_unknown_keys(cfg: DictConfig) -> None:
    """Hydra's struct check stops ``miner.typo=1`` but lets ``+miner.typo=1`` through; this names the key."""
    sections = {"": Config, "shard": ShardConfig, "probe": ProbeConfig, "report": ReportConfig,
                "columns": ColumnsConfig, **GROUPS}
    for group, schema in sections.items():
        node = cfg[group] if group else cfg
        unknown = sorted(set(node) - {f.name for f in dataclasses.fields(schema)} - {"hydra"})
        if unknown:
            prefix = f"{group}." if group else ""
            raise UsageError(f"unknown config key '{prefix}{unknown[0]}' (see prep/config/schema.py for the keys)")


def settings_of(cfg: DictConfig | Config) -> Config:
    """The typed, checked settings of a composed config (a ``Config`` is returned as it is: checked already)."""
    if isinstance(cfg, Config):
        return cfg

    reject_unknown_keys(cfg)
    if "hydra" in cfg:  # composed with Hydra's own node: a copy without it keeps the schema's type
        cfg = cfg.copy()
        with open_dict(cfg):
            del cfg["hydra"]
    settings = OmegaConf.to_object(cfg)
    check(settings)
    return settings


def _positive(value: int, key: str) -> None:
    if value < 1:
        raise UsageError(f"{key}: need a whole number >= 1, got {value}")


def check(settings: Config) -> None:
    """Every check that needs no file or model: raises ``UsageError`` naming the key."""
    if not 0 <= settings.seed < SEED_LIMIT:  # numpy's and torch's generators take no negative seed
        raise UsageError(f"seed: need a whole number from 0 to {SEED_LIMIT - 1}, got {settings.seed}")
    shard = settings.shard
    if shard.count < 1 or not 0 <= shard.index < shard.count:
        raise UsageError(f"shard.index={shard.index} shard.count={shard.count}: need shard.count >= 1 and "
                         "0 <= shard.index < shard.count")
    if shard.count > 1 and settings.step not in ("encode", "mine"):
        raise UsageError(f"shard.count={shard.count} with step={settings.step}: shards split step=encode (the pool's "
                         "chunks) and step=mine (blocks of rows, joined by step=merge); leave shard unset")
    _positive(settings.encode_chunk, "encode_chunk")
    check_mining(settings.miner)
    miner = settings.miner
    for key in ("batch_size", "search_batch_size", "query_block", "index_nprobe", "hnsw_m", "hnsw_ef_search"):
        _positive(getattr(miner, key), f"miner.{key}")
    for key in ("query_max_length", "passage_max_length"):  # null: the model's own (prep/models/lengths.py)
        if getattr(miner, key) is not None:
            _positive(getattr(miner, key), f"miner.{key}")
    if miner.index_nlist is not None:
        _positive(miner.index_nlist, "miner.index_nlist")
    check_retrieval(miner)
    if str(miner.model_class or "").startswith("decoder-only") and miner.pooling_method not in (None, "last_token"):
        raise UsageError(f"miner.pooling_method={miner.pooling_method} with miner.model_class={miner.model_class}: "
                         "decoder-only embedders pool the last token; pass miner.pooling_method=null")
    hardware = settings.hardware
    check_device_names(hardware.devices)
    if hardware.use_bf16 not in (True, False, "auto"):
        raise UsageError(f"hardware.use_bf16: '{hardware.use_bf16}' is not true, false or auto")
    _positive(hardware.max_batch_tokens, "hardware.max_batch_tokens")
    _positive(hardware.pad_to_multiple_of, "hardware.pad_to_multiple_of")
    _positive(settings.reranker.batch_size, "reranker.batch_size")
    for key in ("max_length", "query_max_length"):
        if getattr(settings.reranker, key) is not None:
            _positive(getattr(settings.reranker, key), f"reranker.{key}")
    parse_length_list(settings.splitter.length_list)
    if settings.splitter.num_proc < 1:
        raise UsageError(f"splitter.num_proc must be >= 1, got {settings.splitter.num_proc}")
    check_probe(settings.probe, settings.step)
    if settings.report.rows < 0:
        raise UsageError(f"report.rows: need a whole number >= 0 (0: no row viewer), got {settings.report.rows}")
    check_tracking(settings.tracking)


def check_device_names(devices: Any) -> None:
    """Each of ``hardware.devices`` names a device FlagEmbedding and torch know (whether it is there is
    ``runtime.check_devices``'s question)."""
    named = [devices] if isinstance(devices, (str, int)) else list(devices or [])
    for device in named:
        if isinstance(device, bool) or not (isinstance(device, int) and device >= 0
                                            or isinstance(device, str) and DEVICE_NAME.fullmatch(device)):
            raise UsageError(f"hardware.devices={devices}: '{device}' is not a device; name cpu, cuda, cuda:N, mps, "
                             "npu:N or a GPU number (or a list of them), or pick hardware=cpu|gpu|multi_gpu")


def check_retrieval(miner: MinerConfig) -> None:
    """BM25's and the fusion's settings (``not x >= 0`` also refuses NaN)."""
    if str(miner.fusion) == "union" and str(miner.retriever) != "hybrid":
        raise UsageError(f"miner.fusion=union: fuses the lists of miner.retriever=hybrid, but the retriever is "
                         f"{miner.retriever}; drop it, or pick miner.retriever=hybrid")
    if miner.rrf_k < 0:
        raise UsageError(f"miner.rrf_k: need a whole number >= 0, got {miner.rrf_k}")
    if not 0 < miner.bm25_share < 1:
        raise UsageError(f"miner.bm25_share: need 0 < value < 1 (the share of the fused list taken from BM25's), got "
                         f"{miner.bm25_share}; for one retriever alone use miner.retriever=dense or bm25")
    if not (math.isfinite(miner.bm25_k1) and miner.bm25_k1 >= 0):
        raise UsageError(f"miner.bm25_k1: need a finite number >= 0, got {miner.bm25_k1}")
    if not 0 <= miner.bm25_b <= 1:
        raise UsageError(f"miner.bm25_b: need 0 <= value <= 1, got {miner.bm25_b}")


def check_tracking(tracking: TrackingConfig) -> None:
    """What can be known before any work: MLflow is installed, the experiment has a name. Whether the tracker
    answers is found out after the run (a warning then, never a lost run)."""
    if str(tracking.backend) != "mlflow":
        return
    if not str(tracking.experiment).strip():
        raise UsageError("tracking.experiment: need a name for the MLflow experiment, got an empty one")

    if importlib.util.find_spec("mlflow") is None:
        raise UsageError("tracking=mlflow: MLflow is not installed; `make install` installs it (the tracking extra), "
                         "or pip install mlflow")
    uri = str(tracking.uri or "")
    if uri.lower().startswith("file:") and os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() != "true":
        folder = re.sub(r"^file:(//[^/]*)?", "", uri, flags=re.IGNORECASE) or "."
        raise UsageError(f"tracking.uri={uri}: MLflow 3 refuses its file store (a folder of runs); give the folder "
                         f"instead (tracking.uri={folder}: runs go into {folder}/mlflow.db, SQLite), migrate an old "
                         "store with `mlflow migrate-filestore`, or set MLFLOW_ALLOW_FILE_STORE=true")


def check_probe(probe: ProbeConfig, step: str) -> None:
    for key in ("steps", "mini_batch_size"):
        _positive(getattr(probe, key), f"probe.{key}")
    if probe.max_length is not None:
        _positive(probe.max_length, "probe.max_length")
    if probe.batch_size < 2:
        raise UsageError(f"probe.batch_size: need 2 or more (the loss ranks each query's positive against the "
                         f"batch's other passages), got {probe.batch_size}")
    if probe.negatives < 0 or probe.dev_distractors < 0:
        raise UsageError("probe.negatives and probe.dev_distractors: need a whole number >= 0")
    if not (math.isfinite(probe.learning_rate) and probe.learning_rate > 0):
        raise UsageError(f"probe.learning_rate: need a finite number > 0, got {probe.learning_rate}")
    if not 0 < probe.dev_fraction < 1:
        raise UsageError(f"probe.dev_fraction: need 0 < value < 1, got {probe.dev_fraction}")
    if probe.dev_corpus and not probe.dev:
        raise UsageError("probe.dev_corpus is the corpus of probe.dev's queries: set probe.dev too")
    for key in ("temperature", "teacher_temperature"):
        value = getattr(probe, key)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UsageError(f"probe.{key}: need a finite number > 0, got {value}")
    if step == "probe" and probe.loss == "distill":
        if not probe.teacher:
            raise UsageError("probe.loss=distill learns from teacher scores of the mined rows, which mining leaves "
                             "out: add probe.teacher=true (the teacher is reranker=..., e.g. reranker=embedder)")
        if probe.negatives < 1:
            raise UsageError("probe.loss=distill compares the student's and the teacher's distributions over a "
                             "row's positive and negatives: need probe.negatives >= 1")
