"""The rules that pick negatives for one row, as pure functions of scores and ids.

Nothing here touches a model or a file, so each rule can be tested on fixed numbers.
Ranks are 0-based positions in one query's search results; ``2-200`` keeps ranks 2..199.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from prep.errors import UsageError

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_RANGE_STRING = re.compile(rf"^\s*({_NUMBER})\s*-\s*({_NUMBER})\s*$")


class RangeError(UsageError):
    """A ``range_for_sampling`` or ``similarity_range`` value that cannot be used."""


def _two_numbers(value: object, key: str) -> tuple[float, float]:
    if isinstance(value, str):
        match = _RANGE_STRING.match(value)
        if not match:
            raise RangeError(f"{key}: '{value}' is not a range; write it as 'LOW-HIGH' (e.g. 2-200) or [LOW, HIGH]")
        return float(match.group(1)), float(match.group(2))
    if isinstance(value, Iterable) and not isinstance(value, (bytes, dict)):
        items = list(value)
        if len(items) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
            return float(items[0]), float(items[1])
    raise RangeError(f"{key}: {value!r} is not a range; write it as 'LOW-HIGH' (e.g. 2-200) or [LOW, HIGH]")


def parse_rank_range(value: object, key: str = "miner.range_for_sampling") -> tuple[int, int]:
    """``'2-200'`` or ``[2, 200]`` -> ``(2, 200)``: whole ranks, ``0 <= low < high``."""
    low, high = _two_numbers(value, key)
    if low != int(low) or high != int(high):
        raise RangeError(f"{key}: ranks must be whole numbers, got {value!r}")
    if low < 0 or high <= low:
        raise RangeError(f"{key}: need 0 <= LOW < HIGH, got {value!r}")
    return int(low), int(high)


def parse_similarity_range(value: object, key: str = "miner.similarity_range") -> tuple[float, float] | None:
    """``'0.3-0.8'`` or ``[0.3, 0.8]`` -> ``(0.3, 0.8)``, inclusive; ``None`` means no bound."""
    if value is None:
        return None
    low, high = _two_numbers(value, key)
    if high < low:
        raise RangeError(f"{key}: LOW must not exceed HIGH, got {value!r}")
    return low, high


@dataclass(frozen=True)
class Candidate:
    """One search result of a query: where it ranked, which corpus passage, and its similarity."""

    rank: int
    passage_id: int
    similarity: float


def qualifying_candidates(
    passage_ids: Sequence[int],
    similarities: Sequence[float],
    rank_window: tuple[int, int],
    similarity_window: tuple[float, float] | None,
    excluded_ids: set[int],
) -> list[Candidate]:
    """Search results that may become negatives, best rank first.

    ``passage_ids``/``similarities`` are one query's results in rank order (faiss pads missing
    results with id -1, which are skipped). A candidate qualifies when its rank lies in
    ``[low, high)``, it is not excluded (a positive or the query itself) and, when a similarity
    window is given, its similarity lies inside it (bounds included).
    """
    low, high = rank_window
    kept = []
    for rank in range(low, min(high, len(passage_ids))):
        passage_id = int(passage_ids[rank])
        if passage_id < 0 or passage_id in excluded_ids:
            continue
        similarity = float(similarities[rank])
        if similarity_window is not None and not similarity_window[0] <= similarity <= similarity_window[1]:
            continue
        kept.append(Candidate(rank, passage_id, similarity))
    return kept


def sample_candidates(candidates: Sequence[Candidate], count: int, rng: np.random.Generator) -> list[Candidate]:
    """``count`` candidates drawn uniformly without replacement (all when fewer), in rank order."""
    if len(candidates) <= count:
        return list(candidates)
    picked = rng.choice(len(candidates), size=count, replace=False)
    return [candidates[i] for i in sorted(picked.tolist())]


def random_fill(corpus_size: int, count: int, forbidden_ids: set[int], rng: np.random.Generator) -> list[int]:
    """Up to ``count`` distinct random passage ids in ``[0, corpus_size)``, none of them forbidden.

    Returns fewer only when the corpus has fewer allowed passages. Draws one id at a time while
    most of the corpus is allowed (cheap on large corpora), else walks a seeded permutation.
    """
    allowed = corpus_size - sum(1 for i in forbidden_ids if 0 <= i < corpus_size)
    count = min(count, allowed)
    if count <= 0:
        return []
    chosen: list[int] = []
    taken = set(forbidden_ids)
    if count * 2 <= allowed:
        while len(chosen) < count:
            passage_id = int(rng.integers(corpus_size))
            if passage_id not in taken:
                taken.add(passage_id)
                chosen.append(passage_id)
        return chosen
    for passage_id in rng.permutation(corpus_size).tolist():
        if passage_id not in taken:
            chosen.append(passage_id)
            if len(chosen) == count:
                break
    return chosen


def row_rng(seed: int, row_index: int) -> np.random.Generator:
    """A generator of its own for each row, so a row's negatives depend on neither batching nor order."""
    return np.random.default_rng([seed, row_index])
