"""One on-disk cache for embeddings, search results, teacher scores, BM25 indexes, the probe's evaluations and
table files' Arrow conversions, under the top-level ``cache_dir``.

Every kind of entry is reached the same way: an ``Entries`` object made from the cache and the identity of what
produces the values (``identity``: the settings, model files included), whose ``key(**parts)`` adds the inputs
(texts, queries, a pool). The same identity and inputs hit; any change misses. ``ArrayEntries`` holds embeddings
(and, as ``evaluations.EvaluationEntries``, the probe's metrics), ``SearchEntries`` top-k results (a deeper search
serves a shallower one), ``ScoreEntries`` teacher scores per (query, passage) pair in append-only shards,
``FolderEntries`` an entry that is a folder of a library's own files (``lexical``: the BM25 index;
``tables``: ``datasets``' conversion of a table file). No kind reaches
into the cache's folders itself: ``Cache.path`` and ``Cache.folder`` name every entry.

Entries are ``.npz`` files (no pickles), or folders, written under a temporary name and renamed into place, so a
reader sees a whole entry or none: a job killed mid-write leaves only a temporary file, which is never read. One
damage rule for every kind (``Cache.discard``): an entry that does not load (corrupt, truncated by a full disk)
counts as a miss, is removed with a warning and rebuilt. Parallel jobs may write the same entry; the last rename
wins and both copies are identical. Score shards are one file per run and chunk, so concurrent runs never rewrite
each other's files. One counter of hits and misses (``Cache.count``), for ``summary.json``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from prep.cache.identity import fingerprint
from prep.io.atomic import atomic_file

log = logging.getLogger(__name__)
T = TypeVar("T")


class Cache:
    """The files under ``root``; ``enabled=False`` turns every lookup into a miss and stores nothing."""
    def __init__(self, root: str | os.PathLike | None, enabled: bool = True):
        self.root = Path(root).expanduser() if root is not None else None
        self.enabled = enabled and self.root is not None
        self.hits = 0
        self.misses = 0

    def stats(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "hits": self.hits, "misses": self.misses,
                "dir": str(self.root) if self.enabled else None}

    def count(self, hits: int = 0, misses: int = 0) -> None:
        self.hits += hits
        self.misses += misses

    def path(self, namespace: str, key: str) -> Path:
        """A one-file entry."""
        assert self.root is not None
        return self.root / namespace / key[:2] / f"{key}.npz"

    def folder(self, namespace: str, key: str) -> Path:
        """An entry that is a folder (of files of its own, or of other entries)."""
        assert self.root is not None
        return self.root / namespace / key

    @staticmethod
    def discard(path: Path, why: BaseException) -> None:
        """The damage rule: an entry (file or folder) that does not load is never trusted: removed, to be rebuilt."""
        log.warning("cache entry %s does not load (%s): ignoring and rebuilding it", path, why)
        if path.is_dir():
            broken = path.parent / f".{path.name}.broken-{uuid.uuid4().hex}"
            os.replace(path, broken)
            shutil.rmtree(broken, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    @staticmethod
    def read(path: Path, required: tuple[str, ...] = ()) -> dict[str, np.ndarray] | None:
        """The arrays of an entry file, or None when it is absent, does not load, or lacks one of the
        ``required`` arrays (then it is removed, to be rebuilt)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                found = {name: data[name] for name in data.files}
            missing = [name for name in required if name not in found]
            if missing:
                raise ValueError(f"it lacks the array {missing[0]!r}")
            return found
        except FileNotFoundError:
            return None
        except Exception as exc:  # a corrupt or truncated entry: never trusted, rebuilt
            Cache.discard(path, exc)
            return None

    @staticmethod
    def write(path: Path, arrays: dict[str, np.ndarray]) -> None:
        with atomic_file(path, overwrite=True, binary=True) as handle:
            np.savez(handle, **arrays)

    def get(self, namespace: str, key: str, required: tuple[str, ...] = ()) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key`` (with every ``required`` one), or None (a miss)."""
        found = self.read(self.path(namespace, key), required) if self.enabled else None
        self.count(hits=found is not None, misses=found is None)
        return found

    def has(self, namespace: str, key: str) -> bool:
        """Whether an entry exists, counted as a hit when it does; it is read later (``read``), and rebuilt
        then if it turns out to be damaged."""
        found = self.enabled and self.path(namespace, key).is_file()
        self.count(hits=found)
        return found

    def put(self, namespace: str, key: str, arrays: dict[str, np.ndarray]) -> None:
        if self.enabled:
            self.write(self.path(namespace, key), arrays)


class Entries:
    """The entries of one kind (``namespace``) made under one identity; ``key(**parts)`` names one entry."""
    namespace = ""

    def __init__(self, cache: Cache, identity: Mapping[str, Any]):
        self.cache = cache
        self.identity = dict(identity)
        self.identity_key = fingerprint(self.identity)

    def key(self, **parts: Any) -> str:
        return fingerprint({"identity": self.identity_key, **parts})

    def count(self, hits: int = 0, misses: int = 0) -> None:
        self.cache.count(hits, misses)


class ArrayEntries(Entries):
    """Embeddings: one ``.npz`` per key."""
    namespace = "embeddings"

    def get(self, key: str, required: tuple[str, ...] = ()) -> dict[str, np.ndarray] | None:
        return self.cache.get(self.namespace, key, required)

    def has(self, key: str) -> bool:
        return self.cache.has(self.namespace, key)

    def read(self, key: str, required: tuple[str, ...] = ()) -> dict[str, np.ndarray] | None:
        """An entry that ``has`` found, read now (not counted again); None when it is gone or damaged."""
        return self.cache.read(self.cache.path(self.namespace, key), required)

    def put(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        self.cache.put(self.namespace, key, arrays)


class SearchEntries(Entries):
    """Top-k search results: one folder per key, one entry per depth; a shallower search reads the first
    columns of a deeper one."""
    namespace = "search"

    def get(self, key: str, top_k: int) -> tuple[np.ndarray, np.ndarray] | None:
        cache = self.cache
        if cache.enabled and (folder := cache.folder(self.namespace, key)).is_dir():
            depths = sorted(int(p.stem) for p in folder.glob("*.npz") if p.stem.isdigit() and int(p.stem) >= top_k)
            for depth in depths:
                found = cache.read(folder / f"{depth}.npz", ("similarities", "ids"))
                if found is not None:
                    cache.count(hits=1)
                    return found["similarities"][:, :top_k], found["ids"][:, :top_k]
        cache.count(misses=1)
        return None

    def put(self, key: str, similarities: np.ndarray, ids: np.ndarray) -> None:
        if self.cache.enabled:
            self.cache.write(self.cache.folder(self.namespace, key) / f"{ids.shape[1]}.npz",
                             {"similarities": similarities, "ids": ids})


class ScoreEntries(Entries):
    """Teacher scores of (query, passage) pairs (``identity.pair_key``): append-only shards per identity."""
    namespace = "scores"

    def folder(self) -> Path:
        return self.cache.folder(self.namespace, self.identity_key)

    def load(self) -> dict[bytes, float]:
        """Every score stored under this identity; a shard that does not load is skipped (and removed)."""
        scores: dict[bytes, float] = {}
        if not self.cache.enabled:
            return scores
        folder = self.folder()
        for shard in sorted(folder.glob("*.npz")) if folder.is_dir() else []:
            found = self.cache.read(shard, ("keys", "scores"))
            if found is not None and found["keys"].ndim == 2 and len(found["keys"]) == len(found["scores"]):
                scores.update(zip(map(bytes, found["keys"]), found["scores"].tolist()))
        return scores

    def add(self, keys: list[bytes], scores: list[float]) -> None:
        if self.cache.enabled and keys:
            shard = self.folder() / f"{uuid.uuid4().hex}.npz"
            self.cache.write(shard, {"keys": np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 16),
                                     "scores": np.asarray(scores, dtype=np.float64)})


class FolderEntries(Entries):
    """Entries that are folders of a library's own files: ``load(folder)`` reads one (raising when it cannot),
    ``save(folder)`` writes one into an empty folder, which is renamed into place whole."""

    def get(self, key: str, load: Callable[[Path], T]) -> T | None:
        folder = self.cache.folder(self.namespace, key) if self.cache.enabled else None
        found = None
        if folder is not None and folder.is_dir():
            try:
                found = load(folder)
            except Exception as exc:  # noqa: BLE001 - the damage rule: whatever a library raises on a damaged entry
                Cache.discard(folder, exc)
        self.count(hits=found is not None, misses=found is None)
        return found

    def scratch(self) -> Path:
        """A folder beside the entries (on their file system), where an entry can be made before it is stored."""
        assert self.cache.enabled
        folder = self.cache.folder(self.namespace, "")
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def put(self, key: str, save: Callable[[Path], None]) -> None:
        if not self.cache.enabled:
            return
        folder = self.cache.folder(self.namespace, key)
        folder.parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
        try:
            save(temporary)
            if folder.exists():  # another run stored it meanwhile
                shutil.rmtree(temporary)
                return
            os.replace(temporary, folder)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
