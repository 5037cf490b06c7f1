"""``step=mine``'s search of one block: each query's top ``Shared.top_k`` passages, from the dense index, BM25, or
both fused (``miner.retriever``), with the dense similarity of every candidate."""

from __future__ import annotations

import numpy as np

from prep.cache.searches import CachedSearch
from prep.retrieval.lexical import rrf_fuse, union_fuse
from prep.retrieval.sampling import RowResult
from prep.steps.mine.records import (
    SOURCE_BM25,
    SOURCE_DENSE,
    SOURCE_NAMES,
    Embedded,
    Mining,
    RowBlock,
    Searched,
    Shared,
)


def search(mining: Mining, block: RowBlock, embedded: Embedded, shared: Shared) -> Searched:
    """The top ``shared.top_k`` passages of each query of the block."""
    settings = mining.step.settings
    miner, top_k = settings.miner, shared.top_k
    if miner.retriever == "dense":
        similarities, ids, index = CachedSearch(settings, mining.cache, mining.step.timer, top_k).run(
            shared.pool, embedded.queries, embedded.query_key)
        return Searched(similarities, ids, top_k, index)
    with mining.step.phase("search"):
        _, lexical_ids = shared.lexical.search([row["query"] for row in block.rows], top_k)
    index = {"retriever": str(miner.retriever), "bm25_index_cached": shared.lexical_cached}
    sources = np.where(lexical_ids >= 0, SOURCE_BM25, 0).astype(np.int8)
    ids = lexical_ids
    if miner.retriever == "hybrid":
        _, dense_ids, dense_index = CachedSearch(settings, mining.cache, mining.step.timer, top_k).run(
            shared.pool, embedded.queries, embedded.query_key)
        index.update(dense_index, fusion=str(miner.fusion), rrf_k=miner.rrf_k, bm25_share=miner.bm25_share)
        ids = fused(mining, dense_ids, lexical_ids, top_k)
        sources = (SOURCE_DENSE * row_member(ids, dense_ids) + SOURCE_BM25 * row_member(ids, lexical_ids)
                   ).astype(np.int8)
    with mining.step.phase("sample"):
        similarities = dense_similarities(shared, embedded.queries, ids)
    return Searched(similarities, ids, top_k, index, sources)


def fused(mining: Mining, dense_ids: np.ndarray, lexical_ids: np.ndarray, top_k: int) -> np.ndarray:
    """Each query's dense and BM25 lists fused (``miner.fusion``: reciprocal ranks, or shares of a union); -1 past
    a list's end."""
    miner = mining.step.settings.miner
    ids = np.full_like(lexical_ids, -1)
    for row in range(len(ids)):
        ranked = [dense_ids[row].tolist(), lexical_ids[row].tolist()]
        merged = (rrf_fuse(ranked, miner.rrf_k, top_k) if miner.fusion == "rrf"
                  else union_fuse(ranked, [1 - miner.bm25_share, miner.bm25_share], top_k))
        ids[row, :len(merged)] = merged
    return ids


def row_member(ids: np.ndarray, lists: np.ndarray) -> np.ndarray:
    """Whether each ``ids[r, j]`` (not -1) is in row ``r`` of ``lists``."""
    return np.array([np.isin(row, other[other >= 0]) & (row >= 0) for row, other in zip(ids, lists)], dtype=bool)


def dense_similarities(shared: Shared, queries: np.ndarray, ids: np.ndarray, batch: int = 256) -> np.ndarray:
    """The dense similarity of each query to each of its candidates (``-inf`` where the id is -1), reading the
    pool's embeddings for a batch of queries at a time."""
    result = np.full(ids.shape, -np.inf, dtype=np.float32)
    for start in range(0, len(ids), batch):
        part = ids[start:start + batch]
        wanted = np.unique(part[part >= 0])
        if not len(wanted):
            continue
        vectors = shared.pool.rows(wanted)
        for offset, row in enumerate(part):
            valid = row >= 0
            result[start + offset, valid] = vectors[np.searchsorted(wanted, row[valid])] @ queries[start + offset]
    return result


def negative_sources(searched: Searched, index: int, result: RowResult) -> list[str]:
    """Which retrievers found each of a row's mined negatives (``random`` for a fill), in its order."""
    if searched.sources is None:
        found = ["dense"] * result.window_count
    else:
        found = [SOURCE_NAMES[int(searched.sources[index, rank])] for rank in result.ranks]
    return found + ["random"] * (len(result.negative_ids) - result.window_count)
