"""One on-disk cache for embeddings, search results and teacher scores, under the top-level ``cache_dir``.

Keys are content fingerprints of everything that changes a value: the model's files (not only its
name), its class, pooling, normalisation, max lengths, instructions, dtype, and the texts. The same
inputs hit; any change misses.

Entries are ``.npz`` files (no pickles) written to a temporary name and renamed into place, so a
reader sees a whole entry or none: a job killed mid-write leaves only a temporary file, which is
never read. An entry that does not load (corrupt, truncated by a full disk) counts as a miss, is
removed and rebuilt. Parallel jobs may write the same entry; the last rename wins and both copies
are identical. Scores are stored as append-only shards (one file per run and chunk), so concurrent
runs never rewrite each other's files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from prep.errors import CacheError

log = logging.getLogger(__name__)

SMALL_FILE = 1 << 20  # files up to 1 MiB are hashed whole; larger ones by size, head and tail


def fingerprint(value: Any) -> str:
    """A stable hex digest of a JSON-able value (keys sorted)."""
    payload = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


def texts_fingerprint(texts: Iterable[str]) -> str:
    """Digest of a sequence of texts, order included (each text is length-prefixed)."""
    digest = hashlib.blake2b(digest_size=16)
    count = 0
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
        count += 1
    digest.update(count.to_bytes(8, "little"))
    return digest.hexdigest()


def pair_key(query: str, passage: str) -> bytes:
    """16-byte key of one (query, passage) pair."""
    digest = hashlib.blake2b(digest_size=16)
    for text in (query, passage):
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.digest()


def _file_digest(path: Path) -> str:
    size = path.stat().st_size
    digest = hashlib.blake2b(digest_size=16)
    digest.update(size.to_bytes(8, "little"))
    with open(path, "rb") as handle:
        if size <= SMALL_FILE:
            digest.update(handle.read())
        else:
            digest.update(handle.read(SMALL_FILE))
            handle.seek(size - SMALL_FILE)
            digest.update(handle.read(SMALL_FILE))
    return digest.hexdigest()


@lru_cache(maxsize=32)
def model_fingerprint(name_or_path: str | None) -> str | None:
    """Identity of a model's files: every file's name, size, and content (whole, or head and tail).

    A hub name is looked up in the local Hugging Face cache; when it is not there the name itself
    is the identity (the download will pin it on the next run).
    """
    if name_or_path is None:
        return None
    path = Path(name_or_path).expanduser()
    if not path.exists():
        try:
            from huggingface_hub import snapshot_download

            path = Path(snapshot_download(name_or_path, local_files_only=True))
        except Exception:  # not cached, or not a hub name: the name is all we know
            return f"name:{name_or_path}"
    if path.is_file():
        return _file_digest(path)
    files = sorted(p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in
                                                                         p.relative_to(path).parts))
    return fingerprint([[str(p.relative_to(path)), _file_digest(p)] for p in files])


class Cache:
    """Counts hits and misses; ``enabled=False`` turns every lookup into a miss and stores nothing."""

    def __init__(self, root: str | os.PathLike | None, enabled: bool = True):
        self.root = Path(root).expanduser() if root is not None else None
        self.enabled = enabled and self.root is not None
        self.hits = 0
        self.misses = 0

    def stats(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "hits": self.hits, "misses": self.misses,
                "dir": str(self.root) if self.enabled else None}

    def _entry(self, namespace: str, key: str) -> Path:
        assert self.root is not None
        return self.root / namespace / key[:2] / f"{key}.npz"

    @staticmethod
    def _read(path: Path) -> dict[str, np.ndarray] | None:
        try:
            with np.load(path, allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        except FileNotFoundError:
            return None
        except Exception as exc:  # a corrupt or truncated entry: never trusted, rebuilt
            log.warning("cache entry %s does not load (%s): ignoring and rebuilding it", path, exc)
            path.unlink(missing_ok=True)
            return None

    @staticmethod
    def _write(path: Path, arrays: dict[str, np.ndarray]) -> None:
        from prep.io import atomic_file

        with atomic_file(path, overwrite=True, binary=True) as handle:
            np.savez(handle, **arrays)

    def get(self, namespace: str, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key``, or None (a miss)."""
        found = self._read(self._entry(namespace, key)) if self.enabled else None
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def has(self, namespace: str, key: str) -> bool:
        """Whether an entry exists, counted as a hit when it does; ``load`` reads it later."""
        found = self.enabled and self._entry(namespace, key).is_file()
        self.hits += found
        return found

    def load(self, namespace: str, key: str, name: str) -> np.ndarray:
        """Array ``name`` of an entry that ``has`` found; an entry gone or corrupt since is an error."""
        found = self._read(self._entry(namespace, key))
        if found is None:
            raise CacheError(f"cache entry {self._entry(namespace, key)} was removed or damaged during this run; "
                             "run the command again to rebuild it")
        return found[name]

    def put(self, namespace: str, key: str, arrays: dict[str, np.ndarray]) -> None:
        if self.enabled:
            self._write(self._entry(namespace, key), arrays)

    # Search results: one folder per (passages, queries) pair, one entry per depth k; a shallower
    # search reads the first columns of a deeper one.
    def get_search(self, key: str, top_k: int) -> tuple[np.ndarray, np.ndarray] | None:
        if self.enabled and (folder := self.root / "search" / key).is_dir():
            depths = sorted(int(p.stem) for p in folder.glob("*.npz") if p.stem.isdigit() and int(p.stem) >= top_k)
            for depth in depths:
                found = self._read(folder / f"{depth}.npz")
                if found is not None:
                    self.hits += 1
                    return found["similarities"][:, :top_k], found["ids"][:, :top_k]
        self.misses += 1
        return None

    def put_search(self, key: str, similarities: np.ndarray, ids: np.ndarray) -> None:
        if self.enabled:
            self._write(self.root / "search" / key / f"{ids.shape[1]}.npz",
                        {"similarities": similarities, "ids": ids})

    # Pair scores: append-only shards per teacher identity.
    def load_scores(self, identity: str) -> dict[bytes, float]:
        scores: dict[bytes, float] = {}
        if not self.enabled:
            return scores
        folder = self.root / "scores" / identity
        for shard in sorted(folder.glob("*.npz")) if folder.is_dir() else []:
            found = self._read(shard)
            if found is not None and found["keys"].ndim == 2 and len(found["keys"]) == len(found["scores"]):
                scores.update(zip(map(bytes, found["keys"]), found["scores"].tolist()))
        return scores

    def add_scores(self, identity: str, keys: list[bytes], scores: list[float]) -> None:
        if self.enabled and keys:
            shard = self.root / "scores" / identity / f"{uuid.uuid4().hex}.npz"
            self._write(shard, {"keys": np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 16),
                                "scores": np.asarray(scores, dtype=np.float64)})
