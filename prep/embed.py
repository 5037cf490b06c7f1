"""Loading embedders through FlagEmbedding and encoding texts with them.

FlagEmbedding loads the model, its tokenizer and its pooling; for its two plain classes
(encoder-only-base and decoder-only-base) on one device we run the forward loop ourselves,
because FlagEmbedding's loop first runs a throw-away forward pass on the longest batch (a
batch-size probe) and keeps every tokenized text as a Python dict. The pooling, normalisation
and instruction formats are FlagEmbedding's own, so both loops give the same embeddings
(tests/test_embed.py checks this). Other classes (m3, icl, pseudo-moe) and several devices go
through FlagEmbedding's ``encode`` unchanged.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

TOKENIZE_CHUNK = 8192  # texts tokenized together; also the unit of length sorting


def devices_argument(hardware: Any) -> Any:
    """``hardware.devices`` as FlagEmbedding takes it (None, "cpu", "cuda:0", [0, 1], ...)."""
    devices = hardware.devices
    if devices is None:
        return None
    if isinstance(devices, (str, int)):
        return devices
    return list(devices)


BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags() -> set[str]:
    """The CPU feature flags of this machine (Linux), or an empty set where they cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def on_cpu(hardware: Any) -> bool:
    devices = hardware.devices
    return isinstance(devices, str) and devices.startswith("cpu")


def use_bf16(hardware: Any, flags: set[str] | None = None) -> bool:
    """``hardware.use_bf16`` resolved: ``auto`` means bf16 on a CPU with AMX or AVX512-BF16, else not."""
    value = hardware.use_bf16
    if isinstance(value, bool):
        return value
    if value != "auto":
        from prep.errors import UsageError

        raise UsageError(f"hardware.use_bf16: '{value}' is not true, false or auto")
    if not on_cpu(hardware):
        return False  # GPUs take use_fp16
    found = cpu_flags() if flags is None else flags
    return any(flag in found for flag in BF16_CPU_FLAGS)


def describe_dtype(hardware: Any) -> str:
    """The dtype in words, with the reason when ``use_bf16=auto`` chose it."""
    dtype = effective_dtype(hardware)
    if hardware.use_bf16 == "auto" and on_cpu(hardware):
        found = sorted(set(BF16_CPU_FLAGS) & cpu_flags())
        reason = f"this CPU has {', '.join(found)}" if found else "this CPU has neither AMX nor AVX512-BF16"
        return f"{dtype} (hardware.use_bf16=auto: {reason})"
    return dtype


def load_embedder(miner: Any, hardware: Any) -> Any:
    """Build FlagEmbedding's embedder for the ``miner`` config. Only keys that are set are passed,
    so a model class keeps its own pooling and instruction format unless the config names one."""
    from FlagEmbedding import FlagAutoModel

    log.info("embedder %s, forward passes in %s", miner.model_name_or_path, describe_dtype(hardware))
    options: dict[str, Any] = {
        "normalize_embeddings": miner.normalize_embeddings,
        "use_fp16": hardware.use_fp16,
        "use_bf16": use_bf16(hardware),
        "devices": devices_argument(hardware),
        "batch_size": miner.batch_size,
        "query_max_length": miner.query_max_length,
        "passage_max_length": miner.passage_max_length,
        "trust_remote_code": miner.trust_remote_code,
        "query_instruction_for_retrieval": miner.query_instruction_for_retrieval,
        "cache_dir": miner.cache_dir,
        # read by FlagEmbedding's encode_corpus (its own loop) and by ours
        "passage_instruction_for_retrieval": miner.passage_instruction_for_retrieval,
        "passage_instruction_format": miner.passage_instruction_format_for_retrieval,
    }
    if miner.model_class:
        options["model_class"] = miner.model_class
    if miner.pooling_method:
        options["pooling_method"] = miner.pooling_method
    if miner.query_instruction_format_for_retrieval is not None:
        options["query_instruction_format"] = miner.query_instruction_format_for_retrieval
    elif miner.model_class:
        options["query_instruction_format"] = "{}{}"  # what FlagEmbedding picks for an explicit class
    if miner.examples_for_task is not None:
        options["examples_for_task"] = miner.examples_for_task
    if miner.examples_instruction_format is not None:
        options["examples_instruction_format"] = miner.examples_instruction_format
    return FlagAutoModel.from_finetuned(miner.model_name_or_path, **options)


