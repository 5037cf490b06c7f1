"""How a run reads its sources (``Reader``): the column names, the split, and where ``datasets``' Arrow conversions
of table files are kept; training rows come through ``rowstore.SourceRows``, pool texts through ``sources``."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prep.io.conversions import Conversions, TableStore
from prep.io.rowstore import SourceRows
from prep.io.sources import RowCheck, Source, iter_pool_texts, resolve

if TYPE_CHECKING:
    from prep.config.schema import ColumnsConfig


@dataclass(frozen=True)
class Reader:
    """How this run reads its sources: the column names, the split, and where table files' conversions are kept
    (``tables``: the cache's ``datasets`` entries, ``cache/tables.py``; None with ``cache=false``: each read
    converts into a temporary folder of its own)."""

    columns: ColumnsConfig
    split: str = "train"
    tables: TableStore | None = None

    def source(self, value: str | os.PathLike) -> Source:
        return resolve(value, self.split)

    def conversions(self, scratch: Path) -> Conversions:
        """The conversions of one read; without a cache they are made in ``scratch``, which must outlive the
        tables read from them."""
        return Conversions(self.tables, scratch)

    def store(self, source: Source, check: RowCheck | None, scratch: Path) -> SourceRows:
        """The rows of ``source``, to be scanned (and checked) once, then read again a block at a time."""
        return SourceRows(source, self.columns, check, self.conversions(scratch))

    def training_rows(self, source: Source, check: RowCheck | None) -> list[dict[str, Any]]:
        with self._scratch() as scratch:
            return list(self.store(source, check, Path(scratch)).scan())

    def pool_texts(self, source: Source) -> Iterator[str]:
        with self._scratch() as scratch:
            yield from iter_pool_texts(source, self.columns, self.conversions(Path(scratch)))

    def _scratch(self) -> contextlib.AbstractContextManager[str]:
        if self.tables is not None:
            return contextlib.nullcontext(".")  # unused: conversions are made beside the cache's entries
        return tempfile.TemporaryDirectory(prefix="prep-datasets-")
