"""Table files' Arrow conversions in the cache: ``<cache_dir>/datasets/<key>/``, ``datasets``' own folder for one
parquet, CSV or JSON-array file, keyed by the file's path, size and modification time and by the ``datasets`` and
``pyarrow`` versions. ``io/conversions.py`` makes them and hands them over once the file's rows passed their
checks; an entry that does not load is rebuilt (``store.Cache.discard``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prep.cache.store import Cache, FolderEntries
from prep.io.reader import Reader

if TYPE_CHECKING:
    from prep.config.schema import Config


class TableEntries(FolderEntries):
    """Conversions of table files: one folder of ``datasets``' files per file and version."""

    namespace = "datasets"

    def __init__(self, cache: Cache):
        super().__init__(cache, {})

    def key(self, **parts: Any) -> str:
        """The versions join the key here, not the identity: ``datasets`` is imported only once a table is read."""
        return super().key(versions=_versions(), **parts)


def reader(settings: Config, cache: Cache | None = None) -> Reader:
    """How this run reads its sources: its column names and split, with table conversions kept in ``cache`` (by
    default the run's ``cache_dir``; none with ``cache=false``)."""
    cache = cache if cache is not None else Cache(settings.cache_dir, settings.cache)
    if not cache.enabled:
        return Reader(settings.columns, settings.input_split)
    return Reader(settings.columns, settings.input_split, TableEntries(cache))


def _versions() -> dict[str, str]:
    import datasets
    import pyarrow

    return {"datasets": datasets.__version__, "pyarrow": pyarrow.__version__}
