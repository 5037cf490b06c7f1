"""Wall seconds per named phase of a step (``summary.json``'s ``seconds``), for the steps and for the cache's
encoders and searches, which time their own work into the step's phases."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class PhaseTimer:
    """Wall seconds per named phase; ``seconds()`` adds the total since the timer was made."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._phases: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self._phases[phase] = self._phases.get(phase, 0.0) + time.perf_counter() - began

    def add(self, phase: str, seconds: float) -> None:
        """Seconds measured elsewhere (``step=mine``'s writing, less the mining of the blocks it waited for)."""
        self._phases[phase] = self._phases.get(phase, 0.0) + max(0.0, seconds)

    def seconds(self, phases: tuple[str, ...] = ()) -> dict[str, float]:
        """Seconds per phase; ``phases`` are reported even when they did not run (0.0)."""
        result = {name: 0.0 for name in phases}
        result.update({name: round(value, 3) for name, value in self._phases.items()})
        result["total"] = round(time.perf_counter() - self._start, 3)
        return result
