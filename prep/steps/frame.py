"""What every step does around its own work: the run folder, the output and its overwrite check, seconds per
phase, a temporary work folder, and ``finish``, which writes ``summary.json``.

``resource`` (the peak memory) is imported inside the function that uses it: not every platform has it.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig

from prep import contract
from prep.config.choices import OutputFormat, Step
from prep.config.schema import ColumnsConfig
from prep.io import paths
from prep.io.atomic import write_json
from prep.io.formats import check_output
from prep.models.runtime import configure_process
from prep.timing import PhaseTimer

if TYPE_CHECKING:
    from prep.config.schema import Config

log = logging.getLogger(__name__)


def peak_memory_gb() -> float | None:
    """This process's peak resident memory so far, in GB (None where the platform does not say)."""
    try:
        import resource  # not on every platform

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):
        return None
    return round(peak * (1 if sys.platform == "darwin" else 1024) / 1e9, 3)  # bytes on macOS, KiB elsewhere


def stage(settings: Config, step: Step, run_dir: Path, output: Path, input: Path | None = None) -> Config:
    """The settings of a step run inside another (``step=pipeline``'s stages, ``step=probe``'s mine and score), in
    ``run_dir``: it writes FlagEmbedding's JSON lines to ``output``; given ``input``, an earlier stage's file, it
    reads that file in FlagEmbedding's own column names (the user's ``columns.*`` and ``input_split`` were the first
    stage's)."""
    reading = {} if input is None else {"input": str(input), "columns": ColumnsConfig(), "input_split": "train"}
    return dataclasses.replace(settings, step=step, run_dir=str(run_dir), output=str(output),
                               output_format=OutputFormat.flagembedding, **reading)


def run_metadata(settings: Config) -> dict[str, Any]:
    """The command-line overrides (when run under Hydra), the seed, the process's peak memory and the settings."""
    overrides: list[str] = []
    if HydraConfig.initialized():
        overrides = list(HydraConfig.get().overrides.task)
    return {"overrides": overrides, "seed": int(settings.seed), "peak_memory_gb": peak_memory_gb(),
            "config": dataclasses.asdict(settings)}


class StepRun:
    """One step's run: its folder, its output (checked before any work), its timer and its summary.

    ``default_output``: the output's name inside the run folder when ``output`` is not set; None for a
    step that writes no single output file (split checks its folder itself).
    """

    def __init__(self, settings: Config, step: str, default_output: str | None = None):
        configure_process()
        self.settings, self.step = settings, step
        self.timer = PhaseTimer()
        self.run_dir = paths.run_dir(settings)
        self.output: Path | None = None
        if default_output is not None:
            self.output = paths.user_path(settings.output) or self.run_dir / default_output
            check_output(self.output, settings.overwrite)

    def phase(self, name: str):
        """``with step.phase("encode"):`` adds the block's seconds to that phase."""
        return self.timer(name)

    def work_dir(self, prefix: str) -> tempfile.TemporaryDirectory:
        """A temporary folder in the run folder, removed when its ``with`` block ends, however it ends."""
        return tempfile.TemporaryDirectory(dir=self.run_dir, prefix=prefix)

    def finish(self, summary: contract.StepSummary, phases: tuple[str, ...]) -> dict[str, Any]:
        """Serialise ``summary`` (the step's record of ``prep.contract``) with the ``RunRecord`` every summary
        shares (the step, seconds per phase, output, run metadata), write it as ``summary.json`` in the run folder,
        and return it."""
        path = self.run_dir / contract.SUMMARY
        own = contract.as_json(summary)
        output = own.get("output", None if self.output is None else str(self.output))
        run = contract.RunRecord(self.timer.seconds(phases), output, str(path), **run_metadata(self.settings))
        complete = {"step": self.step, **own, **{k: v for k, v in contract.as_json(run).items() if k not in own}}
        write_json(path, complete)
        return complete
