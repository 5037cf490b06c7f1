"""Where things are: the bundled sample data, the run's output folder, user paths."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hydra.core.hydra_config import HydraConfig

from prep.errors import UsageError
from prep.io.sources import resolve

if TYPE_CHECKING:
    from prep.config.schema import Config
    from prep.io.sources import Source

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
SAMPLE_TRAIN = DATA_DIR / "sample_train.jsonl"
SAMPLE_POOL = DATA_DIR / "sample_pool.jsonl"
SAMPLE_MINED = DATA_DIR / "sample_mined.jsonl"  # the sample mined with the defaults: input of step=score


def run_dir(settings: Config) -> Path:
    """The folder this run writes into: ``run_dir`` when set, else Hydra's output folder."""
    if settings.run_dir:
        path = Path(settings.run_dir)
    else:
        if not HydraConfig.initialized():
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


def input_sources(settings: Config) -> tuple[Source, Source | None]:
    """The training rows and candidate pool of a mine (or encode, or probe) run; with no ``input``, the bundled
    sample and its pool. A DataError when either names nothing readable."""
    split = settings.input_split
    pool = resolve(settings.miner.candidate_pool, split) if settings.miner.candidate_pool else None
    if settings.input is None:
        return resolve(SAMPLE_TRAIN, split), pool or resolve(SAMPLE_POOL, split)
    return resolve(settings.input, split), pool


def newest_output(settings: Config, step: str, name: str) -> Path | None:
    """The newest ``<outputs_dir>/<step>/<run>/<name>`` (run folders are named by their start time), or None."""
    found = sorted(Path(settings.outputs_dir).glob(f"{step}/*/{name}"))
    return found[-1].absolute() if found else None


def rejected_beside(output: Path) -> Path:
    """The rejected rows' file of an output (``NAME.jsonl``, ``NAME.parquet`` or a folder ``NAME``):
    ``NAME.rejected.jsonl`` beside it (shared/DESIGN.md)."""
    name = output.name if output.is_dir() or not output.suffix else output.stem
    return output.parent / f"{name}.rejected.jsonl"
