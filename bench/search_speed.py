"""Search speed: 10,000 queries over a pool of the Debian corpus's size, at mining's depth (k = 200).

    python bench/search_speed.py [--queries 10000] [--passages 60835] [--dim 384] [--top-k 200]

Times the project's default search (``prep.retrieval.search.search``) against FlagEmbedding's way (a faiss
IndexFlatIP searched in batches of 64 queries, as its hn_mine.py does) on the same random unit
vectors, and prints one JSON line per method. Search time hardly depends on the vectors' values.
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


if __name__ == "__main__":
    main()
