"""Exact inner-product search with faiss, in batches of queries, with a progress bar."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)
logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # it logs every library variant it tries


def _gpu_index(index):
    import faiss

    if not hasattr(faiss, "index_cpu_to_all_gpus") or faiss.get_num_gpus() == 0:
        log.warning("use_gpu_for_searching=true, but this faiss has no GPU support or sees no GPU: "
                    "searching on the CPU")
        return index
    options = faiss.GpuMultipleClonerOptions()
    options.shard = True
    options.useFloat16 = True
    return faiss.index_cpu_to_all_gpus(index, co=options)


def _torch_search(passages: np.ndarray, queries: np.ndarray, top_k: int, batch_size: int):
    """Exact search as one matrix product and ``torch.topk`` per batch of queries.

    On this CPU it ran 10,000 queries over 60,835 passages in 4.7 s, against faiss's 12.5 s: faiss
    keeps a heap per query, which is slow for the deep windows (k = 200) mining uses.
    """
    import torch
    from tqdm import tqdm

    matrix = torch.from_numpy(np.ascontiguousarray(passages, dtype=np.float32))
    similarities = np.empty((len(queries), top_k), dtype=np.float32)
    ids = np.empty((len(queries), top_k), dtype=np.int64)
    with torch.inference_mode(), tqdm(total=len(queries), desc="search", unit="query") as progress:
        for start in range(0, len(queries), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(queries[start:start + batch_size], dtype=np.float32))
            values, indices = torch.topk(batch @ matrix.T, top_k, dim=1)
            similarities[start:start + len(batch)] = values.numpy()
            ids[start:start + len(batch)] = indices.numpy()
            progress.update(len(batch))
    return similarities, ids


def search(
    passages: np.ndarray,
    queries: np.ndarray,
    top_k: int,
    *,
    batch_size: int = 1024,
    use_gpu: bool = False,
    backend: str = "faiss",
) -> tuple[np.ndarray, np.ndarray]:
    """The ``top_k`` passages of each query by inner product: (similarities, passage ids), best first.

    ``top_k`` must not exceed the number of passages (the caller clamps it). ``backend``: ``faiss``
    (IndexFlatIP, the default) or ``torch`` (matrix product and top-k; same neighbours up to ties).
    """
    if backend == "torch":
        return _torch_search(passages, queries, top_k, batch_size)
    if backend != "faiss":
        from prep.errors import UsageError

        raise UsageError(f"miner.search_backend: '{backend}' is not faiss or torch")
    import faiss
    from tqdm import tqdm

    index = faiss.IndexFlatIP(passages.shape[1])
    index.add(np.ascontiguousarray(passages, dtype=np.float32))
    if use_gpu:
        index = _gpu_index(index)
    similarities = np.empty((len(queries), top_k), dtype=np.float32)
    ids = np.empty((len(queries), top_k), dtype=np.int64)
    with tqdm(total=len(queries), desc="search", unit="query") as progress:
        for start in range(0, len(queries), batch_size):
            batch = np.ascontiguousarray(queries[start:start + batch_size], dtype=np.float32)
            similarities[start:start + len(batch)], ids[start:start + len(batch)] = index.search(batch, top_k)
            progress.update(len(batch))
    return similarities, ids
