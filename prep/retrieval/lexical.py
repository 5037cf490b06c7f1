"""BM25 candidates (``miner.retriever=bm25|hybrid``) through ``bm25s``, and the two ways of fusing them with the dense
list: reciprocal rank fusion, or the union with a share of the places per list.

Tokenisation is ``bm25s``'s own: lower-cased, words of two or more word characters (``(?u)\\b\\w\\w+\\b``), its 33
English stop words removed, no stemming; scoring is Lucene's BM25 with ``miner.bm25_k1`` and ``miner.bm25_b``.
The index is kept in the cache (``cache.lexical``), so a sweep builds it once. A query's results with a score of 0
(no word in common) are not candidates: they are padded with id -1, as an exact search pads what it cannot fill.

``bm25s``, ``scipy`` and ``torch`` are imported inside the functions that use them: only miner.retriever=bm25 or
hybrid needs BM25.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from prep.retrieval.search import canonical_topk

if TYPE_CHECKING:
    import bm25s
    from bm25s.tokenization import Tokenizer

log = logging.getLogger(__name__)

TOKENIZER = {"lower": True, "splitter": r"(?u)\b\w\w+\b", "stopwords": "english", "stemmer": None}


def rrf_fuse(ranked_lists: Sequence[Sequence[int]], k: int, depth: int) -> list[int]:
    """Reciprocal rank fusion: each passage scores ``sum(1 / (k + rank + 1))`` over the lists that hold it (ranks
    0-based, ids < 0 skipped); the ``depth`` best, ties by id, so the order never depends on the lists' order."""
    scores: dict[int, float] = {}
    for ranked in ranked_lists:
        for rank, pid in enumerate(ranked):
            if pid >= 0:
                scores[int(pid)] = scores.get(int(pid), 0.0) + 1.0 / (k + rank + 1)
    return [pid for pid, _ in sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:depth]]


def union_fuse(ranked_lists: Sequence[Sequence[int]], shares: Sequence[float], depth: int) -> list[int]:
    """The union of the lists, ``depth`` places at most, each list given about its share of them: each place goes
    to the list furthest behind its share (the smallest ``(taken + 1) / share``, ties to the earlier list), which
    gives its best passage not yet placed (ids < 0 skipped). A list that runs out leaves its places to the others,
    so a passage found by several lists is placed once, by whichever reached it first."""
    positions = [0] * len(ranked_lists)
    taken = [0] * len(ranked_lists)
    placed: set[int] = set()
    fused: list[int] = []
    while len(fused) < depth:
        best = None
        for index, ranked in enumerate(ranked_lists):
            while positions[index] < len(ranked) and (ranked[positions[index]] < 0
                                                      or int(ranked[positions[index]]) in placed):
                positions[index] += 1
            if positions[index] < len(ranked) and shares[index] > 0:
                due = (taken[index] + 1) / shares[index]
                if best is None or due < best[0]:
                    best = (due, index)
        if best is None:
            break
        index = best[1]
        pid = int(ranked_lists[index][positions[index]])
        fused.append(pid)
        placed.add(pid)
        taken[index] += 1
        positions[index] += 1
    return fused


class BM25Index:
    """A pool's BM25 index: built with ``bm25s`` (or loaded from the cache) and searched for the top ``k``."""
    def __init__(self, retriever: bm25s.BM25, tokenizer: Tokenizer):
        self.retriever, self.tokenizer = retriever, tokenizer

    @classmethod
    def build(cls, texts: Sequence[str], k1: float, b: float) -> BM25Index:
        import bm25s
        from bm25s.tokenization import Tokenizer

        tokenizer = Tokenizer(**TOKENIZER)
        tokens = tokenizer.tokenize(list(texts), update_vocab=True, return_as="ids", show_progress=False)
        retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
        retriever.index(tokens, show_progress=False)
        return cls(retriever, tokenizer)

    def save(self, folder: Path) -> None:
        """Into ``folder`` (the cache's ``FolderEntries`` renames it into place whole)."""
        self.retriever.save(str(folder), show_progress=False)
        self.tokenizer.save_vocab(str(folder))
        self.tokenizer.save_stopwords(str(folder))

    @classmethod
    def load(cls, folder: Path) -> BM25Index:
        """The index saved in ``folder``; whatever ``bm25s`` raises when it is damaged passes on."""
        import bm25s
        from bm25s.tokenization import Tokenizer

        retriever = bm25s.BM25.load(str(folder), show_progress=False, verbosity=0)
        tokenizer = Tokenizer(**TOKENIZER)
        tokenizer.load_vocab(str(folder))
        tokenizer.load_stopwords(str(folder))
        return cls(retriever, tokenizer)

    def search(self, queries: Sequence[str], k: int, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of each query's ``k`` best passages, best first, ties by id; id -1 where the score is 0.

        ``bm25s`` keeps each (term, passage) score in a sparse term-by-passage matrix and scores one query at a time;
        here a batch of queries (term counts) is multiplied by that matrix at once and the top k taken as the dense
        search takes it (``search.canonical_topk``): the same scores; 10,000 queries over 60,863 passages took
        5.3 s here against 23.7 s through ``retrieve`` (docs/benchmarks.md)."""
        import scipy.sparse
        import torch

        index = self.retriever.scores
        passages = int(index["num_docs"])
        terms = len(index["indptr"]) - 1
        matrix = scipy.sparse.csr_matrix((index["data"], index["indices"], index["indptr"]), shape=(terms, passages))
        k = min(k, passages)
        all_scores = np.zeros((len(queries), k), dtype=np.float32)
        all_ids = np.full((len(queries), k), -1, dtype=np.int64)
        for start in range(0, len(queries), batch):
            tokens = self.tokenizer.tokenize(list(queries[start:start + batch]), update_vocab=False, return_as="ids",
                                             show_progress=False)
            rows = np.repeat(np.arange(len(tokens)), [len(t) for t in tokens])
            columns = np.fromiter((t for query in tokens for t in query), dtype=np.int64, count=len(rows))
            counts = scipy.sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, columns)),
                                             shape=(len(tokens), terms))
            scores = torch.from_numpy(np.ascontiguousarray((counts @ matrix).toarray(), dtype=np.float32))
            values, ids = canonical_topk(scores, k)
            values, ids = values.numpy(), ids.numpy().astype(np.int64)
            ids[values <= 0] = -1
            all_scores[start:start + len(tokens)] = np.where(values > 0, values, 0)
            all_ids[start:start + len(tokens)] = ids
        return all_scores, all_ids
