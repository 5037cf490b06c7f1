"""A refused run leaves its run folder's Hydra record as it was.

Hydra writes ``.hydra/`` (``config.yaml``, ``hydra.yaml``, ``overrides.yaml``) into the run folder before the step
starts. A second run into a finished run's folder that the step then refuses (its output exists, say) would leave
the record of the refused command beside the files the first run made. ``KeepRecord.on_run_start`` (a Hydra
callback, ``conf/config.yaml``) reads the record before Hydra writes it; ``restore``, called by ``run.py`` when the
step refuses, puts it back. A single run only: each job of a multirun has a folder of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

_before: dict[Path, bytes | None] = {}  # each record file of this process's run folder, as it was (None: absent)


class KeepRecord(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        subdir = config.hydra.output_subdir
        if subdir is None:
            return
        folder = Path(str(config.hydra.run.dir)) / str(subdir)
        _before.clear()
        if folder.is_dir():
            for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
                path = folder / name
                _before[path] = path.read_bytes() if path.is_file() else None


def restore() -> None:
    """The run folder's record as it was before this run (nothing to do where the folder was new)."""
    for path, content in _before.items():
        if content is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(content)
    _before.clear()
