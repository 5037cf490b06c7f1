"""Token counts for ``step=split``: the splitter model's fast (Rust) tokenizer, and ``TextLengths``, which counts
each distinct text once on threads of its own.

``transformers``, ``tokenizers`` and ``huggingface_hub`` are imported inside the functions that use them: loading is
slow, and a config error or ``--help`` answers without waiting for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prep.errors import UsageError
from prep.models.availability import check_model_source

if TYPE_CHECKING:
    from prep.config.schema import SplitterConfig


def _tokenizer_file(splitter: SplitterConfig) -> Path | None:
    """The model's ``tokenizer.json`` (local folder or Hugging Face cache), when there is one."""
    folder = Path(splitter.model_name_or_path).expanduser()
    if folder.is_dir():
        candidate = folder / "tokenizer.json"
        return candidate if candidate.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(splitter.model_name_or_path, "tokenizer.json", cache_dir=splitter.cache_dir)
    return Path(found) if isinstance(found, str) else None


def load_tokenizer(splitter: SplitterConfig):
    """A fast (Rust) tokenizer with truncation and padding off (tokenizer.json may set them).

    Read straight from ``tokenizer.json`` with the ``tokenizers`` library when the model has one
    (importing transformers alone takes seconds); else through transformers' ``AutoTokenizer``.
    """
    check_model_source(splitter.model_name_or_path, "splitter.model_name_or_path", splitter.cache_dir)
    tokenizer_file = _tokenizer_file(splitter)
    if tokenizer_file is not None:
        from tokenizers import Tokenizer

        backend = Tokenizer.from_file(str(tokenizer_file))
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(splitter.model_name_or_path, cache_dir=splitter.cache_dir,
                                                  trust_remote_code=splitter.trust_remote_code, use_fast=True)
        if not tokenizer.is_fast:
            raise UsageError(f"splitter.model_name_or_path: {splitter.model_name_or_path} has no fast tokenizer")
        backend = tokenizer.backend_tokenizer
    backend.no_truncation()
    backend.no_padding()
    return backend


@contextmanager
def own_threads() -> Iterator[None]:
    """Within the block, the tokenizers library tokenizes each batch on the calling thread only (its
    ``TOKENIZERS_PARALLELISM`` switch, read at every call), so ``TextLengths``' threads are all there is.
    The variable is restored afterwards."""
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before


class TextLengths:
    """Token counts of texts, each distinct text tokenized once, on ``threads`` threads.

    Training files repeat passages heavily (mined negatives come from one pool), so most lookups hit.
    The memo is emptied when it holds ``limit`` texts, which bounds memory on any file. The Rust
    backend releases the GIL while it tokenizes, so threads run in parallel; its own parallelism is off
    meanwhile (``own_threads``).
    """

    def __init__(self, backend: Any, threads: int = 1, limit: int = 500_000):
        self.backend, self.threads, self.limit = backend, threads, limit
        self.known: dict[str, int] = {}
        self.tokenized = 0

    def _count(self, texts: list[str]) -> list[int]:
        parts = [texts[start::self.threads] for start in range(min(self.threads, len(texts)))]
        with own_threads(), ThreadPoolExecutor(max_workers=len(parts)) as pool:
            counted = list(pool.map(lambda part: [len(e) for e in self.backend.encode_batch_fast(
                part, add_special_tokens=True)], parts))
        lengths = [0] * len(texts)
        for start, values in enumerate(counted):
            lengths[start::len(parts)] = values
        return lengths

    def of(self, texts: list[str]) -> list[int]:
        new = list(dict.fromkeys(t for t in texts if t not in self.known))
        if new and len(self.known) + len(new) > self.limit:
            self.known.clear()
            new = list(dict.fromkeys(texts))
        if new:
            self.known.update(zip(new, self._count(new)))
            self.tokenized += len(new)
        return [self.known[t] for t in texts]
