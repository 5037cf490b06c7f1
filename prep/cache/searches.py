"""Top-k search through the cache: exact (torch or faiss) or approximate (IVF, HNSW) with its recall.

A search's entry is keyed by the pool's and the queries' embedding keys and by its identity: the search
settings that can change the neighbours (the backend it resolved to, whether it ran on a GPU, which
searches in fp16, and for an approximate index its settings and the seed that trains it). A run with a
shallower window reads the first columns of a deeper search.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from prep.cache.embeddings import PoolEmbeddings
from prep.cache.identity import identity_of
from prep.cache.store import Cache, SearchEntries
from prep.config.schema import SAMPLING_KEYS
from prep.retrieval.search import IndexSettings, approximate_search, recall_at_k, resolve_backend, search

if TYPE_CHECKING:
    from prep.config.schema import Config, MinerConfig
    from prep.timing import PhaseTimer

log = logging.getLogger(__name__)

# Miner settings that cannot change which neighbours a search finds: the sampling recipe, the rows mined at once,
# where Hugging Face keeps downloads, how recall is sampled. Every other one counts (the model's settings again,
# harmlessly: they are in the embeddings' keys too; search_batch_size shapes the matrix products, so a
# similarity's last bits may follow it). search_backend counts as resolved.
NOT_IN_SEARCH = frozenset({*SAMPLING_KEYS, "batch_size", "cache_dir", "candidate_pool", "query_block",
                           "search_backend", "index_recall_queries", "query_instruction_from_row"})
APPROXIMATE_ONLY = frozenset({"index_nlist", "index_nprobe", "hnsw_m", "hnsw_ef_search"})


def search_identity(miner: MinerConfig, backend: str, on_gpu: bool, seed: int) -> dict[str, Any]:
    approximate = miner.index != "flat"
    ignore = NOT_IN_SEARCH if approximate else NOT_IN_SEARCH | APPROXIMATE_ONLY
    return {**identity_of(miner, ignore=ignore), "backend": backend, "on_gpu": bool(on_gpu),
            "seed": int(seed) if approximate else None}


class CachedSearch:
    """The top ``top_k`` pool passages of each query, from the cache (a search at least as deep) or searched."""
    def __init__(self, settings: Config, cache: Cache, timer: PhaseTimer, top_k: int):
        self.miner, self.seed, self.timer, self.top_k = settings.miner, int(settings.seed), timer, top_k
        self.on_gpu = bool(settings.hardware.use_gpu_for_searching)
        self.backend = resolve_backend(self.miner.search_backend, self.on_gpu, top_k)
        self.entries = SearchEntries(cache, search_identity(self.miner, self.backend, self.on_gpu, self.seed))

    def run(self, passages: PoolEmbeddings, queries: np.ndarray,
            query_key: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """(similarities, ids, what the index was); ``query_key`` is the queries' embedding key."""
        key = self.entries.key(passages=passages.key, queries=query_key)
        if self.miner.index == "flat":
            log.info("exact search of the top %d with %s on the %s", self.top_k, self.backend,
                     "GPU" if self.on_gpu else "CPU")
            similarities, ids = self._cached(key, lambda: self._exact(passages, queries))
            return similarities, ids, {"kind": "flat", "exact": True, "backend": self.backend}
        built: dict[str, Any] = {}
        similarities, ids = self._cached(key, lambda: self._approximate(passages, queries, built))
        info = {"kind": str(self.miner.index), **built, "exact": False, "cached": not built}
        info["recall"] = self._recall(ids, passages, queries)
        return similarities, ids, info

    def _cached(self, key: str, search: Any) -> tuple[np.ndarray, np.ndarray]:
        found = self.entries.get(key, self.top_k)
        if found is not None:
            return found
        with self.timer("search"):
            similarities, ids = search()
        self.entries.put(key, similarities, ids)
        return similarities, ids

    def _exact(self, passages: PoolEmbeddings, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return search(passages, queries, self.top_k, batch_size=self.miner.search_batch_size, use_gpu=self.on_gpu,
                      backend=self.backend)

    def _approximate(self, passages: PoolEmbeddings, queries: np.ndarray,
                     built: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:

        similarities, ids, settings = approximate_search(passages, queries, self.top_k, IndexSettings.of(self.miner),
                                                         self.seed, batch_size=self.miner.search_batch_size)
        built.update(settings)
        return similarities, ids

    def _recall(self, ids: np.ndarray, passages: PoolEmbeddings, queries: np.ndarray) -> dict[str, Any]:
        with self.timer("search"):
            recall = recall_at_k(ids, passages, queries, self.miner.index_recall_queries, self.seed)
        log.info("%s index: recall@%d against exact search %s on %d sampled queries", self.miner.index, self.top_k,
                 recall["recall_at_k"], recall["queries"])
        return recall
