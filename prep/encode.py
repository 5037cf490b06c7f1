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
import tempfile
from pathlib import Path
from typing import Any

from prep import embed, paths
from prep.cache import Cache
from prep.errors import UsageError
from prep.io import check_training_row, read_jsonl, write_json
from prep.mine import input_paths, open_pool
from prep.timing import PhaseTimer, run_metadata

log = logging.getLogger(__name__)


def check_shard(index: int, count: int) -> None:
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"shard.index={index} shard.count={count}: need shard.count >= 1 and "
                         "0 <= shard.index < shard.count")


def run(cfg: Any) -> dict[str, Any]:
    timer = PhaseTimer()
    index, count = int(cfg.shard.index), int(cfg.shard.count)
    check_shard(index, count)
    if not cfg.cache:
        raise UsageError("step=encode writes embeddings into the cache: cache=false leaves nothing for step=mine")
    out_dir = paths.run_dir(cfg)
    input_path, pool_path = input_paths(cfg)
    with timer("load"):
        rows = read_jsonl(input_path, check_training_row) if pool_path is None else []
    cache = Cache(cfg.cache_dir, cfg.cache)
    encoder = embed.CachedEncoder(cfg.miner, cfg.hardware, cache, timer, cfg.cache_dtype, cfg.encode_chunk)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".encode-") as work_dir:
        with timer("load"):
            pool = open_pool(rows, pool_path, Path(work_dir))
        with pool:
            corpus_size = len(pool)
            starts = embed.chunk_starts(corpus_size, cfg.encode_chunk)
            own_chunks = embed.shard_chunks(len(starts), index, count)
            log.info("corpus of %d passages in %d chunks of %d; shard %d of %d encodes chunks %s", corpus_size,
                     len(starts), cfg.encode_chunk, index, count,
                     own_chunks[:8] + (["..."] if len(own_chunks) > 8 else []))
            encoder.encode_shard(pool, own_chunks)
    summary = {
        "step": "encode",
        "corpus_size": corpus_size,
        "chunk_size": cfg.encode_chunk,
        "chunks": len(starts),
        "shard": {"index": index, "count": count, "chunks": own_chunks},
        "chunks_encoded": encoder.chunks["encoded"],
        "chunks_cached": encoder.chunks["cached"],
        "encoded": encoder.encoded,
        "seconds": timer.seconds(("load", "encode")),
        "cache": cache.stats(),
        "input": str(input_path) if pool_path is None else None,
        "candidate_pool": str(pool_path) if pool_path else None,
        "summary": str(out_dir / "summary.json"),
        **run_metadata(cfg),
    }
    log.info("shard %d of %d: %d chunks encoded, %d already cached", index, count, encoder.chunks["encoded"],
             encoder.chunks["cached"])
    write_json(out_dir / "summary.json", summary)
    return summary
