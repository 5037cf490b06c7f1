"""A teacher's scores of (query, passage) pairs through the cache, for ``step=score`` and teacher denoising."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from prep.cache.identity import pair_key, teacher_identity
from prep.cache.store import Cache, ScoreEntries
from prep.progress import progress as progress_bar

if TYPE_CHECKING:
    from prep.models.teacher import EmbedderTeacher, RerankerTeacher

log = logging.getLogger(__name__)

CHUNK_PAIRS = 4096  # pairs scored between two cache writes: a crash loses at most one chunk


class CachedScores:
    """Scores of one teacher: the cache's scores are read once, and each newly scored chunk is added to it.

    ``pairs`` and ``pairs_scored`` count, over every call, the distinct pairs asked for and those that
    went through the teacher.
    """

    def __init__(self, teacher: RerankerTeacher | EmbedderTeacher, cache: Cache):
        self.teacher = teacher
        self.entries = ScoreEntries(cache, teacher_identity(teacher))
        self.known = self.entries.load()
        self.pairs = 0
        self.pairs_scored = 0

    def scores(self, pairs: list[tuple[str, str]], description: str = "score pairs") -> list[float]:
        """The score of every pair (distinct pairs expected), from the cache where known, else scored now
        in chunks of ``CHUNK_PAIRS`` across queries."""

        keys = [pair_key(q, p) for q, p in pairs]
        missing = [i for i, key in enumerate(keys) if key not in self.known]
        self.entries.count(hits=len(pairs) - len(missing), misses=len(missing))
        self.pairs += len(pairs)
        self.pairs_scored += len(missing)
        log.info("%s: %d pairs cached, %d to score", self.teacher.description, len(pairs) - len(missing),
                 len(missing))
        if missing:
            with progress_bar(total=len(missing), desc=description, unit="pair") as progress:
                for start in range(0, len(missing), CHUNK_PAIRS):
                    chunk = missing[start:start + CHUNK_PAIRS]
                    values = self.teacher.score([pairs[i] for i in chunk])
                    chunk_keys = [keys[i] for i in chunk]
                    self.known.update(zip(chunk_keys, values))
                    self.entries.add(chunk_keys, values)
                    progress.update(len(chunk))
        return [self.known[key] for key in keys]
