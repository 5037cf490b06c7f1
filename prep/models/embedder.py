"""Loading embedders through FlagEmbedding and encoding texts with them.

FlagEmbedding loads the model, its tokenizer and its pooling; for its two plain classes
(encoder-only-base and decoder-only-base) on one device we run the forward loop ourselves,
because FlagEmbedding's loop first runs a throw-away forward pass on the longest batch (a
batch-size probe) and keeps every tokenized text as a Python dict. The pooling, normalisation
and instruction formats are FlagEmbedding's own, so both loops give the same embeddings
(tests/models/test_embedder.py checks this). Other classes (m3, icl, pseudo-moe) and several devices go
through FlagEmbedding's ``encode`` unchanged.

``torch`` and ``FlagEmbedding`` are imported inside the functions that use them: loading is slow, and a config error
or ``--help`` answers without waiting for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from prep.models import batching, flag, runtime
from prep.models.lengths import with_own_lengths
from prep.progress import progress as progress_bar

if TYPE_CHECKING:
    import torch
    from FlagEmbedding.abc.inference import AbsEmbedder
    from transformers import PreTrainedTokenizerBase

    from prep.config.schema import HardwareConfig, MinerConfig

log = logging.getLogger(__name__)

TOKENIZE_CHUNK = 8192  # texts tokenized together


def load_embedder(miner: MinerConfig, hardware: HardwareConfig) -> AbsEmbedder:
    """Build FlagEmbedding's embedder for the ``miner`` config. Only keys that are set are passed,
    so a model class keeps its own pooling and instruction format unless the config names one."""
    runtime.before_model_imports()
    from FlagEmbedding import FlagAutoModel

    miner = with_own_lengths(miner)  # FlagEmbedding's own loop (the classes ours does not run) reads them
    log.info("embedder %s, forward passes in %s", miner.model_name_or_path, runtime.describe_dtype(hardware))
    options: dict[str, Any] = {
        "normalize_embeddings": miner.normalize_embeddings,
        "use_fp16": hardware.use_fp16,
        "use_bf16": runtime.use_bf16(hardware),
        "devices": runtime.devices_argument(hardware),
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
        options["model_class"] = str(miner.model_class)
    if miner.pooling_method:
        options["pooling_method"] = str(miner.pooling_method)
    if miner.query_instruction_format_for_retrieval is not None:
        options["query_instruction_format"] = miner.query_instruction_format_for_retrieval
    elif miner.model_class:
        options["query_instruction_format"] = "{}{}"  # what FlagEmbedding picks for an explicit class
    if miner.examples_for_task is not None:
        options["examples_for_task"] = miner.examples_for_task
    if miner.examples_instruction_format is not None:
        options["examples_instruction_format"] = miner.examples_instruction_format
    return FlagAutoModel.from_finetuned(miner.model_name_or_path, **options)


def with_instruction(embedder: AbsEmbedder, texts: list[str], instruction: str | None,
                     instruction_format: str) -> list[str]:
    """FlagEmbedding's instruction formatting (``format.format(instruction, text)``)."""
    if not instruction:
        return texts
    return [embedder.get_detailed_instruct(instruction_format, instruction, text) for text in texts]


def _tokenize(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int) -> list[list[int]]:
    # Only the ids: the attention masks and token types would be two more lists of Python ints per
    # text (about 0.1 GB per chunk of 8,192 passages), and padding rebuilds the mask anyway.
    return tokenizer(texts, truncation=True, max_length=max_length, return_attention_mask=False,
                     return_token_type_ids=False)["input_ids"]


def _token_chunks(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int
                  ) -> Iterator[tuple[int, list[list[int]]]]:
    """(first index, token ids) of each chunk of ``TOKENIZE_CHUNK`` texts.

    While the caller runs one chunk's forward passes, a thread tokenizes the next (the Rust tokenizer
    releases the GIL), so tokenizing costs no wall time of its own.
    """

    starts = list(range(0, len(texts), TOKENIZE_CHUNK))
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = [pool.submit(_tokenize, tokenizer, texts[start:start + TOKENIZE_CHUNK], max_length)
                   for start in starts[:1]]
        for number, start in enumerate(starts):
            token_ids = pending.pop().result()
            if number + 1 < len(starts):
                following = starts[number + 1]
                pending.append(pool.submit(_tokenize, tokenizer, texts[following:following + TOKENIZE_CHUNK],
                                           max_length))
            yield start, token_ids


