"""The rules that pick negatives for one row, as pure functions of scores and ids.

Nothing here touches a model or a file, so each rule can be tested on fixed numbers.
Ranks are 0-based positions in one query's search results; ``2-200`` keeps ranks 2..199.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from prep import seeds
from prep.config.schema import MinerConfig
from prep.config.values import check_margin, parse_rank_range, parse_similarity_range
from prep.errors import UsageError

if TYPE_CHECKING:
    from prep.config.schema import Config

class Candidate(NamedTuple):
    """One search result of a query: where it ranked, which corpus passage, and its similarity. (A named tuple:
    a mine run makes one per searched passage of every row, and a tuple is made several times faster than a frozen
    dataclass.)"""

    rank: int
    passage_id: int
    similarity: float


FILTERS = ("positive_or_query", "other_positive", "similarity_range", "relative_margin", "absolute_margin", "teacher")


def score_ceiling(positive_score: float, relative_margin: float | None,
                  absolute_margin: float | None) -> tuple[float | None, float | None]:
    """The highest score a negative may have under each margin, from the row's positive score.

    ``relative_margin`` r keeps scores ``<= (1 - r) * positive`` (r = 0.05 is NV-Retriever's
    TopK-PercPos 95%); ``absolute_margin`` m keeps scores ``<= positive - m``. None: no bound.
    """
    relative = None if relative_margin is None else (1.0 - relative_margin) * positive_score
    absolute = None if absolute_margin is None else positive_score - absolute_margin
    return relative, absolute


@dataclass(frozen=True)
class Window:
    """Which search results may become negatives: ranks ``[low, high)`` (``ranks``), similarities inside
    ``similarities`` (bounds included; None: any), and scores at most each margin's ceiling below the positive's
    (``score_ceiling``; None: no such margin). Every rule but the ranks off by default, so that a test of one rule
    states only that rule."""

    ranks: tuple[int, int]
    similarities: tuple[float, float] | None = None
    relative_margin: float | None = None
    absolute_margin: float | None = None


def qualifying_candidates(passage_ids: Sequence[int], similarities: Sequence[float], window: Window,
                          excluded_ids: AbstractSet[int], *, positive_similarity: float | None = None,
                          other_positive_ids: Collection[int] = ()) -> tuple[list[Candidate], Counter]:
    """Search results that may become negatives, best rank first, and how many each filter removed.

    ``passage_ids``/``similarities`` are one query's results in rank order (faiss pads missing
    results with id -1, which are skipped). A candidate qualifies when its rank lies in
    ``window.ranks``, it is not excluded (a positive or the query itself), not another row's positive (or near
    duplicate of one: ``other_positive_ids``, with ``miner.exclude_other_positives``), its similarity lies inside
    ``window.similarities`` when one is given (bounds included), and it is at most each margin's
    ceiling below ``positive_similarity`` (see ``score_ceiling``). Filters apply in that order; each
    removed candidate is counted once, by the first filter that removed it.
    """
    low, high = window.ranks
    similarity_window = window.similarities
    relative_ceiling, absolute_ceiling = (None, None) if positive_similarity is None else score_ceiling(
        positive_similarity, window.relative_margin, window.absolute_margin)
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
    return seeds.row_stream(seed, row_index)


@dataclass(frozen=True)
class MiningRules:
    """The sampling settings of one run, parsed (``range_for_sampling`` as ranks, ``similarity_range`` as bounds).
    Every default is the schema's (``MinerConfig``), so a setting is stated once."""

    rank_window: tuple[int, int]
    similarity_window: tuple[float, float] | None
    negative_number: int
    fill_random: bool
    seed: int
    relative_margin: float | None = MinerConfig.relative_margin
    absolute_margin: float | None = MinerConfig.absolute_margin
    sampling_strategy: str = str(MinerConfig.sampling_strategy)
    teacher_filter: bool = MinerConfig.teacher_filter
    teacher_relative_margin: float | None = MinerConfig.teacher_relative_margin
    teacher_absolute_margin: float | None = MinerConfig.teacher_absolute_margin
    exclude_other_positives: bool = MinerConfig.exclude_other_positives
    other_positive_threshold: float | None = MinerConfig.other_positive_threshold
    max_positive_rank: int | None = MinerConfig.max_positive_rank
    keep_input_negatives: bool = MinerConfig.keep_input_negatives

    @property
    def window(self) -> Window:
        return Window(self.rank_window, self.similarity_window, self.relative_margin, self.absolute_margin)

    @classmethod
    def from_settings(cls, settings: Config) -> MiningRules:
        """The rules of ``settings`` (checked by ``config.settings.check``, which runs the same parsers)."""
        miner = settings.miner
        threshold = miner.other_positive_threshold
        return cls(
            rank_window=parse_rank_range(miner.range_for_sampling),
            similarity_window=parse_similarity_range(miner.similarity_range),
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


@dataclass(frozen=True)
class Fill:
    """Where a short row's random fills come from: pool ids ``0..size - 1``, but neither ``excluded`` (the row's
    positives, its query, its own kept negatives) nor ``barred`` (with ``exclude_other_positives``, every row's
    positives and their near duplicates)."""

    size: int
    excluded: AbstractSet[int] = frozenset()
    barred: AbstractSet[int] = frozenset()


def mine_row(row_index: int, qualifying: list[Candidate], rules: MiningRules, fill: Fill,
             wanted: int | None = None) -> RowResult:
    """Pick one row's negatives from its qualifying candidates, filling a short row from ``fill`` (pure: same inputs,
    same ids); ``wanted``: how many (default ``negative_number``; fewer when the row keeps negatives of its own)."""
    wanted = rules.negative_number if wanted is None else wanted
    rng = row_rng(rules.seed, row_index)
    chosen = select_candidates(qualifying, wanted, rules.sampling_strategy, rng)
    negative_ids = [c.passage_id for c in chosen]
    missing = wanted - len(chosen)
    if missing > 0 and rules.fill_random:
        negative_ids += random_fill(fill.size, missing, {*fill.excluded, *negative_ids}, rng, fill.barred)
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
