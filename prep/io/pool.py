"""The passages a mine run searches, held in a memory-mapped Arrow file instead of Python lists.

A pool of a million passages as Python strings plus a text-to-id dict costs over a gigabyte; here
the texts are written once, as they are read, to an Arrow IPC file in the run folder and mapped
back (pages the OS may drop), and each passage is known by a 16-byte digest kept in a sorted
numpy array: deduplication and looking up a positive's id need no dict of texts. Ids are positions
after dropping exact duplicates, first-seen order kept, as FlagEmbedding's script numbers them.

``pyarrow`` is imported inside the functions that use it: loading is slow, and a config error or ``--help`` answers
without waiting for it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prep.config.schema import ColumnsConfig
from prep.io.reader import Reader
from prep.io.sources import Source, resolve

if TYPE_CHECKING:
    from prep.io.reader import Reader
    from prep.io.sources import Source

DIGEST = np.dtype([("high", "<u8"), ("low", "<u8")])
BATCH = 8192  # texts per Arrow record batch


def digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class PassagePool:
    """Deduplicated passages, ``len(pool)`` of them, read by id (``take``) or by range (``texts``).

    Build with ``PassagePool.build(texts, folder)``; ``close()`` (or ``with``) removes the file.
    """

    def __init__(self, path: Path, raw_positions: np.ndarray, sorted_digests: np.ndarray, ids_of_sorted: np.ndarray):
        import pyarrow as pa

        self.path = path
        self._source = pa.memory_map(str(path), "r")
        # One Arrow array per record batch: ``ChunkedArray.take`` would join them all into one copy.
        self._batches = pa.ipc.open_file(self._source).read_all().column("text").chunks
        self._offsets = np.cumsum([0] + [len(batch) for batch in self._batches])[:-1]
        self._raw_positions = raw_positions  # id -> row of the Arrow file (duplicates are left in the file)
        self._sorted_digests = sorted_digests
        self._ids_of_sorted = ids_of_sorted

    @classmethod
    def build(cls, texts: Iterable[str], folder: str | Path) -> PassagePool:
        """Write ``texts`` to an Arrow file in ``folder`` and index them; duplicates keep their first id."""
        import pyarrow as pa

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f".pool-{uuid.uuid4().hex}.arrow"
        schema = pa.schema([("text", pa.large_string())])
        digests = bytearray()
        try:
            with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
                batch: list[str] = []
                for text in texts:
                    batch.append(text)
                    digests += digest(text)
                    if len(batch) == BATCH:
                        writer.write_batch(pa.record_batch([pa.array(batch, pa.large_string())], schema=schema))
                        batch = []
                if batch or not digests:
                    writer.write_batch(pa.record_batch([pa.array(batch, pa.large_string())], schema=schema))
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        all_digests = np.frombuffer(bytes(digests), dtype=DIGEST)
        sorted_digests, first_rows = np.unique(all_digests, return_index=True)
        raw_positions = np.sort(first_rows)  # id -> first row holding that text
        ids_of_sorted = np.empty(len(first_rows), dtype=np.int64)
        ids_of_sorted[np.argsort(first_rows, kind="stable")] = np.arange(len(first_rows))
        return cls(path, raw_positions, sorted_digests, ids_of_sorted)

    def __len__(self) -> int:
        return len(self._raw_positions)

    def __enter__(self) -> PassagePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._batches = []
        self._source.close()
        self.path.unlink(missing_ok=True)

    def take(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """The texts of ``ids``, in their order."""
        import pyarrow as pa

        rows = self._raw_positions[np.asarray(ids, dtype=np.int64)]
        result: list[str] = [""] * len(rows)
        batch_of = np.searchsorted(self._offsets, rows, side="right") - 1
        for number in np.unique(batch_of):
            where = np.flatnonzero(batch_of == number)
            texts = self._batches[number].take(pa.array(rows[where] - self._offsets[number])).to_pylist()
            for position, text in zip(where.tolist(), texts):
                result[position] = text
        return result

    def texts(self, start: int = 0, stop: int | None = None) -> list[str]:
        """The texts of ids ``start`` to ``stop``."""
        return self.take(np.arange(start, len(self) if stop is None else min(stop, len(self))))

    def iter_texts(self, batch: int = BATCH) -> Iterator[str]:
        for start in range(0, len(self), batch):
            yield from self.texts(start, start + batch)

    def id_of(self, text: str) -> int | None:
        """The id of ``text``, or None when the pool does not hold it."""
        wanted = np.frombuffer(digest(text), dtype=DIGEST)
        position = int(np.searchsorted(self._sorted_digests, wanted)[0])
        if position < len(self._sorted_digests) and self._sorted_digests[position] == wanted[0]:
            return int(self._ids_of_sorted[position])
        return None


def corpus_texts(rows: Iterable[dict[str, Any]], pool: Source | Path | None, reader: Reader | None = None
                 ) -> Iterator[str]:
    """Passages to search, duplicates included: the pool's texts (a source, or a path; read by ``reader``, by
    default finding the text column by name), or every ``pos`` and ``neg`` of the rows."""
    if pool is not None:
        yield from (reader or Reader(ColumnsConfig())).pool_texts(pool if isinstance(pool, Source) else resolve(pool))
        return
    for row in rows:
        yield from row["pos"]
        yield from row.get("neg", [])


def open_pool(rows: list[dict[str, Any]], pool: Source | Path | None, folder: Path, reader: Reader | None = None
              ) -> PassagePool:
    """The deduplicated corpus (first-seen order, so ids never depend on hashing), in an Arrow file in ``folder``."""
    return PassagePool.build(corpus_texts(rows, pool, reader), folder)