def _embed_pass(embedder: AbsEmbedder, model: torch.nn.Module, pooling: Callable, step: batching.Pass,
                device: torch.device | str) -> np.ndarray:
    """One forward pass: pad to the pass's length (filler rows included), run, pool, truncate and normalise as
    FlagEmbedding does; float32 rows of the pass's own items."""
    import torch

    padded = embedder.tokenizer.pad({"input_ids": step.filled()}, padding="max_length", max_length=step.length,
                                    return_tensors="pt").to(device)
    hidden = model(**padded, return_dict=True).last_hidden_state
    batch_embeddings = flag.truncate(embedder, pooling(hidden, padded["attention_mask"]))
    if embedder.normalize_embeddings:
        batch_embeddings = torch.nn.functional.normalize(batch_embeddings, dim=-1)
    return batch_embeddings[:len(step.items)].float().cpu().numpy()


# How texts are cut into passes; the batching benchmark puts batching.sorted_passes here to measure what exactness
# costs (docs/benchmarks.md).
plan_passes = batching.exact_passes


def _encode_one_device(embedder: AbsEmbedder, pooling: Callable, texts: list[str], hardware: HardwareConfig,
                       limits: tuple[int, int], description: str) -> np.ndarray:
    """Embeddings of ``texts`` in their order, as float32; ``limits`` is (max length, batch size). (Six
    parameters: the embedder's parts that FlagEmbedding's own loop takes as arguments too.)

    Passes are exact (``batching.exact_passes``): a text's embedding depends on the text alone, never on the
    texts encoded beside it. Texts are tokenized chunk by chunk; a pass waiting for rows carries over to the next
    chunk, so only the last pass of each length has filler rows.
    """
    import torch

    max_length, batch_size = limits
    device = embedder.target_devices[0]
    shape = batching.PassShape.on(device, batch_size, hardware, max_length)
    # The dtype the cache key names (effective_dtype), so a cached embedding is what this loop gives.
    model = embedder.model.to(device=device, dtype=runtime.torch_dtype(runtime.effective_dtype(hardware)))
    model.eval()
    # We pad token ids that were tokenized once for sorting; transformers warns about that path.
    flag.quiet_pad_warning(embedder.tokenizer)
    tokenized = ((chunk_start + offset, ids, len(ids))
                 for chunk_start, token_ids in _token_chunks(embedder.tokenizer, texts, max_length)
                 for offset, ids in enumerate(token_ids))
    embeddings: np.ndarray | None = None
    with torch.inference_mode(), progress_bar(total=len(texts), desc=description, unit="text") as progress:
        for step in plan_passes(tokenized, shape):
            values = _embed_pass(embedder, model, pooling, step, device)
            if embeddings is None:
                embeddings = np.empty((len(texts), values.shape[1]), dtype=np.float32)
            embeddings[step.positions] = values
            progress.update(len(step.items))
    return embeddings if embeddings is not None else np.empty((0, 0), dtype=np.float32)


def _fast_path(embedder: AbsEmbedder):
    """Our forward loop applies to FlagEmbedding's plain classes on one device."""
    pooling = flag.plain_embedder_pooling(embedder)
    return pooling if pooling is not None and len(embedder.target_devices) == 1 else None


def exact(embedder: AbsEmbedder) -> bool:
    """Whether a text's embedding depends on it alone: true in our loop (exact passes); FlagEmbedding's own loop,
    which the other classes and several devices take, batches texts by sorted length."""
    return _fast_path(embedder) is not None


