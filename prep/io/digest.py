"""The digest of an output as written: a file's bytes, or a folder's files (a saved dataset) with their names.

A shard's summary records its part's digest; ``step=merge`` checks it before joining, so a part truncated,
appended to or edited since its shard wrote it is refused, never merged.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20


def digest(path: Path) -> str:
    """sha256 of a file's bytes, or of each file of a folder (name and bytes, in name order)."""
    hasher = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            hasher.update(str(file.relative_to(path)).encode("utf-8") + b"\0")
        with open(file, "rb") as handle:
            while block := handle.read(CHUNK):
                hasher.update(block)
    return hasher.hexdigest()
