"""What prep uses of FlagEmbedding beyond ``FlagAutoModel`` and ``FlagAutoReranker`` and their public ``encode_*``
and ``compute_score``, in one place: which loaded models are the plain classes our own forward loops run (and their
pooling), the class a model maps to before it is loaded, the Matryoshka truncation (``_truncate_embeddings``, a
private method), a query instruction swapped in for a row's own, the reranker's pair preparation and padding
helpers, and transformers' warning about padding ids tokenized once. ``tests/models/test_flag.py`` fails when
FlagEmbedding (or transformers) changes any of them.

FlagEmbedding is imported inside each function: it imports torch and transformers, seconds that a config error or
``--help`` must not wait for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from FlagEmbedding.abc.inference import AbsEmbedder, AbsReranker
    from transformers import BatchEncoding, PreTrainedTokenizerBase

PAD_WARNING = "Asking-to-pad-a-fast-tokenizer"  # transformers' key in a tokenizer's deprecation_warnings


def plain_embedder_pooling(embedder: AbsEmbedder) -> Callable | None:
    """The pooling of a loaded embedder of FlagEmbedding's plain classes (encoder-only or decoder-only base), which
    our forward loop runs; None for any other class."""
    from FlagEmbedding.inference.embedder.decoder_only.base import BaseLLMEmbedder, last_token_pool
    from FlagEmbedding.inference.embedder.encoder_only.base import BaseEmbedder

    if type(embedder) is BaseEmbedder:
        return embedder.pooling
    if type(embedder) is BaseLLMEmbedder:
        return last_token_pool
    return None


def embedder_class(model_class: str | None, model_name_or_path: str) -> type | None:
    """The class FlagEmbedding would load: the one ``model_class`` names, else the one its table gives the model's
    name (None: a name the table does not know)."""
    from FlagEmbedding.inference.embedder.model_mapping import (
        AUTO_EMBEDDER_MAPPING,
        EMBEDDER_CLASS_MAPPING,
        EmbedderModelClass,
    )

    if model_class:
        return EMBEDDER_CLASS_MAPPING[EmbedderModelClass(str(model_class))]
    known = AUTO_EMBEDDER_MAPPING.get(os.path.basename(str(model_name_or_path).rstrip("/")))
    return known.model_class if known else None


def is_plain_embedder_class(cls: type | None) -> bool:
    from FlagEmbedding.inference.embedder.decoder_only.base import BaseLLMEmbedder
    from FlagEmbedding.inference.embedder.encoder_only.base import BaseEmbedder

    return cls in (BaseEmbedder, BaseLLMEmbedder)


def truncate(embedder: AbsEmbedder, embeddings: torch.Tensor) -> torch.Tensor:
    """The embeddings cut to the embedder's ``truncate_dim`` (Matryoshka models), as its own loop cuts them."""
    return embedder._truncate_embeddings(embeddings)


@contextmanager
def query_instruction(embedder: AbsEmbedder, instruction: str) -> Iterator[None]:
    """Within the block the embedder formats queries with ``instruction`` (a row's own) in place of its configured
    one: ``encode_queries`` reads the attribute at each call."""
    configured = embedder.query_instruction_for_retrieval
    embedder.query_instruction_for_retrieval = instruction
    try:
        yield
    finally:
        embedder.query_instruction_for_retrieval = configured


def quiet_pad_warning(tokenizer: PreTrainedTokenizerBase) -> None:
    """transformers warns when ids tokenized earlier are padded by a fast tokenizer; our loops tokenize once to sort
    texts by length and pad them later, on purpose: marked as already warned."""
    tokenizer.deprecation_warnings[PAD_WARNING] = True


def is_plain_reranker(reranker: AbsReranker) -> bool:
    """Whether a loaded reranker is FlagEmbedding's plain encoder-only class, which our scoring loop runs."""
    from FlagEmbedding.inference.reranker.encoder_only.base import BaseReranker

    return type(reranker) is BaseReranker


def prepare_pair(tokenizer: PreTrainedTokenizerBase, query_ids: list[int], passage_ids: list[int],
                 max_length: int) -> BatchEncoding:
    """One (query, passage) pair's model inputs, truncated as FlagEmbedding's encoder-only reranker truncates them
    (``only_second``), unpadded."""
    from FlagEmbedding.utils.tokenizer_compat import prepare_for_model_compat

    return prepare_for_model_compat(tokenizer, query_ids, passage_ids, truncation="only_second",
                                    max_length=max_length, padding=False)


def pad(tokenizer: PreTrainedTokenizerBase, items: list[Any], length: int) -> BatchEncoding:
    """Prepared pairs padded to ``length`` as torch tensors (FlagEmbedding's helper for transformers 4 and 5)."""
    from FlagEmbedding.utils.tokenizer_compat import pad_with_compat

    return pad_with_compat(tokenizer, items, padding="max_length", max_length=length, return_tensors="pt")