def with_instruction(embedder: Any, texts: list[str], instruction: str | None, instruction_format: str) -> list[str]:
    """FlagEmbedding's instruction formatting (``format.format(instruction, text)``)."""
    if not instruction:
        return texts
    return [embedder.get_detailed_instruct(instruction_format, instruction, text) for text in texts]


def _pooling_function(embedder: Any):
    """The pooling of FlagEmbedding's plain classes, or None where our loop does not apply."""
    from FlagEmbedding.inference.embedder.decoder_only.base import BaseLLMEmbedder, last_token_pool
    from FlagEmbedding.inference.embedder.encoder_only.base import BaseEmbedder

    if type(embedder) is BaseEmbedder:
        return embedder.pooling
    if type(embedder) is BaseLLMEmbedder:
        return last_token_pool
    return None


def torch_dtype(name: str):
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def token_batches(lengths_longest_first: list[int], batch_size: int, max_tokens: int) -> list[tuple[int, int]]:
    """(start, end) of consecutive batches over texts sorted longest first.

    A batch holds at most ``batch_size`` texts and at most ``max_tokens`` padded tokens (its first,
    longest text's length times its count): long passages go in small batches, short ones in large.
    On a CPU a 128 x 512 batch runs at half the speed of four 32 x 512 ones (cache and page faults).
    """
    batches = []
    start = 0
    while start < len(lengths_longest_first):
        longest = max(lengths_longest_first[start], 1)
        count = max(1, min(batch_size, max_tokens // longest))
        end = min(start + count, len(lengths_longest_first))
        batches.append((start, end))
        start = end
    return batches


def _tokenize(tokenizer: Any, texts: list[str], max_length: int) -> list[list[int]]:
    # Only the ids: the attention masks and token types would be two more lists of Python ints per
    # text (about 0.1 GB per chunk of 8,192 passages), and padding rebuilds the mask anyway.
    return tokenizer(texts, truncation=True, max_length=max_length, return_attention_mask=False,
                     return_token_type_ids=False)["input_ids"]


def _encode_one_device(embedder: Any, pooling, texts: list[str], *, hardware: Any, max_length: int, batch_size: int,
                       description: str) -> np.ndarray:
    """Embeddings of ``texts`` in their order, as float32.

    Texts go through in chunks of ``TOKENIZE_CHUNK``: while one chunk runs its forward passes, a
    thread tokenizes the next (the Rust tokenizer releases the GIL), so tokenizing costs no wall
    time of its own. Within a chunk, texts are sorted longest first, as FlagEmbedding does, so a
    batch holds texts of similar length and little padding.
    """
    from concurrent.futures import ThreadPoolExecutor

    import torch
    from tqdm import tqdm

    device = embedder.target_devices[0]
    # The dtype the cache key names (effective_dtype), so a cached embedding is what this loop gives.
    model = embedder.model.to(device=device, dtype=torch_dtype(effective_dtype(hardware)))
    model.eval()
    tokenizer = embedder.tokenizer
    # We pad token ids that were tokenized once for sorting; transformers warns about that path.
    tokenizer.deprecation_warnings["Asking-to-pad-a-fast-tokenizer"] = True
    embeddings: np.ndarray | None = None
    starts = list(range(0, len(texts), TOKENIZE_CHUNK))
    with torch.inference_mode(), ThreadPoolExecutor(max_workers=1) as pool, \
            tqdm(total=len(texts), desc=description, unit="text") as progress:
        pending = pool.submit(_tokenize, tokenizer, texts[:TOKENIZE_CHUNK], max_length) if starts else None
        for number, chunk_start in enumerate(starts):
            token_ids = pending.result()
            if number + 1 < len(starts):
                following = starts[number + 1]
                pending = pool.submit(_tokenize, tokenizer, texts[following:following + TOKENIZE_CHUNK], max_length)
            order = np.argsort([-len(ids) for ids in token_ids], kind="stable")
            for start, end in token_batches([len(token_ids[i]) for i in order], batch_size, hardware.max_batch_tokens):
                batch_index = order[start:end]
                padded = tokenizer.pad({"input_ids": [token_ids[i] for i in batch_index]}, padding=True,
                                       return_tensors="pt").to(device)
                hidden = model(**padded, return_dict=True).last_hidden_state
                batch_embeddings = pooling(hidden, padded["attention_mask"])
                batch_embeddings = embedder._truncate_embeddings(batch_embeddings)
                if embedder.normalize_embeddings:
                    batch_embeddings = torch.nn.functional.normalize(batch_embeddings, dim=-1)
                values = batch_embeddings.float().cpu().numpy()
                if embeddings is None:
                    embeddings = np.empty((len(texts), values.shape[1]), dtype=np.float32)
                embeddings[chunk_start + batch_index] = values
                progress.update(len(batch_index))
    if embeddings is None:
        return np.empty((0, 0), dtype=np.float32)
    return embeddings


def _fast_path(embedder: Any):
    """Our forward loop applies to FlagEmbedding's plain classes on one device."""
    pooling = _pooling_function(embedder)
    return pooling if pooling is not None and len(embedder.target_devices) == 1 else None


def encode_queries(embedder: Any, miner: Any, hardware: Any, queries: list[str]) -> np.ndarray:
    """Query embeddings (float32), with the query instruction in FlagEmbedding's format."""
    pooling = _fast_path(embedder)
    if pooling is None:
        return np.asarray(embedder.encode_queries(queries, convert_to_numpy=True), dtype=np.float32)
    texts = with_instruction(embedder, queries, embedder.query_instruction_for_retrieval,
                             embedder.query_instruction_format)
    return _encode_one_device(embedder, pooling, texts, max_length=miner.query_max_length,
                              hardware=hardware, batch_size=miner.batch_size, description="encode queries")


def encode_passages(embedder: Any, miner: Any, hardware: Any, passages: list[str]) -> np.ndarray:
    """Passage embeddings (float32), with the passage instruction when one is configured."""
    pooling = _fast_path(embedder)
    if pooling is None:
        return np.asarray(embedder.encode_corpus(passages, convert_to_numpy=True), dtype=np.float32)
    texts = with_instruction(embedder, passages, miner.passage_instruction_for_retrieval,
                             miner.passage_instruction_format_for_retrieval)
    return _encode_one_device(embedder, pooling, texts, max_length=miner.passage_max_length,
                              hardware=hardware, batch_size=miner.batch_size, description="encode passages")


def effective_dtype(hardware: Any) -> str:
    """The dtype the forward passes really run in (FlagEmbedding runs fp16 models in fp32 on the CPU)."""
    if use_bf16(hardware):
        return "bf16"
    if not hardware.use_fp16 or on_cpu(hardware):
        return "fp32"
    if hardware.devices is None:
        import torch

        return "fp16" if torch.cuda.is_available() else "fp32"
    return "fp16"


def embedder_identity(miner: Any, hardware: Any) -> dict[str, Any]:
    """Everything that changes an embedding, for the cache key (batch size and devices do not)."""
    from prep.cache import model_fingerprint

    return {
        "model": model_fingerprint(miner.model_name_or_path),
        "model_class": miner.model_class,
        "pooling_method": miner.pooling_method,
        "normalize_embeddings": miner.normalize_embeddings,
        "query_instruction": [miner.query_instruction_for_retrieval, miner.query_instruction_format_for_retrieval],
        "passage_instruction": [miner.passage_instruction_for_retrieval,
                                miner.passage_instruction_format_for_retrieval],
        "examples": [model_fingerprint(miner.examples_for_task), miner.examples_instruction_format],
        "max_length": [miner.query_max_length, miner.passage_max_length],
        "dtype": effective_dtype(hardware),
    }


PASSAGE_CHUNK = 16384  # passages per cache entry (config key encode_chunk): the unit of resuming and sharding


def chunk_starts(count: int, chunk: int) -> list[int]:
    """Where each cache chunk of ``count`` passages starts."""
    return list(range(0, count, chunk))


def shard_chunks(chunk_count: int, index: int, count: int) -> list[int]:
    """The chunks shard ``index`` of ``count`` encodes: ``index, index + count, ...``."""
    return list(range(index, chunk_count, count))


class CachedEncoder:
    """Encodes queries and passages through the cache; the model is loaded only on a miss.

    Passages are cached in chunks of ``PASSAGE_CHUNK`` (by position), each written as soon as it is
    encoded: an interrupted encode resumes at the first missing chunk, and ``step=encode`` shards can
    encode disjoint chunks on several machines into one shared cache.
    """

    def __init__(self, miner: Any, hardware: Any, cache: Any, timer: Any, storage_dtype: str = "float32",
                 chunk_size: int = PASSAGE_CHUNK):
        self.miner, self.hardware, self.cache, self.timer = miner, hardware, cache, timer
        if chunk_size < 1:
            from prep.errors import UsageError

            raise UsageError(f"encode_chunk: need a positive number of passages, got {chunk_size}")
        self.chunk_size = int(chunk_size)
        if storage_dtype not in ("float32", "float16"):
            from prep.errors import UsageError

            raise UsageError(f"cache_dtype: '{storage_dtype}' is not float32 or float16")
        self.storage_dtype = np.dtype(storage_dtype)
        self.identity = embedder_identity(miner, hardware)
        self.encoded = {"queries": 0, "passages": 0}
        self.chunks = {"cached": 0, "encoded": 0}
        self._embedder: Any = None

    def model(self) -> Any:
        if self._embedder is None:
            with self.timer("load"):
                self._embedder = load_embedder(self.miner, self.hardware)
        return self._embedder

    def key(self, side: str, texts: list[str]) -> str:
        from prep.cache import fingerprint, texts_fingerprint

        return fingerprint({**self.identity, "side": side, "storage": self.storage_dtype.name,
                            "texts": texts_fingerprint(texts)})

    def _encode(self, side: str, texts: list[str]) -> np.ndarray:
        key = self.key(side, texts)
        found = self.cache.get("embeddings", key)
        if found is not None:
            if side == "passages":
                self.chunks["cached"] += 1
            return found["embeddings"]
        model = self.model()
        with self.timer("encode"):
            function = encode_queries if side == "queries" else encode_passages
            embeddings = function(model, self.miner, self.hardware, texts)
        # Stored and used at the same precision, so a cached run equals a fresh one.
        embeddings = embeddings.astype(self.storage_dtype)
        self.cache.put("embeddings", key, {"embeddings": embeddings})
        self.encoded[side] += len(texts)
        if side == "passages":
            self.chunks["encoded"] += 1
        return embeddings

    def queries(self, texts: list[str]) -> np.ndarray:
        return self._encode("queries", texts).astype(np.float32)

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

    def encode_shard(self, pool: Any, chunks: list[int]) -> None:
        """``step=encode``: encode chunks number ``chunks`` of ``pool`` into the cache."""
        for number in chunks:
            start = number * self.chunk_size
            self._encode("passages", pool.texts(start, start + self.chunk_size))

    def pool_embeddings(self, pool: Any, spill_dir: str | os.PathLike) -> PoolEmbeddings:
        """The pool's embeddings as chunks on disk, each encoded (or found in the cache) in turn.

        Only one chunk is in memory at a time: with the cache on, chunks are read back from it when
        needed; with the cache off, they are written as ``.npy`` files under ``spill_dir`` and mapped.
        """
        starts = chunk_starts(len(pool), self.chunk_size)
        if not self.cache.enabled:
            Path(spill_dir).mkdir(parents=True, exist_ok=True)
        loaders: list[tuple[int, int, Callable[[], np.ndarray]]] = []
        keys = []
        dim = 0
        for number, start in enumerate(starts):
            texts = pool.texts(start, start + self.chunk_size)
            if len(starts) > 1:
                log.info("passages %d-%d of %d (chunk %d of %d)", start, start + len(texts), len(pool), number + 1,
                         len(starts))
            key = self.key("passages", texts)
            keys.append(key)
            spilled = Path(spill_dir) / f"{key}.npy"
            # The first chunk is read (or encoded) to learn the dimension; a later cached chunk is read
            # only when the search reaches it.
            if dim and self.cache.has("embeddings", key):
                self.chunks["cached"] += 1
            else:
                values = self._encode("passages", texts)
                dim = values.shape[1]
                if not self.cache.enabled:
                    np.save(spilled, values)
                del values
            load = (functools.partial(self.cache.load, "embeddings", key, "embeddings") if self.cache.enabled
                    else functools.partial(np.load, spilled, mmap_mode="r"))
            loaders.append((start, len(texts), load))
        from prep.cache import fingerprint

        return PoolEmbeddings(loaders, dim, fingerprint(keys))


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
