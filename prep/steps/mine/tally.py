"""The summary's figures of ``step=mine``, added up block by block (datatrove's pipeline steps keep their stats
the same way: one method that adds a unit of work's counts)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from prep.retrieval import sampling
from prep.steps.mine.records import Block, Claims
from prep.steps.mine.retrieve import negative_sources

ARRAYS = ("counts", "filled", "positives", "negatives", "window", "ranks", "positive_ranks", "teacher_positive")


class Tally:
    """Counts as numbers, distributions as float32 and int32 arrays (a few bytes per negative), so that nothing else
    of a block outlives it (docs/scaling.md, "Large training sets"). Only ``add`` changes it."""

    def __init__(self) -> None:
        self.rows = self.rejected = self.stale = self.own = self.other_positives = 0
        self.qualifying = self.not_needed = 0
        self.removed: Counter = Counter({name: 0 for name in sampling.FILTERS})
        self.by_retriever: Counter = Counter({"dense": 0, "bm25": 0, "both": 0, "random": 0})
        self.arrays: dict[str, list[np.ndarray]] = {name: [] for name in ARRAYS}
        self.teacher: dict[str, Any] | None = None
        self.index: dict[str, Any] = {}

    def add(self, block: Block, claims: Claims) -> None:
        """One mined block's figures (its rejected rows count as rows, and nowhere else)."""
        rows, selected, qualified = block.rows, block.selected, block.qualified
        kept = [index for index in range(len(rows.rows)) if index not in block.ranked.rejected]
        for name, values in distributions(block, kept).items():
            self.arrays[name].append(values)
        self.rows += len(rows.rows)
        self.rejected += len(block.ranked.rejected)
        self.stale += sum(1 for row in rows.rows if "neg_scores" in row)
        self.own += sum(len(selected.kept_inputs[index]) for index in kept)
        self.other_positives += other_positive_negatives(block, claims, kept)
        self.removed.update(qualified.removed)
        self.qualifying += sum(len(q) for q in qualified.candidates)
        self.not_needed += qualified.not_needed
        self.by_retriever.update(negatives_by_retriever(block, kept))
        self.teacher = qualified.teacher  # the teacher's pair counts are its cache's, cumulative over the blocks
        self.index = block.searched.index

    def values(self, name: str) -> np.ndarray:
        parts = self.arrays[name]
        return np.concatenate(parts) if parts else np.empty(0)


def distributions(block: Block, kept: list[int]) -> dict[str, np.ndarray]:
    """The block's values of each distribution the summary describes, over its rows not rejected."""
    results = [block.selected.results[index] for index in kept]
    own = [len(block.selected.kept_inputs[index]) for index in kept]
    similarities = block.embedded.positive_similarities
    values = {
        "counts": ([len(r.negative_ids) + o for r, o in zip(results, own)], np.int32),
        "filled": ([len(r.negative_ids) - r.window_count for r in results], np.int32),
        "positives": ([s for index in kept for s in similarities[index]], np.float32),
        "negatives": ([s for r in results for s in r.similarities], np.float32),
        "window": ([s for r in results for s in r.similarities[:r.window_count]], np.float32),
        "ranks": ([rank for r in results for rank in r.ranks], np.int32),
        "positive_ranks": ([-1 if rank is None else rank for rank in block.ranked.ranks], np.int32),
        "teacher_positive": (block.qualified.positive_scores or [], np.float32),
    }
    return {name: np.asarray(items, dtype=dtype) for name, (items, dtype) in values.items()}


def negatives_by_retriever(block: Block, kept: list[int]) -> dict[str, int]:
    """How many written negatives each retriever found (``dense``, ``bm25``; one both found counts for both and
    under ``both``), and how many are random fills."""
    counts = Counter({"dense": 0, "bm25": 0, "both": 0, "random": 0})
    for index in kept:
        for found_by in negative_sources(block.searched, index, block.selected.results[index]):
            if found_by == "dense+bm25":
                counts.update(("dense", "bm25", "both"))
            else:
                counts[found_by] += 1
    return dict(counts)


def other_positive_negatives(block: Block, claims: Claims, kept: list[int]) -> int:
    """How many written negatives are another row's positive (exactly): false negatives in any batch that holds
    both rows."""
    rows, selected = block.rows, block.selected
    count = 0
    for index in kept:
        ids = list(selected.results[index].negative_ids) + [
            pid for pid in map(rows.pool.id_of, selected.kept_inputs[index]) if pid is not None]
        count += len(sampling.claimed_by_other_rows(claims.exact, rows.row_number(index), ids))
    return count
