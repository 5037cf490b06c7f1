"""Cache keys, hits and misses, and entries that are corrupt or half-written."""

import numpy as np
import pytest

from prep import embed, mine
from prep.cache import Cache, fingerprint, model_fingerprint, pair_key, texts_fingerprint
from prep.timing import PhaseTimer
from tests.conftest import compose_config


def test_texts_fingerprint_depends_on_every_text_and_the_order():
    base = texts_fingerprint(["a", "b"])
    assert base == texts_fingerprint(["a", "b"])
    for other in (["b", "a"], ["a", "b", ""], ["ab"], ["a", "c"]):
        assert texts_fingerprint(other) != base
    assert pair_key("ab", "c") != pair_key("a", "bc")


def test_model_fingerprint_reads_the_files_not_the_name(tmp_path):
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text('{"layers": 2}')
    assert model_fingerprint(str(tmp_path / "one")) == model_fingerprint(str(tmp_path / "two"))
    (tmp_path / "three").mkdir()
    (tmp_path / "three" / "config.json").write_text('{"layers": 3}')
    assert model_fingerprint(str(tmp_path / "three")) != model_fingerprint(str(tmp_path / "one"))


KEY_CHANGES = [
    "miner.model_class=encoder-only-m3", "miner.pooling_method=cls", "miner.normalize_embeddings=false",
    "miner.passage_max_length=128", "miner.query_instruction_for_retrieval=Q: ",
    "miner.passage_instruction_for_retrieval=P: ", "cache_dtype=float16",
]


@pytest.mark.parametrize("change", KEY_CHANGES)
def test_each_input_of_the_embedding_key_changes_it(change):
    def key(*overrides):
        cfg = compose_config(list(overrides))
        encoder = embed.CachedEncoder(cfg.miner, cfg.hardware, Cache(None), PhaseTimer(), cfg.cache_dtype)
        return encoder.key("passages", ["a passage"])

    assert key() == key()
    assert key(change) != key()
    # the dtype too (the default, auto, depends on the CPU, so both are named)
    assert key("hardware.use_bf16=true") != key("hardware.use_bf16=false")


def test_batch_size_does_not_change_the_key():
    def key(*overrides):
        cfg = compose_config(list(overrides))
        return fingerprint(embed.embedder_identity(cfg.miner, cfg.hardware))

    assert key("miner.batch_size=8") == key("miner.batch_size=128")


def test_entries_round_trip_and_corrupt_ones_are_rebuilt(tmp_path, caplog):
    cache = Cache(tmp_path)
    assert cache.get("embeddings", "abcd") is None
    cache.put("embeddings", "abcd", {"embeddings": np.arange(6, dtype=np.float32).reshape(2, 3)})
    np.testing.assert_array_equal(cache.get("embeddings", "abcd")["embeddings"], [[0, 1, 2], [3, 4, 5]])
    assert (cache.hits, cache.misses) == (1, 1)
    entry = tmp_path / "embeddings" / "ab" / "abcd.npz"
    entry.write_bytes(entry.read_bytes()[:40])  # a truncated entry
    assert cache.get("embeddings", "abcd") is None
    assert "does not load" in caplog.text and not entry.exists()
    # a write killed before its rename leaves only a temporary file, which is never read
    (entry.parent / ".abcd.123.tmp").write_bytes(b"half")
    assert cache.get("embeddings", "abcd") is None


def test_disabled_cache_stores_nothing(tmp_path):
    cache = Cache(tmp_path, enabled=False)
    cache.put("embeddings", "abcd", {"x": np.zeros(1)})
    cache.add_scores("t", [b"0" * 16], [1.0])
    assert cache.get("embeddings", "abcd") is None and cache.load_scores("t") == {}
    assert not any(tmp_path.iterdir())


def test_search_results_of_a_deeper_search_serve_a_shallower_one(tmp_path):
    cache = Cache(tmp_path)
    similarities = np.array([[0.9, 0.5, 0.1]], dtype=np.float32)
    ids = np.array([[4, 2, 7]])
    cache.put_search("k", similarities, ids)
    found = cache.get_search("k", 2)
    np.testing.assert_array_equal(found[1], [[4, 2]])
    assert cache.get_search("k", 4) is None


def test_score_shards_survive_a_corrupt_neighbour(tmp_path):
    cache = Cache(tmp_path)
    cache.add_scores("teacher", [pair_key("q", "p")], [0.25])
    (tmp_path / "scores" / "teacher" / "broken.npz").write_bytes(b"not a zip")
    assert cache.load_scores("teacher") == {pair_key("q", "p"): 0.25}


def test_a_repeated_mine_run_encodes_nothing_and_gives_the_same_bytes(make_config, tmp_path):
    first = mine.run(make_config(f"output={tmp_path / 'a.jsonl'}"))
    second = mine.run(make_config(f"output={tmp_path / 'b.jsonl'}"))
    assert first["encoded"]["passages"] == 234 and first["cache"]["misses"] == 3
    assert second["encoded"] == {"queries": 0, "passages": 0} and second["cache"]["hits"] == 3
    assert second["seconds"]["encode"] == 0
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    smaller = mine.run(make_config(f"output={tmp_path / 'c.jsonl'}", "miner.range_for_sampling=2-50"))
    assert smaller["cache"]["misses"] == 0 and smaller["seconds"]["search"] == 0
