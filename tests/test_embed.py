"""Our forward loop gives FlagEmbedding's own embeddings (pooling, normalisation, instructions)."""

import numpy as np
import pytest

from prep import embed
from prep.io import read_jsonl
from prep.paths import SAMPLE_POOL, SAMPLE_TRAIN
from tests.conftest import compose_config


@pytest.fixture(scope="module")
def texts():
    return [r["text"] for r in read_jsonl(SAMPLE_POOL)][:40], [r["query"] for r in read_jsonl(SAMPLE_TRAIN)][:40]


@pytest.mark.parametrize("overrides", [
    [],
    ["miner.pooling_method=cls", "miner.normalize_embeddings=false", "miner.batch_size=7"],
    ["miner.query_instruction_for_retrieval=query: ", "miner.passage_instruction_for_retrieval=passage: "],
])
def test_our_loop_matches_flagembedding(texts, overrides):
    passages, queries = texts
    cfg = compose_config(overrides)
    embedder = embed.load_embedder(cfg.miner, cfg.hardware)
    ours_p = embed.encode_passages(embedder, cfg.miner, passages)
    ours_q = embed.encode_queries(embedder, cfg.miner, queries)
    theirs_p = embedder.encode_corpus(passages, batch_size=16)
    theirs_q = embedder.encode_queries(queries, batch_size=16)
    assert ours_p.shape == (40, 384) and ours_p.dtype == np.float32
    np.testing.assert_allclose(ours_p, theirs_p, atol=1e-5)
    np.testing.assert_allclose(ours_q, theirs_q, atol=1e-5)
    norms = np.linalg.norm(ours_p, axis=1)
    if cfg.miner.normalize_embeddings:
        np.testing.assert_allclose(norms, 1, atol=1e-5)
    else:
        assert not np.allclose(norms, 1, atol=1e-3)


def test_instructions_change_the_embeddings(texts):
    passages, _ = texts
    plain = compose_config()
    prefixed = compose_config(["miner.passage_instruction_for_retrieval=passage: "])
    embedder = embed.load_embedder(plain.miner, plain.hardware)
    a = embed.encode_passages(embedder, plain.miner, passages[:5])
    b = embed.encode_passages(embedder, prefixed.miner, passages[:5])
    assert not np.allclose(a, b, atol=1e-3)
    assert embed.with_instruction(embedder, ["x"], "passage: ", "{}{}") == ["passage: x"]
    assert embed.with_instruction(embedder, ["x"], None, "{}{}") == ["x"]
