"""faiss and the torch path find the same neighbours."""

import numpy as np
import pytest

from prep.errors import UsageError
from prep.retrieval.search import search


def test_torch_and_faiss_agree():
    rng = np.random.default_rng(0)
    passages = rng.standard_normal((500, 16)).astype(np.float32)
    queries = rng.standard_normal((37, 16)).astype(np.float32)
    faiss_sims, faiss_ids = search(passages, queries, 50, batch_size=8)
    torch_sims, torch_ids = search(passages, queries, 50, batch_size=8, backend="torch")
    np.testing.assert_array_equal(faiss_ids, torch_ids)
    np.testing.assert_allclose(faiss_sims, torch_sims, atol=1e-5)
    expected = np.argsort(-(queries @ passages.T), axis=1, kind="stable")[:, :50]
    np.testing.assert_array_equal(torch_ids, expected)


def test_torch_pieces_merge_to_the_exact_top_k():
    from prep.retrieval.search import _torch_search

    rng = np.random.default_rng(1)
    passages = rng.standard_normal((300, 8)).astype(np.float32)
    queries = rng.standard_normal((20, 8)).astype(np.float32)
    # two "devices" taking turns and pieces of 64 rows: five partial top-ks merged per batch
    sims, ids = _torch_search(passages, queries, 90, 7, ["cpu", "cpu"], piece_rows=64)
    expected = np.argsort(-(queries @ passages.T), axis=1, kind="stable")[:, :90]
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(sims, np.take_along_axis(queries @ passages.T, expected, 1), atol=1e-5)


@pytest.mark.parametrize("backend, use_gpu, top_k, expected", [
    ("auto", False, 200, "torch"), ("faiss", False, 200, "faiss"), ("torch", True, 5000, "torch"),
    ("faiss", True, 5000, "torch"),  # past faiss's GPU limit of 2,048: torch, with a warning
    ("auto", True, 200, "torch"),  # faiss-cpu sees no GPU
])
def test_backend_choice(backend, use_gpu, top_k, expected, caplog):
    from prep.retrieval.search import resolve_backend

    assert resolve_backend(backend, use_gpu, top_k) == expected
    assert ("at most 2048" in caplog.text) == (backend == "faiss" and top_k > 2048)


def test_unknown_backend():
    with pytest.raises(UsageError, match="search_backend"):
        search(np.zeros((3, 2), np.float32), np.zeros((1, 2), np.float32), 2, backend="annoy")


def test_mine_with_either_backend_gives_the_same_file(make_config, tmp_path):
    from prep.steps import mine

    for backend in ("faiss", "torch"):
        mine.run(make_config(f"output={tmp_path / backend}.jsonl", f"miner.search_backend={backend}",
                             "miner.range_for_sampling=2-60", "cache=false"))
    assert (tmp_path / "faiss.jsonl").read_bytes() == (tmp_path / "torch.jsonl").read_bytes()


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes_find_most_exact_neighbours_and_report_recall(kind):
    from prep.retrieval.search import IndexSettings, approximate_search, recall_at_k

    rng = np.random.default_rng(3)
    centres = rng.standard_normal((20, 16)).astype(np.float32)
    passages = (centres[rng.integers(0, 20, 2000)] + 0.3 * rng.standard_normal((2000, 16))).astype(np.float32)
    queries = (centres[rng.integers(0, 20, 100)] + 0.3 * rng.standard_normal((100, 16))).astype(np.float32)
    _, ids, settings = approximate_search(passages, queries, 20, IndexSettings(kind, 16, 16, 16, 64), seed=0)
    assert settings["kind"] == kind
    report = recall_at_k(ids, passages, queries, 50, seed=0)
    assert report["queries"] == 50 and report["k"] == 20
    assert report["recall_at_k"] >= 0.95  # every cell searched (ivf) / a wide beam (hnsw)
    # one probed cell of 16 misses neighbours: the report must show it
    _, few, _ = approximate_search(passages, queries, 20, IndexSettings("ivf", 16, 1, 16, 64), seed=0)
    assert recall_at_k(few, passages, queries, 50, seed=0)["recall_at_k"] < report["recall_at_k"]


