"""``step=mine``'s preparation, once for all blocks: the pool's embeddings, the search depth, the teacher's score
cache, the BM25 index, and which pool passages rows claim as their positives (or near duplicates of them)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from prep.cache.embeddings import CachedEncoder
from prep.cache.lexical import bm25_index
from prep.cache.scores import CachedScores
from prep.retrieval import sampling
from prep.retrieval.search import search as exact_search
from prep.steps.mine.records import Claims, Input, Mining, Shared

if TYPE_CHECKING:
    from prep.models.teacher import EmbedderTeacher, RerankerTeacher

log = logging.getLogger(__name__)

NEAR_DEPTH = 32  # neighbours of each positive looked at for near duplicates


def prepare(mining: Mining, inputs: Input, work_dir: Path, teacher: RerankerTeacher | EmbedderTeacher | None) -> Shared:
    """What every block reads: the pool's embeddings (chunks on disk), those of positives outside the pool (every
    input row's: other rows' positives are claimed, near duplicates included; encoded only for similarities), the
    search depth, the teacher's score cache and, with ``miner.retriever=bm25|hybrid``, the BM25 index."""
    settings = mining.step.settings
    encoder = CachedEncoder(settings.miner, settings.hardware, mining.cache, mining.step.timer, settings.cache_dtype,
                            settings.encode_chunk)
    pool_embeddings = encoder.pool_embeddings(inputs.pool, work_dir)
    outside = inputs.placement.outside
    outside_embeddings = encoder.passages(outside) if outside else np.empty((0, 0), np.float32)
    scores = None
    if teacher is not None:
        scores = CachedScores(teacher, mining.cache)
    lexical, lexical_cached = None, False
    if settings.miner.retriever != "dense":
        with mining.step.phase("search"):
            lexical, lexical_cached = bm25_index(inputs.pool, mining.cache, settings.miner.bm25_k1,
                                                 settings.miner.bm25_b)
    return Shared(encoder, pool_embeddings, dict(zip(outside, outside_embeddings)), search_depth(mining, inputs),
                  scores, lexical, lexical_cached)


def search_depth(mining: Mining, inputs: Input) -> int:
    """How many passages each query's search returns: the rank window's end (deep enough to see a positive at rank
    ``miner.max_positive_rank``), clamped to the pool; the same for every block and shard of the input."""
    low, high = mining.rules.rank_window
    if mining.rules.max_positive_rank is not None:
        high = max(high, mining.rules.max_positive_rank + inputs.placement.most_positives)
    if high > len(inputs.pool):
        log.warning("range_for_sampling %d-%d reaches past the corpus of %d passages: searching the top %d",
                    low, high, len(inputs.pool), len(inputs.pool))
    return min(high, len(inputs.pool))


def claim_positives(mining: Mining, inputs: Input, shared: Shared) -> Claims:
    """Which pool passages are some row's positive and, with ``miner.other_positive_threshold``, which are near
    duplicates of one (among each positive's ``NEAR_DEPTH`` nearest passages). Claims name input row numbers (a
    shard's rows are claimed by the whole input's)."""
    placement = inputs.placement
    exact: dict[int, int] = {}
    for number, pid in zip(placement.owners().tolist(), placement.positives.tolist()):
        if pid >= 0:
            sampling.claim(exact, pid, number)
    if mining.rules.other_positive_threshold is None:
        return Claims(exact)
    return Claims(exact, near_claims(mining, inputs, shared))


def near_claims(mining: Mining, inputs: Input, shared: Shared) -> dict[int, int]:
    """Pool passages at least ``miner.other_positive_threshold`` similar to a row's positive, each claimed by that
    row; the positives' embeddings read a ``miner.query_block`` at a time."""
    placement, threshold = inputs.placement, mining.rules.other_positive_threshold
    owners = placement.owners()
    near: dict[int, int] = {}
    outside = [shared.outside[text] for text in placement.outside]
    block = mining.step.settings.miner.query_block
    for start in range(0, len(placement.positives), block):
        ids = placement.positives[start:start + block]
        inside = iter(shared.pool.rows(ids[ids >= 0]) if (ids >= 0).any() else ())
        vectors = np.stack([next(inside) if pid >= 0 else outside[-1 - pid] for pid in ids.tolist()])
        with mining.step.phase("search"):
            similarities, neighbours = exact_search(shared.pool, vectors.astype(np.float32),
                                                    min(NEAR_DEPTH, len(inputs.pool)),
                                                    batch_size=mining.step.settings.miner.search_batch_size)
        for owner, row_similarities, row_ids in zip(owners[start:start + block].tolist(), similarities, neighbours):
            for similarity, pid in zip(row_similarities.tolist(), row_ids.tolist()):
                if pid >= 0 and similarity >= threshold:
                    sampling.claim(near, pid, owner)
    return near
