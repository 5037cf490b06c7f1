"""Outputs that are whole or absent: every file the project writes goes through ``atomic_file``."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from prep.errors import OutputExistsError


def ensure_writable(path: str | os.PathLike, overwrite: bool) -> None:
    """Fail before any work when the output exists and may not be replaced (a link counts, even one whose
    target is gone), or is a folder (never replaced by a file)."""
    if os.path.isdir(path):
        raise OutputExistsError(f"{path}: output is a folder; name a file inside it or elsewhere")
    if os.path.lexists(path) and not overwrite:
        raise OutputExistsError(f"{path}: output exists; pass overwrite=true to replace it")


@lru_cache(maxsize=1)
def file_mode() -> int:
    """The mode a new file gets here (0o666 less the umask), read once: temporary files are created 0600."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_file(path: str | os.PathLike, overwrite: bool = False, binary: bool = False) -> Iterator[Any]:
    """Open a temporary file beside ``path``; on success it is synced and renamed onto ``path``.

    On any error the temporary file is removed, so ``path`` is either complete or untouched. Every
    output of the project goes through here: JSON lines, summaries, cache entries, plots.
    """
    path = Path(path)
    ensure_writable(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(
        "wb" if binary else "w", encoding=None if binary else "utf-8", newline=None if binary else "",
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False,
    )
    try:
        with handle:
            yield handle
            handle.flush()
            os.fchmod(handle.fileno(), file_mode())
            os.fsync(handle.fileno())
        ensure_writable(path, overwrite)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write one JSON document atomically (summaries: always replaced)."""
    with atomic_file(path, overwrite=True) as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
