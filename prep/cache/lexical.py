"""The BM25 index of a pool (``miner.retriever=bm25|hybrid``) in the cache: ``<cache_dir>/bm25/<key>/``, ``bm25s``'
own files, keyed by the pool's texts, ``miner.bm25_k1``, ``miner.bm25_b``, the tokenizer and the ``bm25s``
version; an entry that does not load is rebuilt (``store.Cache.discard``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prep.cache.identity import texts_fingerprint
from prep.cache.store import Cache, FolderEntries
from prep.retrieval.lexical import TOKENIZER, BM25Index

if TYPE_CHECKING:
    from prep.io.pool import PassagePool


class LexicalEntries(FolderEntries):
    """BM25 indexes: one folder of ``bm25s``' files per pool, under the index's settings."""

    namespace = "bm25"


def bm25_index(pool: PassagePool, cache: Cache, k1: float, b: float) -> tuple[BM25Index, bool]:
    """The pool's index from the cache, or built (and stored); and whether it came from the cache."""
    if not cache.enabled:
        return BM25Index.build(pool.texts(), k1, b), False
    entries = LexicalEntries(cache, {"k1": k1, "b": b, "method": "lucene", "tokenizer": TOKENIZER,
                                     "bm25s": _bm25s_version()})
    key = entries.key(pool=texts_fingerprint(pool.iter_texts()))
    index = entries.get(key, BM25Index.load)
    if index is not None:
        return index, True
    index = BM25Index.build(pool.texts(), k1, b)
    entries.put(key, index.save)
    return index, False


def _bm25s_version() -> str:
    import bm25s

    return str(getattr(bm25s, "__version__", "unknown"))
