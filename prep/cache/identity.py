"""What makes a cache entry's identity: content fingerprints of settings, texts and model files.

An entry's identity is derived from the settings that produce it, the way 🤗 datasets fingerprints a
transform: by default every setting counts, and each kind of entry names the settings that cannot
change its values in an explicit ignore list (``identity_of``). A key added to the schema therefore
changes the identity unless someone decides, next to the list, that it does not: a new setting can
never silently reuse stale entries. Settings that name model files count by the files' content, not
their path.

``huggingface_hub`` is imported inside the functions that use it: loading is slow, and a config error or ``--help``
answers without waiting for it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from prep.config.schema import SAMPLING_KEYS
from prep.models import batching, runtime
from prep.models.teacher import EMBEDDER, EmbedderTeacher

if TYPE_CHECKING:
    from prep.config.schema import HardwareConfig, MinerConfig, RerankerConfig
    from prep.models.teacher import EmbedderTeacher, RerankerTeacher

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


def settings_fields(settings: Any) -> dict[str, Any]:
    """A settings object's keys and values: a dataclass, or a composed config node (as tests pass them)."""
    if dataclasses.is_dataclass(settings):
        return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}

    return OmegaConf.to_container(settings, resolve=True) if OmegaConf.is_config(settings) else dict(settings)


def identity_of(settings: Any, ignore: Iterable[str] = (), files: Iterable[str] = ()) -> dict[str, Any]:
    """Every setting of ``settings`` except those in ``ignore``; those in ``files`` by their files' content.

    A name in ``ignore`` or ``files`` that the settings do not have is an error, so a renamed key
    cannot leave an ignore list stale.
    """
    values = settings_fields(settings)
    ignore, files = frozenset(ignore), frozenset(files)
    unknown = (ignore | files) - values.keys()
    if unknown:
        raise KeyError(f"not a setting of {type(settings).__name__}: {', '.join(sorted(unknown))}")
    return {name: model_fingerprint(value) if name in files else _plain(value)
            for name, value in values.items() if name not in ignore}


def _plain(value: Any) -> Any:
    """Enum members as their strings, config lists as lists: the identity is JSON."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


# Miner settings that cannot change an embedding: where Hugging Face keeps its downloads, and what mining does
# with the embeddings afterwards (the sampling recipe, the search). Every other miner setting counts, batch_size
# too: it shapes the forward passes (prep/models/batching.py).
NOT_IN_EMBEDDINGS = frozenset({
    *SAMPLING_KEYS, "cache_dir", "candidate_pool", "search_batch_size", "query_block", "search_backend",
    "index",
    "index_nlist", "index_nprobe", "hnsw_m", "hnsw_ef_search", "index_recall_queries",
    "query_instruction_from_row",  # a row's own instruction is part of its queries' key (CachedEncoder.key)
})
MODEL_FILES = frozenset({"model_name_or_path", "examples_for_task"})  # count by their files' content


def embedder_identity(miner: MinerConfig, hardware: HardwareConfig) -> dict[str, Any]:
    """Everything that changes an embedding: the miner's settings but ``NOT_IN_EMBEDDINGS``, the dtype the forward
    passes run in, and the passes' shape (``batching.passes_identity``): the ways the hardware settings reach an
    embedding."""
    return {**identity_of(miner, ignore=NOT_IN_EMBEDDINGS, files=MODEL_FILES),
            "dtype": runtime.effective_dtype(hardware),
            "passes": batching.passes_identity(hardware)}


# Reranker settings that cannot change a score; every other one counts (model files by their content), batch_size
# too: it shapes the forward passes (prep/models/batching.py).
NOT_IN_SCORES = frozenset({"cache_dir"})


def reranker_identity(reranker: RerankerConfig, hardware: HardwareConfig) -> dict[str, Any]:
    """Everything that changes a reranker's scores: its settings but ``NOT_IN_SCORES`` (model and adapter by
    their files' content), the dtype its forward passes run in and their shape (``batching.passes_identity``)."""
    return {"kind": "reranker", "dtype": runtime.effective_dtype(hardware),
            "passes": batching.passes_identity(hardware),
            **identity_of(reranker, ignore=NOT_IN_SCORES, files={"model_name_or_path", "peft_path"})}


def teacher_identity(teacher: RerankerTeacher | EmbedderTeacher) -> dict[str, Any]:
    """Everything that changes a teacher's scores: a reranker's (``reranker_identity``), or for the bi-encoder
    teacher its embeddings' and whether its class runs one text per pass."""
    if isinstance(teacher, EmbedderTeacher):
        return {"kind": EMBEDDER, "batch_invariant": teacher.batch_invariant,
                **embedder_identity(teacher.miner, teacher.hardware)}
    return reranker_identity(teacher.reranker, teacher.hardware)
