"""The BM25 index of a pool (``miner.retriever=bm25|hybrid``) in the cache: ``<cache_dir>/bm25/<key>/``, ``bm25s``'
own files, keyed by the pool's texts, ``miner.bm25_k1``, ``miner.bm25_b``, the tokenizer and the ``bm25s``
version; an entry that does not load is rebuilt."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prep.cache.identity import fingerprint, texts_fingerprint
from prep.cache.store import Cache
from prep.retrieval.lexical import TOKENIZER, BM25Index

if TYPE_CHECKING:
    from prep.io.pool import PassagePool


def bm25_index(pool: PassagePool, cache: Cache, k1: float, b: float) -> tuple[BM25Index, bool]:
    """The pool's index from the cache, or built (and stored); and whether it came from the cache."""
    if not cache.enabled:
        return BM25Index.build(pool.texts(), k1, b), False
    key = fingerprint({"pool": texts_fingerprint(pool.iter_texts()), "k1": k1, "b": b, "method": "lucene",
                       "tokenizer": TOKENIZER, "bm25s": _bm25s_version()})
    folder = cache.root / "bm25" / key
    if folder.is_dir():
        index = BM25Index.load(folder)
        if index is not None:
            cache.count(hits=1)
            return index, True
    cache.count(misses=1)
    index = BM25Index.build(pool.texts(), k1, b)
    index.save(folder)
    return index, False


def _bm25s_version() -> str:
    import bm25s

    return str(getattr(bm25s, "__version__", "unknown"))
