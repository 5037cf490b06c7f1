"""Seconds per phase, and what a summary records about the run that made it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


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

    def seconds(self, phases: tuple[str, ...] = ()) -> dict[str, float]:
        """Seconds per phase; ``phases`` are reported even when they did not run (0.0)."""
        result = {name: 0.0 for name in phases}
        result.update({name: round(value, 3) for name, value in self._phases.items()})
        result["total"] = round(time.perf_counter() - self._start, 3)
        return result


def peak_memory_gb() -> float | None:
    """This process's peak resident memory so far, in GB (None where the platform does not say)."""
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):
        return None
    return round(peak * (1 if sys.platform == "darwin" else 1024) / 1e9, 3)  # bytes on macOS, KiB elsewhere


def run_metadata(cfg: Any) -> dict[str, Any]:
    """The command-line overrides (when run under Hydra), the seed, the process's peak memory and the config."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    overrides: list[str] = []
    if HydraConfig.initialized():
        overrides = list(HydraConfig.get().overrides.task)
    return {"overrides": overrides, "seed": int(cfg.seed), "peak_memory_gb": peak_memory_gb(),
            "config": OmegaConf.to_container(cfg, resolve=True)}
