"""``step=encode``: encode one shard of the passage pool into the shared cache, for ``step=mine`` to find.

    python run.py -m step=encode shard.index='range(0,8)' shard.count=8 hydra/launcher=submitit_slurm \\
        input=train.jsonl miner.candidate_pool=pool.jsonl cache_dir=/shared/prep-cache

The pool is cut into chunks of ``encode_chunk`` passages (by position, after the same
deduplication as ``step=mine``); shard ``I`` of ``N`` encodes chunks ``I, I + N, I + 2N, ...``, each
written to the cache as soon as it is done. A following ``step=mine`` with the same input, pool,
model and ``cache_dir`` reads every chunk and encodes no passage. Chunks already in the cache are
skipped, so a shard that was interrupted resumes where it stopped.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prep import contract
from prep.cache import tables
from prep.cache.embeddings import CachedEncoder, chunk_starts, shard_chunks
from prep.cache.store import Cache
from prep.config.settings import settings_of
from prep.errors import UsageError
from prep.io.jsonl import check_training_row
from prep.io.paths import input_sources
from prep.io.pool import open_pool
from prep.models.availability import check_model_source
from prep.models.embedder import reproducibility
from prep.models.lengths import miner_lengths
from prep.models.runtime import check_devices
from prep.steps.frame import StepRun

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from prep.config.schema import Config

log = logging.getLogger(__name__)


def run(cfg: DictConfig | Config) -> dict[str, Any]:
    settings = settings_of(cfg)
    check_model_source(settings.miner.model_name_or_path, "miner.model_name_or_path", settings.miner.cache_dir)
    check_devices(settings.hardware)
    resolved = miner_lengths(settings)
    settings = resolved.settings
    if not settings.cache:
        raise UsageError("step=encode writes embeddings into the cache: cache=false leaves nothing for step=mine")
    step = StepRun(settings, "encode")
    index, count = settings.shard.index, settings.shard.count
    source, pool_source = input_sources(settings)
    cache = Cache(settings.cache_dir, settings.cache)
    reader = tables.reader(settings, cache)
    with step.phase("load"):
        rows = reader.training_rows(source, check_training_row) if pool_source is None else []
    encoder = CachedEncoder(settings.miner, settings.hardware, cache, step.timer, settings.cache_dtype,
                            settings.encode_chunk)
    with step.work_dir(".encode-") as work_dir:
        with step.phase("load"):
            pool = open_pool(rows, pool_source, Path(work_dir), reader)
        with pool:
            corpus_size = len(pool)
            chunks = len(chunk_starts(corpus_size, settings.encode_chunk))
            own_chunks = shard_chunks(chunks, index, count)
            log.info("corpus of %d passages in %d chunks of %d; shard %d of %d encodes chunks %s", corpus_size,
                     chunks, settings.encode_chunk, index, count,
                     own_chunks[:8] + (["..."] if len(own_chunks) > 8 else []))
            encoder.encode_shard(pool, own_chunks)
    log.info("shard %d of %d: %d chunks encoded, %d already cached", index, count, encoder.chunks["encoded"],
             encoder.chunks["cached"])
    return step.finish(contract.EncodeSummary(
        corpus_size=corpus_size, chunk_size=settings.encode_chunk, chunks=chunks,
        shard=contract.EncodeShard(index, count, own_chunks), chunks_encoded=encoder.chunks["encoded"],
        chunks_cached=encoder.chunks["cached"], encoded=encoder.encoded, cache=contract.CacheStats(**cache.stats()),
        reproducible=reproducibility(settings.miner, settings.hardware), lengths=resolved.summary(),
        input=source.label if pool_source is None else None,
        candidate_pool=pool_source.label if pool_source else None), ("load", "encode"))
