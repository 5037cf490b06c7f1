"""Entry point: ``python run.py step=mine|score|split|pipeline|encode|probe|merge [overrides]``; see README.md."""

from __future__ import annotations

import logging
import signal
import sys
import threading

import hydra
from omegaconf import DictConfig

from prep.config.schema import register

register()
log = logging.getLogger("prep")


def stop(signum: int, frame: object) -> None:
    """SIGTERM (a scheduler's or a user's kill) ends the run as an exception does: temporary folders and
    half-written outputs are removed on the way out."""
    raise SystemExit(128 + signum)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Runs the step; returns its objective (``step=probe``: ``probe.metric`` after training) for Hydra's
    sweepers, None for the other steps."""
    from prep.errors import PrepError
    from prep.io import hydra_record
    from prep.steps import run_step

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
    try:
        summary = run_step(cfg)
    except PrepError as exc:
        # Bad input or settings: one clear line, no traceback, nothing written (the run folder's record included).
        log.error("%s", exc)
        hydra_record.restore()
        sys.exit(2)
    for key in ("output", "summary"):
        if summary.get(key):
            log.info("%s: %s", key, summary[key])
    return summary.get("objective")


if __name__ == "__main__":
    try:
        main()
    finally:
        # The run is over: the interpreter's last garbage collection would walk every object torch, transformers
        # and FlagEmbedding made (about 1 s on a 2-core machine) only to free memory the exit frees anyway.
        import gc

        gc.freeze()
