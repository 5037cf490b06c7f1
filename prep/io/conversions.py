"""Arrow conversions of table files (parquet, CSV, a JSON array), which 🤗 ``datasets`` makes before reading them.

A conversion is made in a scratch folder and handed to the cache (a ``TableStore``: the ``datasets`` entries of
``<cache_dir>``, ``cache/tables.py``) only once every row read from it passed its checks (``Conversions.keep``),
so a rejected input leaves no cache entry. An entry that does not load (a truncated Arrow file, say) is removed
and made again, by the cache's one damage rule. Without a cache (``cache=false``) a conversion stays in the
scratch folder its reader gives, removed with it.

``datasets`` and ``pyarrow`` are imported inside the functions that use them: JSON-lines runs never need them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from prep.errors import DataError
from prep.io.saved import quiet_datasets

if TYPE_CHECKING:
    from datasets import Dataset

T = TypeVar("T")


class TableStore(Protocol):
    """Where conversions are kept between runs: folders named by ``key``, read by ``get`` (None: a miss, or an
    entry that did not load, then removed) and stored whole by ``put``; ``scratch`` is a folder beside them, so
    that a kept conversion is renamed into place, never copied."""

    def key(self, **parts: Any) -> str: ...

    def get(self, key: str, load: Callable[[Path], T]) -> T | None: ...

    def put(self, key: str, save: Callable[[Path], None]) -> None: ...

    def scratch(self) -> Path: ...


class Conversions:
    """The tables one read converts: each from the store when it holds the file's conversion, else converted in
    a scratch folder; ``keep`` hands the new ones to the store, ``discard`` removes those not kept."""

    def __init__(self, store: TableStore | None, scratch: Path):
        self.store = store
        self.scratch = scratch  # with a store: made beside its entries, when the first conversion is
        self.made: dict[str, Path] = {}

    def table(self, kind: str, location: str) -> Dataset:
        """The ``datasets.Dataset`` of a parquet, CSV or JSON-array file (memory-mapped)."""
        key = None
        if self.store is not None:
            status = os.stat(location)
            key = self.store.key(kind=kind, path=location, size=status.st_size, modified=status.st_mtime_ns)
            found = self.store.get(key, lambda folder: convert(kind, location, folder, reuse_only=True))
            if found is not None:
                return found
        scratch = self.store.scratch() if self.store is not None else self.scratch
        folder = Path(tempfile.mkdtemp(dir=scratch, prefix=".conversion-"))
        try:
            table = convert(kind, location, folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        if key is not None:
            self.made[key] = folder
        return table

    def keep(self) -> None:
        """Every conversion this read made, into the store (the tables read from them stay readable: their files
        are renamed, not rewritten)."""
        assert self.store is not None or not self.made
        for key, folder in self.made.items():
            self.store.put(key, lambda target, made=folder: _move_children(made, target))
            shutil.rmtree(folder, ignore_errors=True)  # what is left: datasets' lock files
        self.made.clear()

    @contextlib.contextmanager
    def checked(self) -> Iterator[Conversions]:
        """A read whose conversions are kept when it ends, discarded when it fails or is left unfinished."""
        try:
            yield self
        except BaseException:
            self.discard()
            raise
        self.keep()

    def discard(self) -> None:
        """The conversions of a read that was refused: removed, never kept."""
        for folder in self.made.values():
            shutil.rmtree(folder, ignore_errors=True)
        self.made.clear()


def convert(kind: str, location: str, folder: Path, reuse_only: bool = False) -> Dataset:
    """The file's table, converted by ``datasets`` into ``folder`` (or, with ``reuse_only``, only read from a
    conversion already there: a FileNotFoundError when there is none)."""
    import datasets

    lean_arrow_allocator()
    with quiet_datasets():
        if reuse_only:
            builder = datasets.load_dataset_builder(kind, data_files=location, cache_dir=str(folder))
            if not Path(builder.cache_dir).is_dir():
                raise FileNotFoundError(f"it holds no conversion of {location}")
        try:
            table = datasets.load_dataset(kind, data_files=location, split="train", cache_dir=str(folder))
        except Exception as exc:  # a malformed file: datasets' own reader says what is wrong
            if reuse_only:
                raise
            if holds_no_rows(kind, location):
                raise DataError(location, None, "holds no rows") from None
            raise DataError(location, None, f"cannot be read as {kind}: {first_line(exc)}") from None
    release_arrow_memory()
    return table


def holds_no_rows(kind: str, location: str) -> bool:
    """Whether a table file that ``datasets`` could not convert is merely empty (its error then says nothing
    a user can act on): a parquet file of no rows, a CSV file of a header at most, an empty JSON array."""
    if kind == "parquet":
        import pyarrow.parquet

        try:
            return pyarrow.parquet.ParquetFile(location).metadata.num_rows == 0
        except Exception:  # noqa: BLE001 - not a parquet file at all: datasets' own error says so
            return False
    if os.path.getsize(location) > 1 << 16:
        return False
    with open(location, "rb") as handle:
        content = handle.read().strip()
    if kind == "csv":
        return len([line for line in content.splitlines() if line.strip()]) <= 1
    return content.startswith(b"[") and content[1:].strip() == b"]"


def _move_children(source: Path, target: Path) -> None:
    for child in source.iterdir():
        if not child.name.endswith(".lock"):
            shutil.move(str(child), str(target / child.name))


def lean_arrow_allocator() -> None:
    """Arrow allocates through jemalloc where the build has it. Its default here, mimalloc, kept the buffers of
    converting a million-row parquet pool: the mine run then peaked 0.06-0.10 GB above the same pool read as JSON
    lines; through jemalloc, at the same peak (docs/scaling.md, "Large pools")."""
    import pyarrow

    try:
        pyarrow.set_memory_pool(pyarrow.jemalloc_memory_pool())
    except (NotImplementedError, pyarrow.ArrowNotImplementedError):
        pass


def release_arrow_memory() -> None:
    """Hand the memory Arrow's allocator kept from a conversion back to the system."""
    import pyarrow

    pyarrow.default_memory_pool().release_unused()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
