"""``step=encode``: shards fill the cache in chunks, an interrupted encode resumes, mine then encodes nothing."""

import numpy as np
import pytest

from prep import contract
from prep.cache.embeddings import CachedEncoder
from prep.errors import UsageError
from prep.models import embedder
from prep.steps import encode, mine
from tests.conftest import run_cli


@pytest.fixture
def make_config(make_config):
    """Chunks of 50 passages: the bundled pool of 234 passages is five chunks."""
    return lambda *overrides: make_config("encode_chunk=50", *overrides)


def test_shards_fill_the_cache_and_mine_encodes_no_passage(make_config, tmp_path):
    summaries = [encode.run(make_config("step=encode", f"shard.index={i}", "shard.count=2",
                                        f"run_dir={tmp_path / f'shard{i}'}")) for i in range(2)]
    assert [s["shard"]["chunks"] for s in summaries] == [[0, 2, 4], [1, 3]]
    assert [s["chunks_encoded"] for s in summaries] == [3, 2]
    assert sum(s["encoded"]["passages"] for s in summaries) == 234
    mined = mine.run(make_config(f"output={tmp_path / 'after-shards.jsonl'}"))
    assert mined["encoded"]["passages"] == 0
    # the same negatives as a run that encoded everything itself
    fresh = mine.run(make_config(f"output={tmp_path / 'fresh.jsonl'}", f"cache_dir={tmp_path / 'other-cache'}"))
    assert fresh["encoded"]["passages"] == 234
    assert (tmp_path / "after-shards.jsonl").read_bytes() == (tmp_path / "fresh.jsonl").read_bytes()


def test_an_interrupted_encode_resumes_at_the_first_missing_chunk(make_config, monkeypatch, tmp_path):
    calls = []
    real = embedder.encode_passages

    def dies_on_the_third_chunk(*args):
        calls.append(len(args[3]))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(embedder, "encode_passages", dies_on_the_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        encode.run(make_config("step=encode", f"run_dir={tmp_path / 'first'}"))
    monkeypatch.setattr(embedder, "encode_passages", real)
    resumed = encode.run(make_config("step=encode", f"run_dir={tmp_path / 'second'}"))
    assert (resumed["chunks_cached"], resumed["chunks_encoded"]) == (2, 3)
    assert contract.summary_mismatches(resumed) == []
    assert resumed["encoded"]["passages"] == 234 - 100
    # resumed chunks give the embeddings of an uninterrupted encode
    cfg = make_config()
    from prep.cache.store import Cache
    from prep.io.paths import SAMPLE_POOL
    from prep.io.pool import open_pool
    from prep.timing import PhaseTimer

    with open_pool([], SAMPLE_POOL, tmp_path) as pool:
        corpus = pool.texts()
    cached = CachedEncoder(cfg.miner, cfg.hardware, Cache(cfg.cache_dir), PhaseTimer(),
                                 chunk_size=50).passages(corpus)
    whole = CachedEncoder(cfg.miner, cfg.hardware, Cache(None), PhaseTimer(), chunk_size=50).passages(corpus)
    np.testing.assert_array_equal(cached, whole)


@pytest.mark.parametrize("overrides, message", [(["shard.index=2", "shard.count=2"], "shard.index=2"),
                                                (["shard.count=0"], "shard.count"),
                                                (["cache=false"], "cache=false")])
def test_bad_shard_settings(make_config, overrides, message):
    with pytest.raises(UsageError, match=message):
        encode.run(make_config("step=encode", *overrides))


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["prep_joblib", "prep_submitit_local", "prep_ray"])
def test_multirun_over_shards_through_a_launcher(tmp_path, launcher):
    if launcher == "prep_ray":  # the `ray` extra is not installed by `make install`
        pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="the ray extra is not installed")
    result = run_cli("-m", "step=encode", "shard.index=0,1", "shard.count=2", "encode_chunk=50",
                     f"cache_dir={tmp_path / 'cache'}",
                     f"hydra/launcher={launcher}", f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    import json

    summaries = [json.loads((tmp_path / "sweep" / str(i) / "summary.json").read_text()) for i in range(2)]
    assert sorted(s["shard"]["index"] for s in summaries) == [0, 1]
    assert sorted(s["chunks_encoded"] for s in summaries) == [2, 3]
    assert sum(s["encoded"]["passages"] for s in summaries) == 234
