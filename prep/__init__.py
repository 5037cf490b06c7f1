"""prep: hard negatives, teacher scores and length buckets for embedding-model training data."""

from __future__ import annotations

import importlib
import os
from typing import Any

# oneDNN keeps a compiled kernel (and its scratch memory) per tensor shape; with length-sorted batches
# every batch has new shapes, and the default cache of 1,024 entries grew a run's memory by 0.5 GB.
# Four entries still let the layers of one forward pass share them. Read when torch first uses oneDNN.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "4")

__version__ = "0.1.0"

STEP_MODULES = {"encode": "prep.encode", "mine": "prep.mine", "score": "prep.score", "split": "prep.split",
                "pipeline": "prep.pipeline"}


def run_step(cfg: Any) -> dict[str, Any]:
    """Run ``cfg.step`` and return its summary. Each step's module is imported only when used."""
    if cfg.step not in STEP_MODULES:
        from prep.errors import UsageError

        raise UsageError(f"step: '{cfg.step}' is not a step; choose one of {', '.join(STEP_MODULES)}")
    from prep.schema import check

    check(cfg)
    from prep.devices import assign

    assign(cfg)
    return importlib.import_module(STEP_MODULES[cfg.step]).run(cfg)
