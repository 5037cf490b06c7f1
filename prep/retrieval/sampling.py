"""The rules that pick negatives for one row, as pure functions of scores and ids.

Nothing here touches a model or a file, so each rule can be tested on fixed numbers.
Ranks are 0-based positions in one query's search results; ``2-200`` keeps ranks 2..199.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from prep.errors import UsageError

if TYPE_CHECKING:
    from prep.config.schema import Config

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
            bad = [v for v in items if not math.isfinite(v)]
            if bad:
                raise RangeError(f"{key}: {value!r} holds {bad[0]}; give two finite numbers")
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


class Candidate(NamedTuple):
    """One search result of a query: where it ranked, which corpus passage, and its similarity. (A named tuple:
    a mine run makes one per searched passage of every row, and a tuple is made several times faster than a frozen
    dataclass.)"""

    rank: int
    passage_id: int
    similarity: float


FILTERS = ("positive_or_query", "other_positive", "similarity_range", "relative_margin", "absolute_margin", "teacher")


def check_margin(value: float | None, key: str) -> float | None:
    """A margin is null or a number >= 0 (a relative margin also < 1)."""
    if value is None:
        return None
    if not math.isfinite(value):
        raise RangeError(f"{key}: {value} is not a margin; give a finite number or null")
    if value < 0 or (key.endswith("relative_margin") and value >= 1):
        bound = "0 <= value < 1" if key.endswith("relative_margin") else "value >= 0"
        raise RangeError(f"{key}: need {bound}, got {value}")
    return float(value)


def score_ceiling(positive_score: float, relative_margin: float | None,
                  absolute_margin: float | None) -> tuple[float | None, float | None]:
    """The highest score a negative may have under each margin, from the row's positive score.

    ``relative_margin`` r keeps scores ``<= (1 - r) * positive`` (r = 0.05 is NV-Retriever's
    TopK-PercPos 95%); ``absolute_margin`` m keeps scores ``<= positive - m``. None: no bound.
    """
    relative = None if relative_margin is None else (1.0 - relative_margin) * positive_score
    absolute = None if absolute_margin is None else positive_score - absolute_margin
    return relative, absolute


def qualifying_candidates(
    passage_ids: Sequence[int],
    similarities: Sequence[float],
    rank_window: tuple[int, int],
    similarity_window: tuple[float, float] | None,
    excluded_ids: set[int],
    *,
    positive_similarity: float | None = None,
    relative_margin: float | None = None,
    absolute_margin: float | None = None,
    other_positive_ids: Collection[int] = (),
) -> tuple[list[Candidate], Counter]:
    """Search results that may become negatives, best rank first, and how many each filter removed.

    ``passage_ids``/``similarities`` are one query's results in rank order (faiss pads missing
    results with id -1, which are skipped). A candidate qualifies when its rank lies in
    ``[low, high)``, it is not excluded (a positive or the query itself), not another row's positive (or near
    duplicate of one: ``other_positive_ids``, with ``miner.exclude_other_positives``), its similarity lies inside
    ``similarity_window`` when one is given (bounds included), and it is at most each margin's
    ceiling below ``positive_similarity`` (see ``score_ceiling``). Filters apply in that order; each
    removed candidate is counted once, by the first filter that removed it. (One parameter per rule, the
    margins keyword-only and off by default, so a test of one rule states only that rule.)
    """
    low, high = rank_window
    relative_ceiling, absolute_ceiling = (None, None) if positive_similarity is None else score_ceiling(
        positive_similarity, relative_margin, absolute_margin)
    # The rules as masks over the window (similarities in float64, as Python compares them), each candidate
    # counted by the first that removes it.
    high = max(low, min(high, len(passage_ids)))
    ids = np.asarray(passage_ids[low:high], dtype=np.int64)
    scores = np.asarray(similarities[low:high], dtype=np.float64)
    none = np.zeros(len(ids), dtype=bool)
    rules = [("positive_or_query", among(ids, excluded_ids)),
             ("other_positive", among(ids, other_positive_ids)),
             ("similarity_range", none if similarity_window is None else
              ~((similarity_window[0] <= scores) & (scores <= similarity_window[1]))),
             ("relative_margin", none if relative_ceiling is None else scores > relative_ceiling),
             ("absolute_margin", none if absolute_ceiling is None else scores > absolute_ceiling)]
    remaining = ids >= 0
    removed: Counter = Counter()
    for name, rule in rules:
        hit = remaining & rule
        if count := int(hit.sum()):
            removed[name] += count
            remaining &= ~hit
    kept = list(map(Candidate._make, zip((np.flatnonzero(remaining) + low).tolist(), ids[remaining].tolist(),
                                         scores[remaining].tolist())))
    return kept, removed


def among(ids: np.ndarray, wanted: Iterable[int]) -> np.ndarray:
    """Which of ``ids`` are in ``wanted`` (a few ids: compared one by one, faster than ``np.isin`` at this size)."""
    values = list(wanted)
    if len(values) > 16:
        return np.isin(ids, np.asarray(values, dtype=np.int64))
    mask = np.zeros(len(ids), dtype=bool)
    for passage_id in values:
        mask |= ids == passage_id
    return mask


def teacher_filter(candidates: Sequence[Candidate], teacher_scores: Sequence[float], positive_score: float,
                   relative_margin: float | None, absolute_margin: float | None) -> tuple[list[Candidate], int]:
    """Candidates whose teacher score stays under both margins' ceilings from the positive's teacher score,
    and how many were removed."""
    relative_ceiling, absolute_ceiling = score_ceiling(positive_score, relative_margin, absolute_margin)
    kept = [candidate for candidate, score in zip(candidates, teacher_scores, strict=True)
            if not ((relative_ceiling is not None and score > relative_ceiling)
                    or (absolute_ceiling is not None and score > absolute_ceiling))]
    return kept, len(candidates) - len(kept)


def sample_candidates(candidates: Sequence[Candidate], count: int, rng: np.random.Generator) -> list[Candidate]:
    """``count`` candidates drawn uniformly without replacement (all when fewer), in rank order."""
    if len(candidates) <= count:
        return list(candidates)
    picked = rng.choice(len(candidates), size=count, replace=False)
    return [candidates[i] for i in sorted(picked.tolist())]


def select_candidates(candidates: Sequence[Candidate], count: int, strategy: str,
                      rng: np.random.Generator) -> list[Candidate]:
    """``random`` (FlagEmbedding's): a uniform draw; ``top`` (NV-Retriever's): the ``count`` best ranked."""
    if strategy == "top":
        return list(candidates[:count])
    if strategy == "random":
        return sample_candidates(candidates, count, rng)
    raise UsageError(f"miner.sampling_strategy: '{strategy}' is not random or top")


def random_fill(corpus_size: int, count: int, forbidden_ids: set[int], rng: np.random.Generator,
                shared_forbidden: AbstractSet[int] = frozenset()) -> list[int]:
    """Up to ``count`` distinct random passage ids in ``[0, corpus_size)``, none of them forbidden.

    ``shared_forbidden``: ids in ``[0, corpus_size)`` forbidden to every row (other rows' positives), looked up
    without being copied per row. Returns fewer only when the corpus has fewer allowed passages. Draws one id at a
    time while most of the corpus is allowed (cheap on large corpora), else walks a seeded permutation.
    """
    own = {i for i in forbidden_ids if 0 <= i < corpus_size and i not in shared_forbidden}
    allowed = corpus_size - len(shared_forbidden) - len(own)
    count = min(count, allowed)
    if count <= 0:
        return []
    chosen: list[int] = []
    taken = set(forbidden_ids)
    if count * 2 <= allowed:
        while len(chosen) < count:
            passage_id = int(rng.integers(corpus_size))
            if passage_id not in taken and passage_id not in shared_forbidden:
                taken.add(passage_id)
                chosen.append(passage_id)
        return chosen
    for passage_id in rng.permutation(corpus_size).tolist():
        if passage_id not in taken and passage_id not in shared_forbidden:
            chosen.append(passage_id)
            if len(chosen) == count:
                break
    return chosen


def row_rng(seed: int, row_index: int) -> np.random.Generator:
    """A generator of its own for each row, so a row's negatives depend on neither batching nor order."""
    return np.random.default_rng([seed, row_index])


@dataclass(frozen=True)
class MiningRules:
    """The sampling settings of one run, parsed and checked (bad values raise ``RangeError`` naming the key)."""

    rank_window: tuple[int, int]
    similarity_window: tuple[float, float] | None
    negative_number: int
    fill_random: bool
    seed: int
    relative_margin: float | None = None
    absolute_margin: float | None = None
    sampling_strategy: str = "random"
    teacher_filter: bool = False
    teacher_relative_margin: float | None = None
    teacher_absolute_margin: float | None = None
    exclude_other_positives: bool = False
    other_positive_threshold: float | None = None
    max_positive_rank: int | None = None
    keep_input_negatives: bool = False

    @classmethod
    def from_settings(cls, settings: Config) -> MiningRules:
        miner = settings.miner
        if miner.negative_number < 0:
            raise RangeError(f"miner.negative_number must be >= 0, got {miner.negative_number}")
        if miner.max_positive_rank is not None and miner.max_positive_rank < 1:
            raise RangeError(f"miner.max_positive_rank must be >= 1 (or null), got {miner.max_positive_rank}")
        threshold = miner.other_positive_threshold
        if threshold is not None and (math.isnan(threshold) or not -1 <= threshold <= 1):
            raise RangeError(f"miner.other_positive_threshold: need a similarity in [-1, 1] (or null), got {threshold}")
        if threshold is not None and not miner.exclude_other_positives:
            raise RangeError("miner.other_positive_threshold applies with miner.exclude_other_positives=true")
        similarity_window = parse_similarity_range(miner.similarity_range)
        if similarity_window and miner.normalize_embeddings and not all(-1 <= b <= 1 for b in similarity_window):
            raise RangeError(f"miner.similarity_range: {miner.similarity_range!r} reaches outside [-1, 1], where the "
                             "cosine of normalised embeddings lies")
        return cls(
            rank_window=parse_rank_range(miner.range_for_sampling),
            similarity_window=similarity_window,
            negative_number=int(miner.negative_number),
            fill_random=bool(miner.fill_random),
            seed=int(settings.seed),
            relative_margin=check_margin(miner.relative_margin, "miner.relative_margin"),
            absolute_margin=check_margin(miner.absolute_margin, "miner.absolute_margin"),
            sampling_strategy=str(miner.sampling_strategy),
            teacher_filter=bool(miner.teacher_filter),
            teacher_relative_margin=check_margin(miner.teacher_relative_margin, "miner.teacher_relative_margin"),
            teacher_absolute_margin=check_margin(miner.teacher_absolute_margin, "miner.teacher_absolute_margin"),
            exclude_other_positives=bool(miner.exclude_other_positives),
            other_positive_threshold=None if threshold is None else float(threshold),
            max_positive_rank=miner.max_positive_rank,
            keep_input_negatives=bool(miner.keep_input_negatives),
        )


@dataclass
class RowResult:
    """One row's negatives: pool ids, how many came from the window (the rest are random fills), and the
    window negatives' ranks and similarities (fills' similarities are appended by the caller)."""

    negative_ids: list[int]
    window_count: int
    ranks: list[int]
    similarities: list[float]


def mine_row(row_index: int, excluded_ids: set[int], qualifying: list[Candidate], corpus_size: int,
             rules: MiningRules, wanted: int | None = None, barred: AbstractSet[int] = frozenset()) -> RowResult:
    """Pick one row's negatives from its qualifying candidates (pure: same inputs, same ids); ``wanted``: how many
    (default ``negative_number``; fewer when the row keeps negatives of its own); ``barred``: ids no random fill
    may take (with ``exclude_other_positives``, every row's positives and their near duplicates)."""
    wanted = rules.negative_number if wanted is None else wanted
    rng = row_rng(rules.seed, row_index)
    chosen = select_candidates(qualifying, wanted, rules.sampling_strategy, rng)
    negative_ids = [c.passage_id for c in chosen]
    missing = wanted - len(chosen)
    if missing > 0 and rules.fill_random:
        negative_ids += random_fill(corpus_size, missing, excluded_ids | set(negative_ids), rng, barred)
    return RowResult(negative_ids, len(chosen), [c.rank for c in chosen], [c.similarity for c in chosen])


def kept_input_negatives(negatives: Sequence[str], positives: Sequence[str], query: str) -> list[str]:
    """A row's own negatives that ``miner.keep_input_negatives`` keeps: first occurrences, none equal to a positive
    or to the query, in their order."""
    barred = {*positives, query}
    return [text for text in dict.fromkeys(negatives) if text not in barred]


SEVERAL = -1  # in claims: a passage more than one row claims


def claim(claims: dict[int, int], passage_id: int, row_index: int) -> None:
    """Record that row ``row_index`` claims ``passage_id``: its row, or ``SEVERAL`` once a second row claims it."""
    owner = claims.setdefault(passage_id, row_index)
    if owner != row_index:
        claims[passage_id] = SEVERAL


def claimed_by_other_rows(claims: dict[int, int], row_index: int, passage_ids: Iterable[int]) -> set[int]:
    """Of ``passage_ids``, those that some row other than ``row_index`` claims (``claims``: passage id -> the row
    whose positive it is, or is a near duplicate of; ``SEVERAL``, two rows or more, so one other than any row)."""
    return {pid for pid in passage_ids if claims.get(pid, row_index) != row_index}


def positive_rank(passage_ids: Sequence[int], similarities: Sequence[float], own_ids: set[int],
                  positive_similarity: float, corpus_size: int) -> int | None:
    """Where a row's (best) positive ranks for its own query among the other passages: how many of them are more
    similar. None when every searched passage beats it and the search did not cover the corpus (it ranks past the
    searched depth)."""
    others = [float(s) for pid, s in zip(passage_ids, similarities) if pid >= 0 and int(pid) not in own_ids]
    rank = sum(1 for s in others if s > positive_similarity)
    if rank == len(others) and len(passage_ids) < corpus_size:
        return None
    return rank
