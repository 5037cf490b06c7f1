"""Search speed: 10,000 queries over a pool of the Debian corpus's size, at mining's depth (k = 200).

    python bench/search_speed.py [--queries 10000] [--passages 60835] [--dim 384] [--top-k 200] [--corpus DIR]

Times the project's default search (``prep.retrieval.search.search``) against FlagEmbedding's way (a faiss
IndexFlatIP searched in batches of 64 queries, as its hn_mine.py does) on the same random unit
vectors, and prints one JSON line per method. Search time hardly depends on the vectors' values.

With ``--corpus DIR`` (a Debian corpus folder: ``corpus.jsonl`` and ``train.jsonl``), also times BM25
(``miner.retriever=bm25``: ``prep.retrieval.lexical``) on its real texts: building the index, then retrieving the
top k of ``--queries`` training queries (the issue: retrieval faster than the dense search of as many queries).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def unit_rows(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    rows = rng.standard_normal((count, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--passages", type=int, default=60_835)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--top-k", type=int, default=200)
    parser.add_argument("--corpus", default=None, help="a Debian corpus folder: also time BM25 on its texts")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    passages, queries = unit_rows(rng, args.passages, args.dim), unit_rows(rng, args.queries, args.dim)

    import faiss

    from prep.retrieval.search import search

    started = time.perf_counter()
    index = faiss.IndexFlatIP(args.dim)
    index.add(passages)
    for start in range(0, len(queries), 64):
        index.search(queries[start:start + 64], args.top_k)
    reference = time.perf_counter() - started
    print(json.dumps({"method": "faiss IndexFlatIP, batches of 64 (FlagEmbedding)", "seconds": round(reference, 2)}))
    started = time.perf_counter()
    search(passages, queries, args.top_k)
    ours = time.perf_counter() - started
    print(json.dumps({"method": "prep.retrieval.search.search (defaults)", "seconds": round(ours, 2),
                      "ratio": round(ours / reference, 3)}))
    if args.corpus:
        bm25(Path(args.corpus), args.queries, args.top_k, ours)


def bm25(folder: Path, count: int, top_k: int, dense_seconds: float) -> None:
    from prep.retrieval.lexical import BM25Index

    texts = list(dict.fromkeys(json.loads(line)["text"] for line in open(folder / "corpus.jsonl", encoding="utf-8")))
    queries = [json.loads(line)["query"] for line in open(folder / "train.jsonl", encoding="utf-8")][:count]
    started = time.perf_counter()
    index = BM25Index.build(texts, 1.5, 0.75)
    built = time.perf_counter() - started
    started = time.perf_counter()
    index.search(queries, top_k)
    retrieved = time.perf_counter() - started
    print(json.dumps({"method": f"BM25 (bm25s): build the index of {len(texts)} passages", "seconds": round(built, 2)}))
    print(json.dumps({"method": f"BM25 (bm25s): retrieve the top {top_k} of {len(queries)} queries",
                      "seconds": round(retrieved, 2), "ratio_to_dense_search": round(retrieved / dense_seconds, 3)}))


if __name__ == "__main__":
    main()
