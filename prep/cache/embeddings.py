"""Embeddings through the cache: queries whole, the pool in chunks that never sit in memory together.

Passages are cached in chunks of ``encode_chunk`` (by position), each written as soon as it is encoded:
an interrupted encode resumes at the first missing chunk, and ``step=encode`` shards can encode disjoint
chunks on several machines into one shared cache.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prep.cache.identity import embedder_identity, fingerprint, texts_fingerprint
from prep.cache.store import ArrayEntries, Cache
from prep.models import embedder as embedder_module
from prep.models.lengths import with_own_lengths

if TYPE_CHECKING:
    from FlagEmbedding.abc.inference import AbsEmbedder

    from prep.config.schema import HardwareConfig, MinerConfig
    from prep.io.pool import PassagePool
    from prep.timing import PhaseTimer

log = logging.getLogger(__name__)

def chunk_starts(count: int, chunk: int) -> list[int]:
    """Where each cache chunk of ``count`` passages starts."""
    return list(range(0, count, chunk))


def shard_chunks(chunk_count: int, index: int, count: int) -> list[int]:
    """The chunks shard ``index`` of ``count`` encodes: ``index, index + count, ...``."""
    return list(range(index, chunk_count, count))


class CachedEncoder:
    """Encodes queries and passages through the cache; the model is loaded only on a miss.

    ``storage_dtype`` is how embeddings are stored, and then used: float32, or float16 (rounded the same
    way whether or not they came from the cache). ``chunk_size``: passages per cache entry. (The last two
    have defaults; steps pass the run's ``cache_dtype`` and ``encode_chunk``.)
    """

    def __init__(self, miner: MinerConfig, hardware: HardwareConfig, cache: Cache, timer: PhaseTimer,
                 storage_dtype: str = "float32", chunk_size: int = 16384):
        miner = with_own_lengths(miner)
        self.miner, self.hardware, self.timer = miner, hardware, timer
        self.entries = ArrayEntries(cache, embedder_identity(miner, hardware))
        self.chunk_size = int(chunk_size)
        self.storage_dtype = np.dtype(str(storage_dtype))
        self.encoded = {"queries": 0, "passages": 0}
        self.chunks = {"cached": 0, "encoded": 0}
        self._embedder: AbsEmbedder | None = None

    def model(self) -> AbsEmbedder:
        if self._embedder is None:
            with self.timer("load"):
                self._embedder = embedder_module.load_embedder(self.miner, self.hardware)
        return self._embedder

    def key(self, side: str, texts: list[str], instruction: str | None = None) -> str:
        """The entry of ``texts``; a row's own query instruction (``instruction``) is part of its key."""
        extra = {} if instruction is None else {"instruction": instruction}
        return self.entries.key(side=side, storage=self.storage_dtype.name, texts=texts_fingerprint(texts), **extra)

    def _encode(self, side: str, texts: list[str], instruction: str | None = None) -> np.ndarray:
        key = self.key(side, texts, instruction)
        found = self.entries.get(key, ("embeddings",))
        if found is not None:
            if side == "passages":
                self.chunks["cached"] += 1
            return found["embeddings"]
        model = self.model()
        with self.timer("encode"):
            embeddings = embedder_module.encode(model, self.miner, self.hardware, side, texts, instruction)
        # Stored and used at the same precision, so a cached run equals a fresh one.
        embeddings = embeddings.astype(self.storage_dtype)
        self.entries.put(key, {"embeddings": embeddings})
        self.encoded[side] += len(texts)
        if side == "passages":
            self.chunks["encoded"] += 1
        return embeddings

    def queries(self, texts: list[str], instruction: str | None = None) -> np.ndarray:
        """Query embeddings; ``instruction`` replaces the configured query instruction (a row's own)."""
        return self._encode("queries", texts, instruction).astype(np.float32)

    def passages(self, texts: list[str]) -> np.ndarray:
        """Embeddings of ``texts`` in order (float32), chunk by chunk through the cache, all in memory.

        For small lists (positives outside the pool, tests); a pool goes through ``pool_embeddings``.
        """
        result: np.ndarray | None = None
        for start in chunk_starts(len(texts), self.chunk_size):
            values = self._encode("passages", texts[start:start + self.chunk_size])
            if result is None:
                result = np.empty((len(texts), values.shape[1]), dtype=np.float32)
            result[start:start + len(values)] = values
        return result if result is not None else np.empty((0, 0), dtype=np.float32)

    def encode_shard(self, pool: PassagePool, chunks: list[int]) -> None:
        """``step=encode``: encode chunks number ``chunks`` of ``pool`` into the cache."""
        for number in chunks:
            start = number * self.chunk_size
            self._encode("passages", pool.texts(start, start + self.chunk_size))

    def pool_embeddings(self, pool: PassagePool, spill_dir: str | os.PathLike) -> PoolEmbeddings:
        """The pool's embeddings as chunks on disk, each encoded (or found in the cache) in turn.

        Only one chunk is in memory at a time: with the cache on, chunks are read back from it when
        needed; with the cache off, they are written as ``.npy`` files under ``spill_dir`` and mapped.
        The first chunk is read (or encoded) to learn the dimension; a later cached chunk is read only
        when the search reaches it.
        """
        starts = chunk_starts(len(pool), self.chunk_size)
        loaders: list[tuple[int, int, Callable[[], np.ndarray]]] = []
        keys = []
        dim = 0
        for number, start in enumerate(starts):
            texts = pool.texts(start, start + self.chunk_size)
            if len(starts) > 1:
                log.info("passages %d-%d of %d (chunk %d of %d)", start, start + len(texts), len(pool), number + 1,
                         len(starts))
            keys.append(self.key("passages", texts))
            load, dim = self._chunk_loader(keys[-1], (pool, start, start + len(texts)), Path(spill_dir), dim)
            loaders.append((start, len(texts), load))
        return PoolEmbeddings(loaders, dim, fingerprint(keys))

    def _chunk_loader(self, key: str, chunk: tuple[Any, int, int], spill_dir: Path,
                      dim: int) -> tuple[Callable[[], np.ndarray], int]:
        """A function that reads one chunk (pool, first id, end) back, and the dimension. The chunk is encoded
        now unless the cache holds it; while the dimension is unknown (``dim`` 0, the first chunk) it is read
        to learn it."""
        pool, start, end = chunk
        if dim and self.entries.has(key):
            self.chunks["cached"] += 1
        else:
            values = self._encode("passages", pool.texts(start, end))
            dim = values.shape[1]
            if not self.entries.cache.enabled:
                spill_dir.mkdir(parents=True, exist_ok=True)
                np.save(spill_dir / f"{key}.npy", values)
            del values
        if self.entries.cache.enabled:
            return functools.partial(self._read_chunk, key, chunk), dim
        return functools.partial(np.load, spill_dir / f"{key}.npy", mmap_mode="r"), dim

    def _read_chunk(self, key: str, chunk: tuple[Any, int, int]) -> np.ndarray:
        """A cached chunk, read when the search reaches it; one that went missing or was damaged since the run
        looked (another job cleaned the cache, a disk error) is encoded again, here, in this run."""
        found = self.entries.read(key, ("embeddings",))
        if found is not None:
            return found["embeddings"]
        pool, start, end = chunk
        log.warning("embedding chunk of passages %d-%d is missing from the cache: encoding it again", start, end)
        return self._encode("passages", pool.texts(start, end))


class PoolEmbeddings:
    """A pool's embeddings, chunk by chunk from disk: never all in memory at once.

    ``pieces()`` yields ``(first id, float32 array)`` in id order (the search reads the pool once);
    ``rows(ids)`` gathers some rows, reading each chunk that holds one of them once.
    """

    def __init__(self, loaders: list[tuple[int, int, Callable[[], np.ndarray]]], dim: int, key: str):
        self.loaders, self.dim, self.key = loaders, dim, key
        self.shape = (sum(count for _, count, _ in loaders), dim)

    def __len__(self) -> int:
        return self.shape[0]

    def pieces(self) -> Iterator[tuple[int, np.ndarray]]:
        for start, _, load in self.loaders:
            yield start, np.array(load(), dtype=np.float32)  # a copy: chunks mapped from disk are read-only

    def rows(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        result = np.empty((len(ids), self.dim), dtype=np.float32)
        starts = np.array([start for start, _, _ in self.loaders], dtype=np.int64)
        chunk_of = np.searchsorted(starts, ids, side="right") - 1
        for number in np.unique(chunk_of):
            start, _, load = self.loaders[number]
            where = np.flatnonzero(chunk_of == number)
            result[where] = np.asarray(load()[ids[where] - start], dtype=np.float32)
        return result

    def to_array(self) -> np.ndarray:
        """Every embedding in one float32 array (for an approximate index, which holds them all anyway)."""
        result = np.empty(self.shape, dtype=np.float32)
        for start, piece in self.pieces():
            result[start:start + len(piece)] = piece
        return result
