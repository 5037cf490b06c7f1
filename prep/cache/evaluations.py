"""The untouched student's dev metrics through the cache, for ``step=probe``.

Every job of a probe sweep at one seed evaluates the same fresh student on the same dev set before it
trains (the hold-out and its distractors depend on the seed and the rows, not on the mining settings), so
the first job computes these metrics and the others read them. The identity is the student's files, the
text length and where it runs; the key is the dev set itself, so any change to it misses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from prep.cache.identity import model_fingerprint, texts_fingerprint
from prep.cache.store import ArrayEntries, Cache

if TYPE_CHECKING:
    from prep.evaluation.student import DevSet


class EvaluationEntries(ArrayEntries):
    """Metrics by name: one ``.npz`` (names, values) per student and dev set."""

    namespace = "evaluations"

    def metrics(self, key: str) -> dict[str, float] | None:
        found = self.get(key, ("names", "values"))
        return None if found is None else dict(zip(found["names"].tolist(), found["values"].tolist()))

    def put_metrics(self, key: str, metrics: dict[str, float]) -> None:
        self.put(key, {"names": np.array(list(metrics)),
                       "values": np.array(list(metrics.values()), dtype=np.float64)})


def dev_texts(dev: DevSet) -> Iterator[str]:
    """The dev set as one sequence of texts, ids included, in a fixed order (its cache key)."""
    for name, part in (("queries", dev.queries), ("corpus", dev.corpus)):
        yield name
        for item in part.items():
            yield from item
    yield "relevant"
    for query_id, passages in dev.relevant.items():
        yield query_id
        yield from sorted(passages)
    if dev.ignored:  # a dev set without them keeps the key it had before they existed
        yield "ignored"
        for query_id, passages in dev.ignored.items():
            yield query_id
            yield from sorted(passages)


def cached_evaluation(cache: Cache, student: str, max_length: int, device: str, dev: DevSet,
                      evaluate: Callable[[], dict[str, float]]) -> tuple[dict[str, float], bool]:
    """The metrics ``evaluate()`` gives for the untouched ``student`` on ``dev``, from the cache when a job
    computed them before; and whether they came from it."""
    entries = EvaluationEntries(cache, {"student": model_fingerprint(student), "max_length": max_length,
                                        "device": device})
    key = entries.key(dev=texts_fingerprint(dev_texts(dev)))
    found = entries.metrics(key)
    if found is not None:
        return found, True
    metrics = evaluate()
    entries.put_metrics(key, metrics)
    return metrics, False
