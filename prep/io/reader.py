"""How a run reads its sources (``Reader``): the column names, the split, and where ``datasets`` keeps its Arrow
conversions; training rows come through ``rowstore.SourceRows``, pool texts through ``sources``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prep.io.rowstore import SourceRows
from prep.io.sources import RowCheck, Source, iter_pool_texts, resolve

if TYPE_CHECKING:
    from prep.config.schema import ColumnsConfig, Config


def iter_training_rows(source: Source, columns: ColumnsConfig, check: RowCheck | None,
                       datasets_cache: str | None) -> Iterator[dict[str, Any]]:
    """Each row of ``source`` as a FlagEmbedding row, checked; a DataError names the part, its line (JSON lines)
    or row (tables) and the source's own column. (``rowstore.SourceRows.scan`` reads them, and also remembers
    where each row is, for ``step=mine``.)"""
    yield from SourceRows(source, columns, check, datasets_cache).scan()


@dataclass(frozen=True)
class Reader:
    """How this run reads its sources: the column names, the split, and where ``datasets`` keeps its Arrow
    conversions (``<cache_dir>/datasets``; with ``cache=false``, a temporary folder per read)."""

    columns: ColumnsConfig
    split: str = "train"
    datasets_cache: str | None = None

    @classmethod
    def of(cls, settings: Config) -> Reader:
        cache = str(Path(settings.cache_dir).expanduser() / "datasets") if settings.cache else None
        return cls(settings.columns, settings.input_split, cache)

    def source(self, value: str | os.PathLike) -> Source:
        return resolve(value, self.split)

    def training_rows(self, source: Source, check: RowCheck | None) -> list[dict[str, Any]]:
        with self._cache() as cache:
            return list(iter_training_rows(source, self.columns, check, cache))

    def pool_texts(self, source: Source) -> Iterator[str]:
        with self._cache() as cache:
            yield from iter_pool_texts(source, self.columns, cache)

    def _cache(self) -> Any:
        import tempfile

        if self.datasets_cache is not None:
            return contextlib.nullcontext(self.datasets_cache)
        return tempfile.TemporaryDirectory(prefix="prep-datasets-")
