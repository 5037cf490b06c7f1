"""The steps, each a function ``run(cfg) -> summary`` that tests can call directly, and their registry.

Step modules import only light libraries at the top (numpy, the standard library); models, torch and
faiss are imported inside the phase that needs them, so a config error answers in a second.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prep.config.schema import Step
from prep.steps import encode, mine, pipeline, score, split

STEPS: dict[Step, Callable[[Any], dict[str, Any]]] = {
    Step.encode: encode.run,
    Step.mine: mine.run,
    Step.score: score.run,
    Step.split: split.run,
    Step.pipeline: pipeline.run,
}


def run_step(cfg: Any) -> dict[str, Any]:
    """Check the settings once, give this multirun job its device, and run ``step``; returns the summary."""
    from prep.config.settings import settings_of
    from prep.models.runtime import with_job_device

    settings = with_job_device(settings_of(cfg))
    return STEPS[settings.step](settings)
