"""``step=pipeline``: mine, then score, then split, in one run folder, each output feeding the next.

    RUN/mined.jsonl -> RUN/scored.jsonl -> RUN/split/NAME_len-L-R.jsonl
    RUN/mine/, RUN/score/, RUN/split_step/ (each step's summary.json), and RUN/summary.json with all three

``input`` is the training file to mine (the bundled sample by default); ``output`` is the split folder.
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import OmegaConf

from prep import mine, paths, score, split
from prep.io import ensure_writable, write_json
from prep.timing import PhaseTimer, run_metadata

log = logging.getLogger(__name__)


def _step_config(cfg: Any, step: str, run_dir: str, **keys: Any) -> Any:
    return OmegaConf.merge(cfg, {"step": step, "run_dir": run_dir, **keys})


def run(cfg: Any) -> dict[str, Any]:
    timer = PhaseTimer()
    out_dir = paths.run_dir(cfg)
    mined = out_dir / "mined.jsonl"
    scored = out_dir / "scored.jsonl"
    split_dir = paths.user_path(cfg.output) or out_dir / "split"
    for path in (mined, scored):
        ensure_writable(path, cfg.overwrite)

    summaries = {}
    with timer("mine"):
        summaries["mine"] = mine.run(_step_config(cfg, "mine", str(out_dir / "mine"), output=str(mined)))
    with timer("score"):
        summaries["score"] = score.run(_step_config(cfg, "score", str(out_dir / "score"), input=str(mined),
                                                    output=str(scored)))
    with timer("split"):
        summaries["split"] = split.run(_step_config(cfg, "split", str(out_dir / "split_step"), input=str(scored),
                                                    output=str(split_dir)))
    summary = {
        "step": "pipeline",
        "rows": summaries["mine"]["rows"],
        "output": str(split_dir),
        "summary": str(out_dir / "summary.json"),
        "seconds": timer.seconds(("mine", "score", "split")),
        **{name: {k: v for k, v in s.items() if k not in ("config", "overrides")} for name, s in summaries.items()},
        **run_metadata(cfg),
    }
    write_json(out_dir / "summary.json", summary)
    log.info("pipeline: %s -> %s -> %s", mined, scored, split_dir)
    return summary
