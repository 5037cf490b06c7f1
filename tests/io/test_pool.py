"""Bounded memory: the pool's texts in an Arrow file, its embeddings chunk by chunk from disk."""

import json

import numpy as np
import pytest

from prep.cache import embeddings
from prep.cache.store import Cache
from prep.io.paths import SAMPLE_POOL
from prep.io.pool import PassagePool, open_pool
from prep.retrieval.search import search
from prep.steps import mine
from prep.timing import PhaseTimer


def test_pool_file_duplicates_keep_their_first_id(tmp_path):
    texts = ["alpha", "beta", "alpha", "", "gamma", "beta", "é ü"]
    with PassagePool.build(iter(texts), tmp_path) as pool:
        assert len(pool) == 5
        assert pool.texts() == ["alpha", "beta", "", "gamma", "é ü"]
        assert pool.texts(1, 3) == ["beta", ""]
        assert list(pool.iter_texts(batch=2)) == pool.texts()
        assert [pool.id_of(t) for t in ["gamma", "", "é ü", "alph"]] == [3, 2, 4, None]
    with PassagePool.build(iter([]), tmp_path) as empty:
        assert len(empty) == 0 and empty.texts() == [] and empty.id_of("x") is None


@pytest.mark.parametrize("cached", [True, False], ids=["cache", "cache=false: spilled to .npy"])
def test_pool_embeddings_read_chunk_by_chunk_equal_the_whole_array(make_config, tmp_path, cached):
    cfg = make_config("hardware.use_bf16=false")
    cache = Cache(tmp_path / "cache", enabled=cached)
    encoder = embeddings.CachedEncoder(cfg.miner, cfg.hardware, cache, PhaseTimer(), chunk_size=50)
    with open_pool([], SAMPLE_POOL, tmp_path / "work") as pool:
        stored = encoder.pool_embeddings(pool, tmp_path / "spill")
        whole = embeddings.CachedEncoder(cfg.miner, cfg.hardware, Cache(None), PhaseTimer()).passages(pool.texts())
    assert len(stored) == len(whole) == 234
    assert [len(piece) for _, piece in stored.pieces()] == [50, 50, 50, 50, 34]
    np.testing.assert_allclose(stored.to_array(), whole, atol=1e-6)
    ids = [233, 0, 51, 50, 49, 120, 0]
    np.testing.assert_array_equal(stored.rows(ids), stored.to_array()[ids])
    queries = whole[[3, 100, 200]] + 0.01
    for backend in ("torch", "faiss"):
        from_disk = search(stored, queries, 40, batch_size=2, backend=backend)
        in_memory = search(stored.to_array(), queries, 40, batch_size=2, backend=backend)
        np.testing.assert_array_equal(from_disk[1], in_memory[1])
    assert (tmp_path / "spill").exists() != cached


def test_exact_mining_never_holds_the_pool_in_one_array(make_config, monkeypatch, tmp_path):
    def refuse(self):
        raise AssertionError("the flat index read every chunk into one array")

    monkeypatch.setattr(embeddings.PoolEmbeddings, "to_array", refuse)
    summary = mine.run(make_config("encode_chunk=50", "miner.negative_number=5", "miner.range_for_sampling=2-60",
                                   f"output={tmp_path / 'mined.jsonl'}"))
    assert summary["rows"] == 170 and summary["negatives"]["min"] == 5
    # the run folder keeps no Arrow file or spilled chunk once the run is over
    assert not [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("damage", ["truncated", "removed", "array missing"])
def test_a_chunk_damaged_before_or_during_the_run_is_rebuilt_in_that_run(make_config, monkeypatch, tmp_path, caplog,
                                                                         damage):
    """Every chunk but the first is only checked for existence until the search reads it: one damaged in the
    meantime (or before the run, past the first) is encoded again there, and the output does not change."""
    common = ["encode_chunk=50", "miner.range_for_sampling=2-30"]
    first = mine.run(make_config(*common, f"output={tmp_path / 'first.jsonl'}"))
    real = embeddings.CachedEncoder.pool_embeddings

    def then_damage(self, pool, spill_dir):
        stored = real(self, pool, spill_dir)
        for entry in sorted((tmp_path / "cache" / "embeddings").rglob("*.npz"))[:3]:
            if damage == "truncated":
                entry.write_bytes(entry.read_bytes()[:100])
            elif damage == "removed":
                entry.unlink()
            else:
                np.savez(entry, other=np.zeros(2))
        return stored

    monkeypatch.setattr(embeddings.CachedEncoder, "pool_embeddings", then_damage)
    again = mine.run(make_config(*common, f"output={tmp_path / 'again.jsonl'}"))
    assert (tmp_path / "first.jsonl").read_bytes() == (tmp_path / "again.jsonl").read_bytes()
    assert 0 < again["encoded"]["passages"] <= 150 and first["encoded"]["passages"] == 234
    assert "encoding it again" in caplog.text


def test_cached_and_uncached_runs_write_the_same_bytes(make_config, tmp_path):
    outputs = []
    for name, extra in (("cached", []), ("uncached", ["cache=false"])):
        summary = mine.run(make_config("encode_chunk=50", f"output={tmp_path / name}.jsonl", *extra))
        outputs.append((tmp_path / f"{name}.jsonl").read_bytes())
        assert summary["encoded"]["passages"] == 234
    assert outputs[0] == outputs[1]
    assert all(len(json.loads(line)["neg"]) == 15 for line in outputs[0].splitlines())