def encode_queries(embedder: AbsEmbedder, miner: MinerConfig, hardware: HardwareConfig, queries: list[str],
                   instruction: str | None = None) -> np.ndarray:
    """Query embeddings (float32), with the query instruction in FlagEmbedding's format: ``instruction`` when given
    (a row's own, ``miner.query_instruction_from_row``), else the model's."""
    if instruction is None:
        return _encode_side(embedder, miner, hardware, "queries", queries)
    with flag.query_instruction(embedder, instruction):
        return _encode_side(embedder, miner, hardware, "queries", queries)


def encode_passages(embedder: AbsEmbedder, miner: MinerConfig, hardware: HardwareConfig,
                    passages: list[str]) -> np.ndarray:
    """Passage embeddings (float32), with the passage instruction when one is configured."""
    return _encode_side(embedder, miner, hardware, "passages", passages)


def dense(result: Any) -> np.ndarray:
    """FlagEmbedding's ``encode`` result as a float32 array: BGE-M3's class returns a dict of its dense, sparse
    and multi-vector outputs, of which mining searches the dense ones."""
    if isinstance(result, dict):
        result = result["dense_vecs"]
    return np.asarray(result, dtype=np.float32)


def _encode_side(embedder: AbsEmbedder, miner: MinerConfig, hardware: HardwareConfig, side: str,
                 texts: list[str]) -> np.ndarray:
    """Our loop where it applies, else FlagEmbedding's own ``encode_queries`` / ``encode_corpus``."""
    miner = with_own_lengths(miner)
    if side == "queries":
        own, max_length = embedder.encode_queries, miner.query_max_length
        instruction = (embedder.query_instruction_for_retrieval, embedder.query_instruction_format)
    else:
        own, max_length = embedder.encode_corpus, miner.passage_max_length
        instruction = (miner.passage_instruction_for_retrieval, miner.passage_instruction_format_for_retrieval)
    pooling = _fast_path(embedder)
    if pooling is None:
        return dense(own(texts, convert_to_numpy=True))
    return _encode_one_device(embedder, pooling, with_instruction(embedder, texts, *instruction), hardware,
                              (max_length, miner.batch_size), f"encode {side}")


def encode(embedder: AbsEmbedder, miner: MinerConfig, hardware: HardwareConfig, side: str, texts: list[str],
           instruction: str | None = None) -> np.ndarray:
    """``encode_queries`` or ``encode_passages`` by ``side`` (looked up when called, so tests can replace them);
    ``instruction``: a query instruction in place of the model's."""
    if side == "queries" and instruction is not None:
        return encode_queries(embedder, miner, hardware, texts, instruction)
    return (encode_queries if side == "queries" else encode_passages)(embedder, miner, hardware, texts)


def reproducibility(miner: MinerConfig, hardware: HardwareConfig) -> dict[str, Any]:
    """``summary.json``'s ``reproducible`` for embeddings: the dtype, and whether a text's embedding depends on the
    text alone (``across_batches``: then blocks, shards and the cache's history cannot change an output byte),
    with the reason where not; ``null`` where it is designed so but not measured (a GPU, in any dtype)."""
    dtype = runtime.effective_dtype(hardware)
    why = _not_exact_because(miner, hardware)
    if why is None and runtime.on_gpu(hardware):
        return {"dtype": dtype, "across_batches": None,
                "why": "exact passes on a GPU are not measured yet (make bench-gpu checks them)"}
    return {"dtype": dtype, "across_batches": why is None, **({"why": why} if why else {})}


def _not_exact_because(miner: MinerConfig, hardware: HardwareConfig) -> str | None:
    """Why the embeddings would go through FlagEmbedding's own loop (``exact``'s answer before loading the model),
    or None."""
    runtime.before_model_imports()
    model_class = flag.embedder_class(miner.model_class, miner.model_name_or_path)
    if not flag.is_plain_embedder_class(model_class):
        name = getattr(model_class, "__name__", miner.model_class)
        return f"{name} runs FlagEmbedding's own loop, which batches texts by sorted length"
    devices = runtime.devices_argument(hardware)
    if devices is None:
        import torch

        devices = list(range(torch.cuda.device_count()))  # FlagEmbedding takes every visible GPU
    if isinstance(devices, list) and len(devices) > 1:
        return "several devices run FlagEmbedding's own loop, which batches texts by sorted length"
    return None