def test_recall_of_exact_results_is_one():
    from prep.retrieval.search import recall_at_k

    rng = np.random.default_rng(4)
    passages = rng.standard_normal((300, 8)).astype(np.float32)
    queries = rng.standard_normal((30, 8)).astype(np.float32)
    _, ids = search(passages, queries, 10, backend="faiss")  # exact, and not the path recall_at_k compares with
    assert recall_at_k(ids, passages, queries, 30, seed=1) == {"queries": 30, "k": 10, "recall_at_k": 1.0, "min": 1.0}


def test_mine_with_ivf_reports_recall_and_is_reproducible(make_config, tmp_path):
    from prep.steps import mine

    summaries = [mine.run(make_config(f"output={tmp_path / name}.jsonl", "miner.index=ivf", "miner.index_nlist=8",
                                      "miner.index_nprobe=2", "miner.range_for_sampling=2-60", "cache=false"))
                 for name in ("a", "b")]
    index = summaries[0]["index"]
    assert index["kind"] == "ivf" and index["nlist"] == 8 and not index["exact"]
    assert 0 < index["recall"]["recall_at_k"] < 1 and index["recall"]["queries"] == 170
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_ties_are_ordered_by_id_so_every_depth_is_a_prefix_of_a_deeper_one():
    """Passages identical after truncation have identical embeddings: their similarities tie exactly. Integer
    embeddings make every similarity exact, so ties are exact whatever the kernel."""
    rng = np.random.default_rng(5)
    distinct = rng.integers(-3, 4, (40, 8)).astype(np.float32)
    passages = distinct[rng.integers(0, 40, 300)]  # about seven copies of each
    queries = rng.integers(-3, 4, (25, 8)).astype(np.float32)
    exact = queries @ passages.T
    expected = np.lexsort((np.broadcast_to(np.arange(300), exact.shape), -exact), axis=1)
    results = {}
    for depth in (10, 32):
        for batch, piece in ((25, 300), (4, 37)):
            from prep.retrieval.search import _torch_search

            similarities, ids = _torch_search(passages, queries, depth, batch, ["cpu"], piece_rows=piece)
            np.testing.assert_array_equal(ids, expected[:, :depth])
            np.testing.assert_array_equal(similarities, np.take_along_axis(exact, ids, 1))
            results[(depth, batch)] = ids
    np.testing.assert_array_equal(results[(32, 4)][:, :10], results[(10, 25)])


def test_a_window_from_a_cached_deeper_search_equals_a_cold_run_with_tied_passages(make_config, tmp_path):
    """Passages that differ only past passage_max_length have the same embedding; mining 0-10 from the cached
    0-32 search must pick what a cold 0-10 run picks, in the same order."""
    from prep.steps import mine
    from tests.conftest import write_jsonl

    rows = [{"query": f"topic {i} question", "pos": [f"topic {i} answer"]} for i in range(12)]
    pool = [{"text": f"shared opening words about topics {' filler' * 8} variant {v}"} for v in range(20)]
    pool += [{"text": f"topic {i} passage {j}"} for i in range(12) for j in range(3)]
    data, pool_path = write_jsonl(tmp_path / "train.jsonl", rows), write_jsonl(tmp_path / "pool.jsonl", pool)
    common = [f"input={data}", f"miner.candidate_pool={pool_path}", "miner.passage_max_length=8",
              "miner.negative_number=6", "miner.sampling_strategy=top", "miner.fill_random=false"]
    mine.run(make_config(*common, "miner.range_for_sampling=0-32", f"output={tmp_path / 'deep.jsonl'}"))
    warm = mine.run(make_config(*common, "miner.range_for_sampling=0-10", f"output={tmp_path / 'warm.jsonl'}"))
    cold = mine.run(make_config(*common, "miner.range_for_sampling=0-10", f"output={tmp_path / 'cold.jsonl'}",
                                f"cache_dir={tmp_path / 'cold-cache'}"))
    assert warm["seconds"]["search"] == 0 and cold["seconds"]["search"] > 0
    assert (tmp_path / "warm.jsonl").read_bytes() == (tmp_path / "cold.jsonl").read_bytes()
