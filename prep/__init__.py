"""prep: hard negatives, teacher scores and length buckets for embedding-model training data."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

STEP_MODULES = {"mine": "prep.mine", "score": "prep.score", "split": "prep.split", "pipeline": "prep.pipeline"}


def run_step(cfg: Any) -> dict[str, Any]:
    """Run ``cfg.step`` and return its summary. Each step's module is imported only when used."""
    if cfg.step not in STEP_MODULES:
        from prep.errors import UsageError

        raise UsageError(f"step: '{cfg.step}' is not a step; choose one of {', '.join(STEP_MODULES)}")
    from prep.schema import check

    check(cfg)
    return importlib.import_module(STEP_MODULES[cfg.step]).run(cfg)
