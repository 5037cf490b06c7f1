"""BM25 through bm25s against a direct computation of Lucene's BM25, reciprocal rank fusion on fixed lists, and the
index's cache."""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
import pytest

from prep.cache.lexical import bm25_index
from prep.cache.store import Cache
from prep.retrieval.lexical import BM25Index, rrf_fuse, union_fuse

CORPUS = ["The cat sat on the mat.", "Dogs chase cats and other dogs.", "A web server for static files.",
          "The apt package manager installs packages.", "Cat food for old cats, cat toys.",
          "Mat weaving for beginners."]
STOP = {"a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not",
        "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was",
        "will", "with"}


def words(text: str) -> list[str]:
    return [w for w in re.findall(r"(?u)\b\w\w+\b", text.lower()) if w not in STOP]


def lucene_bm25(query: str, corpus: list[str], k1: float = 1.5, b: float = 0.75) -> list[float]:
    """Lucene's BM25, written out: idf = ln(1 + (N - df + 0.5) / (df + 0.5)), and no (k1 + 1) in the numerator
    (Lucene dropped it: it scales every score alike; Kamphuis et al., ECIR 2020, compare the variants)."""
    documents = [Counter(words(text)) for text in corpus]
    average = sum(sum(d.values()) for d in documents) / len(documents)
    scores = []
    for document in documents:
        length = sum(document.values())
        score = 0.0
        for term in set(words(query)):
            df = sum(1 for d in documents if term in d)
            if df and document[term]:
                idf = math.log(1 + (len(documents) - df + 0.5) / (df + 0.5))
                tf = document[term]
                score += idf * tf / (tf + k1 * (1 - b + b * length / average))
        scores.append(score)
    return scores


@pytest.mark.parametrize("query", ["cat on a mat", "dogs and cats", "package manager", "unknown words only"])
def test_bm25_ranks_and_scores_equal_lucenes_formula(query):
    scores, ids = BM25Index.build(CORPUS, 1.5, 0.75).search([query], k=len(CORPUS))
    expected = lucene_bm25(query, CORPUS)
    order = sorted((i for i, s in enumerate(expected) if s > 0), key=lambda i: (-expected[i], i))
    assert ids[0].tolist() == order + [-1] * (len(CORPUS) - len(order))  # no shared word: no candidate
    assert np.allclose(scores[0][:len(order)], [expected[i] for i in order], rtol=1e-5)


def test_rrf_fuses_by_reciprocal_rank_with_ties_by_id():
    # a: 1/61 + 1/63; b: 1/62 + 1/61; c: 1/63 + 1/62; d: only the first list, -1 skipped
    assert rrf_fuse([[10, 20, 30, 40], [20, -1, 10, 30]], k=60, depth=10) == [20, 10, 30, 40]
    assert rrf_fuse([[1, 2], [2, 1]], k=60, depth=1) == [1]  # a tie: the smaller id
    assert rrf_fuse([[5, 6, 7]], k=0, depth=2) == [5, 6]


def test_union_gives_each_list_its_share_of_the_places():
    dense, bm25 = [1, 2, 3, 4, 5, 6, 7, 8], [11, 12, 13, 14, 15, 16, 17, 18]
    assert union_fuse([dense, bm25], [0.5, 0.5], depth=6) == [1, 11, 2, 12, 3, 13]  # alternate, the first list first
    assert union_fuse([dense, bm25], [0.75, 0.25], depth=8) == [1, 2, 3, 11, 4, 5, 6, 12]  # three places to one
    assert union_fuse([dense, bm25], [0.25, 0.75], depth=4) == [11, 12, 1, 13]  # the tie at 4.0: the first list


def test_union_places_a_passage_once_and_lets_a_list_that_runs_out_give_way():
    # 2 and 3 are in both lists: placed once, by the list that reached them first; -1 (no candidate) skipped
    assert union_fuse([[1, 2, 3, 4], [2, -1, 3, 5]], [0.5, 0.5], depth=10) == [1, 2, 3, 5, 4]
    assert union_fuse([[1, 2, 3, 4, 5], [9]], [0.5, 0.5], depth=4) == [1, 9, 2, 3]
    assert union_fuse([[], [-1, -1]], [0.5, 0.5], depth=3) == []


class Pool:
    def __init__(self, texts):
        self._texts = texts

    def texts(self):
        return list(self._texts)

    def iter_texts(self):
        return iter(self._texts)


def test_the_index_is_cached_by_pool_and_settings_and_a_damaged_one_rebuilt(tmp_path):
    cache = Cache(tmp_path / "cache")
    first, cached = bm25_index(Pool(CORPUS), cache, 1.5, 0.75)
    again, cached_again = bm25_index(Pool(CORPUS), cache, 1.5, 0.75)
    assert (cached, cached_again) == (False, True)
    assert np.array_equal(first.search(["cat"], 3)[1], again.search(["cat"], 3)[1])
    assert bm25_index(Pool(CORPUS), cache, 1.2, 0.75)[1] is False  # other settings, another entry
    assert bm25_index(Pool(CORPUS[:-1]), cache, 1.5, 0.75)[1] is False  # another pool
    for entry in (tmp_path / "cache" / "bm25").iterdir():
        for file in entry.iterdir():
            file.write_text("damaged", encoding="utf-8")
    rebuilt, from_cache = bm25_index(Pool(CORPUS), cache, 1.5, 0.75)
    assert from_cache is False and rebuilt.search(["cat"], 3)[1].tolist() == first.search(["cat"], 3)[1].tolist()


def test_our_batched_search_equals_bm25s_own_retrieve():
    queries = ["cat on a mat", "cat cat cat", "dogs and cats", "static web files", "unknown words only"]
    index = BM25Index.build(CORPUS, 1.5, 0.75)
    scores, ids = index.search(queries, k=len(CORPUS))
    tokens = index.tokenizer.tokenize(queries, update_vocab=False, return_as="ids", show_progress=False)
    their_ids, their_scores = index.retriever.retrieve(tokens, k=len(CORPUS), show_progress=False)
    for row in range(len(queries)):
        theirs = sorted((-float(s), int(i)) for i, s in zip(their_ids[row], their_scores[row]) if s > 0)
        assert ids[row][:len(theirs)].tolist() == [i for _, i in theirs]
        assert np.allclose(scores[row][:len(theirs)], [-s for s, _ in theirs], rtol=1e-6)
