"""Our forward loop gives FlagEmbedding's own embeddings (pooling, normalisation, instructions)."""

import numpy as np
import pytest

from prep.io.jsonl import read_jsonl
from prep.io.paths import SAMPLE_POOL, SAMPLE_TRAIN
from prep.models import batching, runtime
from prep.models import embedder as embed
from tests.conftest import compose_config


@pytest.fixture(scope="module")
def texts():
    return [r["text"] for r in read_jsonl(SAMPLE_POOL)][:40], [r["query"] for r in read_jsonl(SAMPLE_TRAIN)][:40]


@pytest.mark.parametrize("overrides", [
    [],
    ["miner.pooling_method=cls", "miner.normalize_embeddings=false", "miner.batch_size=7",
     "hardware.max_batch_tokens=300"],
    ["miner.query_instruction_for_retrieval=query: ", "miner.passage_instruction_for_retrieval=passage: "],
])
def test_our_loop_matches_flagembedding(texts, overrides):
    passages, queries = texts
    cfg = compose_config([*overrides, "hardware.use_bf16=false"])  # FlagEmbedding runs fp32 on the CPU
    embedder = embed.load_embedder(cfg.miner, cfg.hardware)
    ours_p = embed.encode_passages(embedder, cfg.miner, cfg.hardware, passages)
    ours_q = embed.encode_queries(embedder, cfg.miner, cfg.hardware, queries)
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


def test_chunked_tokenization_gives_the_same_embeddings(texts, monkeypatch):
    passages, _ = texts
    cfg = compose_config(["hardware.use_bf16=false"])
    embedder = embed.load_embedder(cfg.miner, cfg.hardware)
    whole = embed.encode_passages(embedder, cfg.miner, cfg.hardware, passages)
    monkeypatch.setattr(embed, "TOKENIZE_CHUNK", 7)  # 40 texts: six chunks, the last one short
    chunked = embed.encode_passages(embedder, cfg.miner, cfg.hardware, passages)
    np.testing.assert_allclose(chunked, whole, atol=1e-5)


def test_instructions_change_the_embeddings(texts):
    passages, _ = texts
    plain = compose_config()
    prefixed = compose_config(["miner.passage_instruction_for_retrieval=passage: "])
    embedder = embed.load_embedder(plain.miner, plain.hardware)
    a = embed.encode_passages(embedder, plain.miner, plain.hardware, passages[:5])
    b = embed.encode_passages(embedder, prefixed.miner, prefixed.hardware, passages[:5])
    assert not np.allclose(a, b, atol=1e-3)
    assert embed.with_instruction(embedder, ["x"], "passage: ", "{}{}") == ["passage: x"]
    assert embed.with_instruction(embedder, ["x"], None, "{}{}") == ["x"]


@pytest.mark.parametrize("setting, devices, flags, expected", [
    (True, "cpu", set(), True),
    (False, "cpu", {"amx_bf16"}, False),
    ("auto", "cpu", {"avx512f", "amx_bf16", "amx_tile"}, True),
    ("auto", "cpu", {"avx512f", "avx512_bf16"}, True),
    ("auto", "cpu", {"avx2", "avx512f"}, False),
    ("auto", "cuda:0", {"amx_bf16"}, False),  # GPUs take use_fp16
])
def test_bf16_auto_follows_the_cpu_flags(setting, devices, flags, expected):
    from omegaconf import OmegaConf

    hardware = OmegaConf.create({"use_bf16": setting, "devices": devices, "use_fp16": False})
    assert runtime.use_bf16(hardware, flags) is expected


def test_bf16_auto_is_logged_with_its_reason(monkeypatch):
    from omegaconf import OmegaConf

    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx2"})
    hardware = OmegaConf.create({"use_bf16": "auto", "devices": "cpu", "use_fp16": False})
    assert runtime.describe_dtype(hardware) == "fp32 (hardware.use_bf16=auto: this CPU has neither AMX nor AVX512-BF16)"
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"amx_bf16"})
    assert runtime.describe_dtype(hardware) == "bf16 (hardware.use_bf16=auto: this CPU has amx_bf16)"


def test_bf16_and_fp32_neighbours_agree_on_the_sample():
    passages = [r["text"] for r in read_jsonl(SAMPLE_POOL)]
    queries = [r["query"] for r in read_jsonl(SAMPLE_TRAIN)]
    neighbours = {}
    for setting in ("false", "true"):
        cfg = compose_config([f"hardware.use_bf16={setting}"])
        embedder = embed.load_embedder(cfg.miner, cfg.hardware)
        p = embed.encode_passages(embedder, cfg.miner, cfg.hardware, passages)
        q = embed.encode_queries(embedder, cfg.miner, cfg.hardware, queries)
        neighbours[setting] = (np.argsort(-(q @ p.T), axis=1)[:, :20], q @ p.T)
    overlap = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(neighbours["false"][0], neighbours["true"][0])])
    assert overlap >= 0.95
    assert np.abs(neighbours["false"][1] - neighbours["true"][1]).mean() < 0.01


