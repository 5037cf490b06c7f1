"""Progress of long work: tqdm's bar on a terminal, a plain log line every few seconds anywhere else.

On a terminal tqdm redraws its bar in place. Written to a file (``make demo > log``, a Slurm job's output), the same
bar leaves a carriage return per redraw and, where bars nest (scoring encodes queries inside its own bar), cursor
escapes: hundreds of unreadable fragments. So when stderr is not a terminal, each bar is a ``LoggedProgress``: tqdm
still counts and times (rate, elapsed, remaining), but shows its figures as one INFO line through logging, at most
every ``INTERVAL`` seconds and once at the end, into the console and ``run.log`` like every other line. tqdm's own
options do not give that: ``disable=None`` (off when not a terminal) leaves a long batch job silent, and a long
``mininterval`` still writes carriage returns.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from tqdm import tqdm

log = logging.getLogger(__name__)

INTERVAL = 10.0  # seconds between two lines of one bar in a log
LINE = "{desc}: {percentage:3.0f}% ({n_fmt}/{total_fmt}) in {elapsed}, {rate_fmt}, about {remaining} left"


class _Discard:
    """Where a logged bar's own writes go (the newline tqdm writes when it closes)."""

    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


class LoggedProgress(tqdm):
    """A tqdm bar shown as log lines (see the module's docstring)."""

    logged: float = 0  # the count the last line showed: the start (0) and an unchanged end add nothing

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("mininterval", INTERVAL)
        super().__init__(*args, file=_Discard(), bar_format=LINE, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> None:
        if self.n != self.logged:
            self.logged = self.n
            log.info("%s", msg or str(self))


def progress(**kwargs: Any) -> tqdm:
    """A progress bar (tqdm's arguments: ``total``, ``desc``, ``unit``...): animated on a terminal, else logged."""
    return tqdm(**kwargs) if on_terminal() else LoggedProgress(**kwargs)


def on_terminal() -> bool:
    """Whether bars animate: libraries' own bars (the trainer's, ``datasets``') are turned off where this is false."""
    return sys.stderr.isatty()
