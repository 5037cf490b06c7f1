"""Teacher denoising: drop candidates that the teacher scores close to or above the row's positive.

Pairs are scored in passes over every row at once, in chunks across queries, through the score cache, so
a second run with the same teacher scores nothing. With ``sampling_strategy=random`` one pass scores every
qualifying candidate. With ``top`` only the best-ranked are needed: pass ``p`` scores, for every row still
short, ``lacking x 2**p`` of its next candidates, so a row whose first candidates pass costs
``negative_number`` pairs, not the whole window. The positive's teacher score is the lowest among the
row's positives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prep.retrieval.sampling import Candidate, MiningRules, teacher_filter

if TYPE_CHECKING:
    from prep.io.pool import PassagePool


@dataclass
class Denoised:
    kept: list[list[Candidate]]  # each row's candidates that the teacher let through, best rank first
    removed: int  # candidates the teacher removed
    not_needed: int  # candidates never scored (sampling_strategy=top: the rows were full before them)
    info: dict[str, Any]  # for summary.json's teacher_filter
    positive_scores: list[float]  # the teacher's score of each row's (least scored) positive


class PassageTexts:
    """Texts of pool ids, read once per pass: memory holds one pass's texts, not the window's."""

    def __init__(self, pool: PassagePool):
        self.pool = pool
        self.known: dict[int, str] = {}

    def of(self, candidates: list[Candidate]) -> list[str]:
        missing = list({c.passage_id for c in candidates} - self.known.keys())
        self.known.update(zip(missing, self.pool.take(missing)))
        return [self.known[c.passage_id] for c in candidates]

    def clear(self) -> None:
        self.known.clear()


def next_batch(candidates: list[list[Candidate]], kept: list[list[Candidate]], next_index: list[int],
               rules: MiningRules, passes: int) -> dict[int, list[Candidate]]:
    """The candidates each row sends to the teacher in pass ``passes`` (row index -> candidates).

    ``top``: a row still short asks for twice as many as it lacks each pass, so a row whose positive the
    teacher scores low walks its window in a few passes, not ``negative_number`` at a time. ``random``:
    every candidate, in one pass. (Five parameters: the pass's whole state.)
    """
    batch = {}
    for index, qualifying in enumerate(candidates):
        lacking = rules.negative_number - len(kept[index])
        wanted = lacking * 2 ** passes if rules.sampling_strategy == "top" else len(qualifying)
        if wanted > 0 and next_index[index] < len(qualifying):
            batch[index] = qualifying[next_index[index]:next_index[index] + wanted]
    return batch


def denoise(scores: Any, rows: list[dict[str, Any]], pool: PassagePool, candidates: list[list[Candidate]],
            rules: MiningRules) -> Denoised:
    """``candidates`` (each row's qualifying candidates) less those the teacher removes; ``scores`` is the
    teacher's ``cache.scores.CachedScores``."""
    texts = PassageTexts(pool)
    top = rules.sampling_strategy == "top"

    def scored(pairs: list[tuple[str, str]]) -> dict[tuple[str, str], float]:
        distinct = list(dict.fromkeys(pairs))
        return dict(zip(distinct, scores.scores(distinct, description="teacher scores")))

    first = scored([(row["query"], text) for row, qualifying in zip(rows, candidates)
                    for text in [*row["pos"], *([] if top else texts.of(qualifying))]])
    positive_scores = [min(first[(row["query"], p)] for p in row["pos"]) for row in rows]
    kept: list[list[Candidate]] = [[] for _ in rows]
    next_index, removed, passes = [0] * len(rows), 0, 0
    while batch := next_batch(candidates, kept, next_index, rules, passes):
        known = scored([(rows[i]["query"], text) for i, batch_candidates in batch.items()
                        for text in texts.of(batch_candidates)]) if top else first
        for index, batch_candidates in batch.items():
            next_index[index] += len(batch_candidates)
            query = rows[index]["query"]
            passed, dropped = teacher_filter(batch_candidates, [known[(query, t)] for t in texts.of(batch_candidates)],
                                             positive_scores[index], rules.teacher_relative_margin,
                                             rules.teacher_absolute_margin)
            kept[index] += passed
            removed += dropped
        texts.clear()
        if not top:
            break
        passes += 1
    not_needed = sum(len(q) - n for q, n in zip(candidates, next_index))
    info = {"teacher": scores.teacher.description, "pairs": scores.pairs, "pairs_scored": scores.pairs_scored,
            "candidates_not_needed": not_needed, "positive_score": None,  # described over every block by the summary
            "relative_margin": rules.teacher_relative_margin, "absolute_margin": rules.teacher_absolute_margin}
    return Denoised(kept, removed, not_needed, info, positive_scores)