@pytest.mark.parametrize("model_class", ["encoder-only-base", "encoder-only-m3", "decoder-only-base",
                                         "decoder-only-icl"])
def test_every_embedder_class_mines_as_flagembedding_ranks(make_config, tmp_path, tiny_embedders, model_class):
    """Each FlagEmbedding class end to end on a tiny random model of its shape: the negatives mined are the
    best-ranked ones by FlagEmbedding's own embeddings (bge-m3's class returns a dict: its dense vectors)."""
    from FlagEmbedding import FlagAutoModel

    from prep.steps import mine
    from tests.conftest import write_jsonl

    rows = read_jsonl(SAMPLE_TRAIN)[:30]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    folder = tiny_embedders[model_class]
    summary = mine.run(make_config(f"input={data}", f"miner.model_name_or_path={folder}",
                                   f"miner.model_class={model_class}", "hardware.use_bf16=false",
                                   f"miner.pooling_method={'null' if 'decoder' in model_class else 'cls'}",
                                   "miner.range_for_sampling=0-12", "miner.negative_number=3",
                                   "miner.sampling_strategy=top", "miner.fill_random=false"))
    mined = read_jsonl(summary["output"])
    reference = FlagAutoModel.from_finetuned(str(folder), model_class=model_class, use_fp16=False, devices="cpu",
                                             query_instruction_format="{}{}", trust_remote_code=False)
    corpus = list(dict.fromkeys(p for r in rows for p in [*r["pos"], *r.get("neg", [])]))
    passages = embed.dense(reference.encode_corpus(corpus))
    queries = embed.dense(reference.encode_queries([r["query"] for r in rows]))
    for index, row in enumerate(mined):
        similarity = dict(zip(corpus, passages @ queries[index]))
        ranked = sorted(similarity, key=lambda t: -similarity[t])[:12]
        allowed = [t for t in ranked if t not in row["pos"] and t != row["query"]]
        assert len(row["neg"]) == min(3, len(allowed))
        third_best = similarity[allowed[len(row["neg"]) - 1]]
        assert all(similarity[t] >= third_best - 1e-4 for t in row["neg"]), (model_class, index)


@pytest.mark.parametrize("bf16", ["false", "true"])
def test_a_texts_embedding_depends_on_the_text_alone(texts, monkeypatch, bf16):
    """Texts of mixed lengths encoded all together, one by one, and in another order with a chunk boundary inside:
    the same bytes in fp32 and in bf16 (forced, so it runs on every CPU). Length-sorted passes (FlagEmbedding's
    way) fail the same comparison, so the test can tell."""
    passages, queries = texts
    mixed = passages[:24] + queries[:24]
    cfg = compose_config([f"hardware.use_bf16={bf16}", "miner.batch_size=8"])
    embedder = embed.load_embedder(cfg.miner, cfg.hardware)

    def encoded(items):
        return embed.encode_passages(embedder, cfg.miner, cfg.hardware, items)

    together = encoded(mixed)
    alone = np.concatenate([encoded([text]) for text in mixed])
    monkeypatch.setattr(embed, "TOKENIZE_CHUNK", 5)
    reordered = encoded(mixed[::-1])[::-1]
    assert together.tobytes() == alone.tobytes() == reordered.tobytes()
    monkeypatch.setattr(embed, "plan_passes", batching.sorted_passes)
    assert encoded(mixed).tobytes() != np.concatenate([encoded([text]) for text in mixed]).tobytes()


def test_reproducible_says_what_was_measured_and_why_not():
    """True on our loop on a CPU; false, with the reason, for a class that runs FlagEmbedding's own loop; null on a
    GPU in any dtype, where exact passes are not measured yet."""
    cpu = compose_config(["hardware.use_bf16=true"])
    assert embed.reproducibility(cpu.miner, cpu.hardware) == {"dtype": "bf16", "across_batches": True}
    m3 = compose_config(["hardware.use_bf16=false", "miner.model_class=encoder-only-m3"])
    found = embed.reproducibility(m3.miner, m3.hardware)
    assert found["across_batches"] is False and "FlagEmbedding's own loop" in found["why"]
    for overrides in (["hardware=gpu"], ["hardware=gpu", "hardware.use_fp16=false"]):
        gpu = compose_config(overrides)
        assert embed.reproducibility(gpu.miner, gpu.hardware)["across_batches"] is None
