"""Inner-product search in batches of queries, with a progress bar: exact (torch or faiss) or approximate
(faiss IVF or HNSW, with its recall against exact search measured on a sample of queries)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from prep.errors import UsageError
from prep.models.batching import whole_rows
from prep.progress import progress as progress_bar

if TYPE_CHECKING:
    from prep.config.schema import MinerConfig

log = logging.getLogger(__name__)


def _faiss():
    """faiss, imported when a search needs it; its loader logs every library variant it tries, so it is quietened."""
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    import faiss

    return faiss


def _gpu_index(index):
    faiss = _faiss()

    if not hasattr(faiss, "index_cpu_to_all_gpus") or faiss.get_num_gpus() == 0:
        log.warning("use_gpu_for_searching=true, but this faiss has no GPU support or sees no GPU: "
                    "searching on the CPU")
        return index
    options = faiss.GpuMultipleClonerOptions()
    options.shard = True
    options.useFloat16 = True
    return faiss.index_cpu_to_all_gpus(index, co=options)


FAISS_GPU_MAX_K = 2048  # faiss's GPU indexes return at most this many neighbours per query


def torch_devices(use_gpu: bool) -> list[str]:
    """Where the torch search runs: every visible GPU when asked and present, else the CPU."""
    if use_gpu:
        import torch

        if torch.cuda.is_available():
            return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        log.warning("use_gpu_for_searching=true, but torch sees no GPU: searching on the CPU")
    return ["cpu"]


PIECE_ROWS = 1 << 15  # passages per matrix product when the pool is one array: a 1024-query batch's scores are 128 MiB
GPU_PIECE_ROWS = 1 << 18  # on a GPU (fp16): 512 MiB of scores, and fewer, larger products


def _pieces(passages, piece_rows: int):
    """``(first id, float32 array)`` over the pool: its own chunks (embeddings on disk) or slices of an array."""
    if hasattr(passages, "pieces"):
        yield from passages.pieces()
        return
    for start in range(0, len(passages), piece_rows):
        yield start, np.asarray(passages[start:start + piece_rows], dtype=np.float32)


def canonical_topk(scores, depth: int):
    """The ``depth`` best columns of each row of ``scores`` (a torch matrix), by score descending, then column
    ascending; of the columns tied at the cut, the lowest.

    ``torch.topk`` alone picks and orders tied columns as its kernel happens to, so the top 10 would not be the
    first 10 of the top 32, and a window served from a deeper cached search would pick other negatives than
    a fresh one (passages identical after truncation tie exactly). With this order every depth is a prefix of
    every deeper one. One more column than asked for shows where the cut splits a tie (the next best equals the
    last kept): those rows (rare) are completed by hand; a full comparison pass over ``scores`` would cost more
    than the top-k itself.
    """
    import torch

    values, indices = torch.topk(scores, min(depth + 1, scores.shape[1]), dim=1)
    split_ties = []
    if values.shape[1] > depth:
        split_ties = torch.nonzero(values[:, depth] == values[:, depth - 1]).flatten().tolist()
        values, indices = values[:, :depth].contiguous(), indices[:, :depth].contiguous()
    cut = values[:, -1:]
    for row in split_ties:
        above = torch.nonzero(scores[row] > cut[row]).flatten()
        tied = torch.nonzero(scores[row] == cut[row]).flatten()[: depth - len(above)]
        indices[row] = torch.cat([above, tied])
        values[row] = scores[row, indices[row]]
    by_index = torch.argsort(indices, dim=1)
    values, indices = values.gather(1, by_index), indices.gather(1, by_index)
    by_value = torch.sort(values, dim=1, descending=True, stable=True).indices
    return values.gather(1, by_value), indices.gather(1, by_value)


def _torch_search(passages, queries: np.ndarray, top_k: int, batch_size: int, devices: list[str],
                  piece_rows: int = PIECE_ROWS):
    """Exact search as matrix products and top-k (``canonical_topk``), reading the pool once, piece by piece.

    ``passages`` is an array or chunked embeddings on disk (``cache.embeddings.PoolEmbeddings``). Each piece is
    scored against every query batch and its top-k merged into a running top-k per query, so memory
    holds one piece, one batch's scores and the results, whatever the pool's size. Pieces take turns
    on ``devices`` (fp16 on a GPU, fp32 on the CPU). Neither faiss's GPU limit of 2,048 neighbours nor
    its per-query heap applies: on this CPU it ran 10,000 queries over 60,835 passages at k = 200 in
    about 5 s, faiss ``IndexFlatIP`` in batches of 64 in 29 s (docs/benchmarks.md). (``piece_rows`` is there for
    tests, hence six parameters.)
    """
    import torch

    # The running top-k lives on the first device (a GPU's results are merged there, not on the host), and each
    # device gets the queries once, in its dtype; a GPU takes pieces of an array 8 times as large.
    home = devices[0]
    batch_size = search_rows(batch_size)
    if home != "cpu" and not hasattr(passages, "pieces"):
        piece_rows = max(piece_rows, GPU_PIECE_ROWS)
    query_matrix = torch.from_numpy(full_batches(queries, batch_size))
    on_device: dict[str, Any] = {}
    best_values = torch.full((len(query_matrix), top_k), -torch.inf, device=home)
    best_ids = torch.full((len(query_matrix), top_k), -1, dtype=torch.int64, device=home)
    with torch.inference_mode(), progress_bar(total=len(passages), desc="search", unit="passage") as progress:
        for number, (first, piece) in enumerate(_pieces(passages, piece_rows)):
            device = devices[number % len(devices)]
            dtype = torch.float32 if device == "cpu" else torch.float16
            if device not in on_device:
                on_device[device] = query_matrix.to(device=device, dtype=dtype)
            matrix = torch.from_numpy(np.ascontiguousarray(piece)).to(device=device, dtype=dtype)
            depth = min(top_k, matrix.shape[0])
            for start in range(0, len(query_matrix), batch_size):
                stop = start + batch_size
                scores = on_device[device][start:stop] @ matrix.T
                values, indices = canonical_topk(scores, depth)
                # Earlier pieces hold lower ids, so a stable sort of [best so far, this piece] keeps ties by id.
                values = torch.cat([best_values[start:stop], values.float().to(home)], 1)
                indices = torch.cat([best_ids[start:stop], indices.to(home) + first], 1)
                order = torch.sort(values, dim=1, descending=True, stable=True).indices[:, :top_k]
                best_values[start:stop], best_ids[start:stop] = values.gather(1, order), indices.gather(1, order)
            progress.update(len(piece))
            del matrix, piece
    return best_values[:len(queries)].cpu().numpy(), best_ids[:len(queries)].cpu().numpy()


def search_rows(batch_size: int) -> int:
    """Queries per search batch: ``miner.search_batch_size`` rounded up to a whole number of kernel rows."""
    return whole_rows(batch_size)


def full_batches(queries: np.ndarray, batch_size: int) -> np.ndarray:
    """``queries`` as float32 rows, with zero rows added up to a whole number of batches.

    A matrix product's kernel picks its code path by the number of rows: on this CPU, a query searched in a
    batch of 1, 2, 3 or 7 rows gets similarities up to 2e-7 away from the same query in a batch of 1,024, enough
    to move a rank window's edge. Every batch has ``batch_size`` rows (a multiple of ``batching.ROW_MULTIPLE``,
    see ``search_rows``), so a query's similarities do not depend on the block or shard it came in (the added
    rows' results are dropped).
    """
    count = -(-len(queries) // batch_size) * batch_size
    padded = np.zeros((count, queries.shape[1] if queries.ndim == 2 else 0), dtype=np.float32)
    padded[:len(queries)] = queries
    return padded


def resolve_backend(backend: str, use_gpu: bool, top_k: int) -> str:
    """``auto`` picks torch, except faiss on GPUs where faiss-gpu is installed and ``top_k`` fits its limit.

    On the CPU faiss keeps a heap per query, which dominates at mining's deep windows (k = 200), so
    the matrix product and ``torch.topk`` win (docs/mining.md).
    """
    if backend not in ("auto", "faiss", "torch"):
        raise UsageError(f"miner.search_backend: '{backend}' is not auto, faiss or torch")
    if use_gpu and backend != "torch" and top_k > FAISS_GPU_MAX_K:
        if backend == "faiss":
            log.warning("faiss on a GPU returns at most %d neighbours; searching the top %d with torch instead",
                        FAISS_GPU_MAX_K, top_k)
        return "torch"
    if backend != "auto":
        return backend
    return "faiss" if use_gpu and _faiss_gpus() > 0 else "torch"


def _faiss_gpus() -> int:
    faiss = _faiss()

    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


def search(
    passages,
    queries: np.ndarray,
    top_k: int,
    *,
    batch_size: int = 1024,
    use_gpu: bool = False,
    backend: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """The ``top_k`` passages of each query by inner product: (similarities, passage ids), best first.

    ``passages``: an array, or a pool's chunked embeddings on disk (``cache.embeddings.PoolEmbeddings``), which the
    torch backend reads piece by piece; faiss needs them in one array. ``top_k`` must not exceed the
    number of passages (the caller clamps it). ``backend``: ``auto``
    (see ``resolve_backend``), ``torch`` (matrix product and top-k) or ``faiss`` (IndexFlatIP); all
    are exact and give the same neighbours up to ties. (The options are keyword-only, with defaults.)
    """
    backend = resolve_backend(backend, use_gpu, top_k)
    if backend == "torch":
        return _torch_search(passages, queries, top_k, batch_size, torch_devices(use_gpu))
    faiss = _faiss()

    index = faiss.IndexFlatIP(passages.shape[1])
    index.add(_as_array(passages))
    if use_gpu:
        index = _gpu_index(index)
    return _faiss_search(index, queries, top_k, batch_size, "search")


def _as_array(passages) -> np.ndarray:
    """The pool as one float32 array, as faiss takes it (chunked embeddings are joined)."""
    return np.ascontiguousarray(passages.to_array() if hasattr(passages, "to_array") else passages,
                                dtype=np.float32)


def _faiss_search(index, queries: np.ndarray, top_k: int, batch_size: int,
                  description: str) -> tuple[np.ndarray, np.ndarray]:
    """``index.search`` over batches of queries, with a progress bar; ties ordered by id, as the torch search
    orders them (which of the passages tied at the cut faiss returns is its own choice)."""

    similarities = np.empty((len(queries), top_k), dtype=np.float32)
    ids = np.empty((len(queries), top_k), dtype=np.int64)
    batch_size = search_rows(batch_size)
    with progress_bar(total=len(queries), desc=description, unit="query") as progress:
        for start in range(0, len(queries), batch_size):
            count = min(batch_size, len(queries) - start)
            found = index.search(full_batches(queries[start:start + count], batch_size), top_k)  # as in torch's
            similarities[start:start + count], ids[start:start + count] = found[0][:count], found[1][:count]
            progress.update(count)
    order = np.lexsort((ids, -similarities), axis=1)
    return np.take_along_axis(similarities, order, 1), np.take_along_axis(ids, order, 1)


INDEX_KINDS = ("flat", "ivf", "hnsw")


def check_index_kind(kind: str) -> None:
    if kind not in INDEX_KINDS:
        raise UsageError(f"miner.index: '{kind}' is not one of {', '.join(INDEX_KINDS)}")


@dataclass(frozen=True)
class IndexSettings:
    """An approximate index's settings (``miner.index`` and its keys; their defaults are the schema's)."""
    kind: str
    nlist: int | None
    nprobe: int
    hnsw_m: int
    ef_search: int

    @classmethod
    def of(cls, miner: MinerConfig) -> IndexSettings:
        return cls(str(miner.index), miner.index_nlist, miner.index_nprobe, miner.hnsw_m, miner.hnsw_ef_search)


def approximate_search(passages, queries: np.ndarray, top_k: int, index_settings: IndexSettings, seed: int,
                       batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray, dict]:
    """Top-k by inner product through a faiss IVF or HNSW index; also returns the index's settings.

    IVF: ``nlist`` k-means cells (null: 4 x sqrt(pool)), trained on at most 64 x nlist passages drawn
    with ``seed``, searched in ``nprobe`` cells. HNSW: ``hnsw_m`` links per node, ``ef_search`` (at
    least ``top_k``) candidates per query. Results missing from an index (fewer than k found) come
    back as id -1, which the sampling rules skip.
    """
    kind, nlist, nprobe = index_settings.kind, index_settings.nlist, index_settings.nprobe
    hnsw_m, ef_search = index_settings.hnsw_m, index_settings.ef_search
    faiss = _faiss()

    check_index_kind(kind)
    passages = _as_array(passages)
    dim = passages.shape[1]
    if kind == "ivf":
        cells = int(nlist or max(1, round(4 * np.sqrt(len(passages)))))
        cells = min(cells, len(passages))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, cells, faiss.METRIC_INNER_PRODUCT)
        sample_size = min(len(passages), 64 * cells)
        sample = np.random.default_rng(seed).choice(len(passages), size=sample_size, replace=False)
        index.cp.seed = seed
        index.train(passages[np.sort(sample)])
        index.add(passages)
        index.nprobe = min(nprobe, cells)
        settings = {"kind": "ivf", "nlist": cells, "nprobe": int(index.nprobe), "trained_on": int(sample_size)}
    else:
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.add(passages)
        index.hnsw.efSearch = max(ef_search, top_k)
        settings = {"kind": "hnsw", "m": hnsw_m, "ef_search": int(index.hnsw.efSearch)}
    return (*_faiss_search(index, queries, top_k, batch_size, f"search ({kind})"), settings)


def recall_at_k(approximate_ids: np.ndarray, passages: np.ndarray, queries: np.ndarray, sample: int,
                seed: int) -> dict:
    """Recall@k of approximate results against exact search, on ``sample`` queries drawn with ``seed``."""
    count = min(sample, len(queries))
    if count <= 0:
        return {"queries": 0, "recall_at_k": None}
    chosen = np.sort(np.random.default_rng(seed).choice(len(queries), size=count, replace=False))
    top_k = approximate_ids.shape[1]
    _, exact_ids = _torch_search(passages, queries[chosen], top_k, 1024, ["cpu"])
    found = [len(set(a.tolist()) & set(e.tolist())) / top_k for a, e in zip(approximate_ids[chosen], exact_ids)]
    return {"queries": int(count), "k": int(top_k), "recall_at_k": round(float(np.mean(found)), 4),
            "min": round(float(np.min(found)), 4)}
