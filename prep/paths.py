"""Where things are: the bundled sample data, the run's output folder, user paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent / "data"
SAMPLE_TRAIN = DATA_DIR / "sample_train.jsonl"
SAMPLE_POOL = DATA_DIR / "sample_pool.jsonl"
SAMPLE_MINED = DATA_DIR / "sample_mined.jsonl"  # the sample mined with the defaults: input of step=score


def run_dir(cfg: Any) -> Path:
    """The folder this run writes into: ``run_dir`` when set, else Hydra's output folder."""
    if cfg.get("run_dir"):
        path = Path(cfg.run_dir)
    else:
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():
            from prep.errors import UsageError

            raise UsageError("run_dir is not set and no Hydra run is active: pass run_dir=FOLDER")
        path = Path(HydraConfig.get().runtime.output_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def user_path(path: str | None) -> Path | None:
    """A path given on the command line, relative to where the command was started.

    Hydra does not change the working directory (``hydra.job.chdir`` is false), so a relative
    path already means the launch folder; ``~`` is expanded.
    """
    if path is None:
        return None
    return Path(path).expanduser().absolute()
