"""Errors that reach the user as one clear line (run.py prints them without a traceback)."""

from __future__ import annotations

import logging
import os


class PrepError(Exception):
    """Base of the errors a user can fix: bad input, bad settings, an output in the way."""


class UsageError(PrepError, ValueError):
    """A setting that cannot be used; the message names the key."""


class DataError(PrepError, ValueError):
    """Bad input: the message names the file, the line and the field."""

    def __init__(self, path: str | os.PathLike, line: int | None, message: str, field: str | None = None,
                 unit: str = "line"):
        """``line``: the 1-based line of a text file, or with ``unit="row"`` the row of a table."""
        if line is None:
            where = str(path)
        else:
            where = f"{path}:{line}" if unit == "line" else f"{path}: row {line}"
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{message}")
        self.path, self.line, self.field = str(path), line, field


class OutputExistsError(PrepError, FileExistsError):
    """An output that is there already and may not be replaced."""


class BelowWarning(logging.Filter):
    """Lets through only records below WARNING: the run's stdout handler takes those, and stderr the warnings
    and errors (``conf/hydra/job_logging/prep.yaml``), so an error stays on the terminal when stdout goes to a
    file."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING
