"""faiss and the torch path find the same neighbours."""

import numpy as np
import pytest

from prep.errors import UsageError
from prep.index import search


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


def test_unknown_backend():
    with pytest.raises(UsageError, match="search_backend"):
        search(np.zeros((3, 2), np.float32), np.zeros((1, 2), np.float32), 2, backend="annoy")


def test_mine_with_either_backend_gives_the_same_file(make_config, tmp_path):
    from prep import mine

    for backend in ("faiss", "torch"):
        mine.run(make_config(f"output={tmp_path / backend}.jsonl", f"miner.search_backend={backend}",
                             "miner.range_for_sampling=2-60", "cache=false"))
    assert (tmp_path / "faiss.jsonl").read_bytes() == (tmp_path / "torch.jsonl").read_bytes()
