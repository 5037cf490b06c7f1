"""Entry point: ``python run.py step=mine|score|split|pipeline|encode [overrides]``; see README.md."""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from prep.config.schema import register

register()
log = logging.getLogger("prep")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    from prep.errors import PrepError
    from prep.steps import run_step

    try:
        summary = run_step(cfg)
    except PrepError as exc:
        # Bad input or settings: one clear line, no traceback, nothing written.
        log.error("%s", exc)
        sys.exit(2)
    for key in ("output", "summary"):
        if summary.get(key):
            log.info("%s: %s", key, summary[key])


if __name__ == "__main__":
    main()
