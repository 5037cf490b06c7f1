"""``step=mine``: hard negatives for each training row, from a window of ranks and similarities.

The rules (see README, "Mining rules"): the corpus is the candidate pool, or every ``pos`` and
``neg`` of the input, deduplicated in first-seen order; search the top ``B`` passages of each
query; keep ranks ``[A, B)``; drop passages equal to a positive or to the query; keep those whose
similarity lies within ``similarity_range``; sample ``negative_number`` of them, seeded; fill a
short row with random passages that are neither positives, nor the query, nor chosen already.

Memory does not grow with the pool: its texts are an Arrow file (``prep.pool``), its embeddings
chunks on disk (``embed.PoolEmbeddings``) that the exact search reads one at a time, and the output
is written row by row (README, "Large pools: memory").
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prep import embed, paths, sampling
from prep.cache import Cache, fingerprint
from prep.index import check_index_kind, resolve_backend
from prep.io import (
    atomic_file,
    check_pool_row,
    check_training_row,
    ensure_writable,
    iter_jsonl,
    read_jsonl,
    write_json,
    write_jsonl,
)
from prep.pool import PassagePool
from prep.stats import describe, table
from prep.timing import PhaseTimer, run_metadata

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MiningRules:
    """The sampling settings of one run, checked."""

    rank_window: tuple[int, int]
    similarity_window: tuple[float, float] | None
    negative_number: int
    fill_random: bool
    seed: int
    relative_margin: float | None = None
    absolute_margin: float | None = None
    sampling_strategy: str = "random"
    teacher_filter: bool = False
    teacher_relative_margin: float | None = None
    teacher_absolute_margin: float | None = None

    @classmethod
    def from_config(cls, cfg: Any) -> MiningRules:
        if cfg.miner.negative_number < 0:
            raise sampling.RangeError(f"miner.negative_number must be >= 0, got {cfg.miner.negative_number}")
        miner = cfg.miner
        return cls(
            rank_window=sampling.parse_rank_range(miner.range_for_sampling),
            similarity_window=sampling.parse_similarity_range(miner.similarity_range),
            negative_number=int(miner.negative_number),
            fill_random=bool(miner.fill_random),
            seed=int(cfg.seed),
            relative_margin=sampling.check_margin(miner.relative_margin, "miner.relative_margin"),
            absolute_margin=sampling.check_margin(miner.absolute_margin, "miner.absolute_margin"),
            sampling_strategy=sampling.check_strategy(miner.sampling_strategy),
            teacher_filter=bool(miner.teacher_filter),
            teacher_relative_margin=sampling.check_margin(miner.teacher_relative_margin,
                                                          "miner.teacher_relative_margin"),
            teacher_absolute_margin=sampling.check_margin(miner.teacher_absolute_margin,
                                                          "miner.teacher_absolute_margin"),
        )


def input_paths(cfg: Any) -> tuple[Path, Path | None]:
    """The training file and candidate pool; with no ``input``, the bundled sample and its pool."""
    pool = paths.user_path(cfg.miner.candidate_pool)
    if cfg.input is None:
        return paths.SAMPLE_TRAIN, pool or paths.SAMPLE_POOL
    return paths.user_path(cfg.input), pool


def corpus_texts(rows: list[dict[str, Any]], pool_path: Path | None) -> Iterator[str]:
    """Passages to search, duplicates included: the pool's texts, or every ``pos`` and ``neg`` of the rows."""
    if pool_path is not None:
        yield from (row["text"] for row in iter_jsonl(pool_path, check_pool_row))
        return
    for row in rows:
        yield from row["pos"]
        yield from row.get("neg", [])


def open_pool(rows: list[dict[str, Any]], pool_path: Path | None, folder: Path) -> PassagePool:
    """The deduplicated corpus (first-seen order, so ids never depend on hashing), in an Arrow file in ``folder``."""
    return PassagePool.build(corpus_texts(rows, pool_path), folder)


@dataclass
class RowResult:
    negative_ids: list[int]
    window_count: int  # how many came from the rank/similarity window (the rest are random fills)
    ranks: list[int]
    similarities: list[float]


def mine_row(
    row_index: int,
    excluded_ids: set[int],
    qualifying: list[sampling.Candidate],
    corpus_size: int,
    rules: MiningRules,
) -> RowResult:
    """Pick one row's negatives from its qualifying candidates (pure: same inputs, same ids)."""
    rng = sampling.row_rng(rules.seed, row_index)
    chosen = sampling.select_candidates(qualifying, rules.negative_number, rules.sampling_strategy, rng)
    negative_ids = [c.passage_id for c in chosen]
    missing = rules.negative_number - len(chosen)
    if missing > 0 and rules.fill_random:
        negative_ids += sampling.random_fill(corpus_size, missing, excluded_ids | set(negative_ids), rng)
    return RowResult(negative_ids, len(chosen), [c.rank for c in chosen], [c.similarity for c in chosen])


def denoise(teacher: Any, cache: Cache, rows: list[dict[str, Any]], pool: PassagePool,
            qualifying_rows: list[list[sampling.Candidate]], rules: MiningRules,
            removed: Counter) -> tuple[list[list[sampling.Candidate]], dict[str, Any]]:
    """Drop candidates the teacher scores close to or above the row's positive (teacher denoising).

    Pairs are scored in passes over every row at once, in chunks across queries, through the score
    cache, so a second run with the same teacher scores nothing. With ``sampling_strategy=random``
    one pass scores every qualifying candidate. With ``top`` only the best-ranked are needed: pass
    ``p`` scores, for every row still short, ``lacking x 2**p`` of its next candidates, so a row whose
    first candidates pass costs ``negative_number`` pairs, not the whole window. The positive's
    teacher score is the lowest among the row's positives.
    """
    from prep.teacher import cached_scores

    pairs_total, scored_total = 0, 0
    known_scores = cache.load_scores(teacher.identity)  # read once; every pass adds its new scores

    def scores_of(pairs: list[tuple[str, str]]) -> dict[tuple[str, str], float]:
        nonlocal pairs_total, scored_total
        distinct = list(dict.fromkeys(pairs))
        values, scored_now = cached_scores(teacher, distinct, cache, description="teacher scores",
                                           known=known_scores)
        pairs_total, scored_total = pairs_total + len(distinct), scored_total + scored_now
        return dict(zip(distinct, values))

    top = rules.sampling_strategy == "top"
    text_of: dict[int, str] = {}

    def texts_of(candidates: list[sampling.Candidate]) -> list[str]:
        missing = list({c.passage_id for c in candidates} - text_of.keys())
        text_of.update(zip(missing, pool.take(missing)))
        return [text_of[c.passage_id] for c in candidates]

    first = scores_of([(row["query"], text) for row, qualifying in zip(rows, qualifying_rows)
                       for text in [*row["pos"], *([] if top else texts_of(qualifying))]])
    positive_scores = [min(first[(row["query"], p)] for p in row["pos"]) for row in rows]
    kept_rows: list[list[sampling.Candidate]] = [[] for _ in rows]
    next_index = [0] * len(rows)
    passes = 0
    while True:
        batch: dict[int, list[sampling.Candidate]] = {}
        for index, qualifying in enumerate(qualifying_rows):
            # A row still short after a pass asks for twice as many next time: a row whose positive the
            # teacher scores low walks its window in a few passes, not negative_number at a time.
            lacking = rules.negative_number - len(kept_rows[index])
            wanted = lacking * 2 ** passes if top else len(qualifying)
            if wanted > 0 and next_index[index] < len(qualifying):
                batch[index] = qualifying[next_index[index]:next_index[index] + wanted]
                next_index[index] += len(batch[index])
        if not batch:
            break
        known = first if not top else scores_of([(rows[i]["query"], text) for i, candidates in batch.items()
                                                 for text in texts_of(candidates)])
        for index, candidates in batch.items():
            query = rows[index]["query"]
            kept_rows[index] += sampling.teacher_filter(
                candidates, [known[(query, text)] for text in texts_of(candidates)], positive_scores[index],
                rules.teacher_relative_margin, rules.teacher_absolute_margin, removed)
        text_of.clear()  # texts of this pass's candidates only: memory stays that of one pass
        if not top:
            break
        passes += 1
    not_scored = sum(len(q) - n for q, n in zip(qualifying_rows, next_index))
    info = {"teacher": teacher.description, "pairs": pairs_total, "pairs_scored": scored_total,
            "candidates_not_needed": not_scored, "positive_score": describe(positive_scores),
            "relative_margin": rules.teacher_relative_margin, "absolute_margin": rules.teacher_absolute_margin}
    return kept_rows, info


def cached_search(cfg: Any, cache: Cache, timer: PhaseTimer, key: str, passages: embed.PoolEmbeddings,
                  queries: np.ndarray, top_k: int, backend: str) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (similarities, ids) per query, from the cache (a search at least as deep) or a search."""
    found = cache.get_search(key, top_k)
    if found is not None:
        return found
    from prep.index import search

    with timer("search"):
        similarities, ids = search(passages, queries, top_k, batch_size=cfg.miner.search_batch_size,
                                   use_gpu=cfg.hardware.use_gpu_for_searching, backend=backend)
    cache.put_search(key, similarities, ids)
    return similarities, ids


def approximate(cfg: Any, cache: Cache, timer: PhaseTimer, exact_key: str, passages: embed.PoolEmbeddings,
                queries: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """An IVF or HNSW search (cached like an exact one) and its recall@k against exact search."""
    from prep.index import approximate_search, recall_at_k

    miner = cfg.miner
    settings = {"kind": miner.index, "nlist": miner.index_nlist, "nprobe": miner.index_nprobe,
                "hnsw_m": miner.hnsw_m, "ef_search": miner.hnsw_ef_search}
    key = fingerprint([exact_key, settings, cfg.seed])
    found = cache.get_search(key, top_k)
    if found is not None:
        similarities, ids = found
        info = {"kind": miner.index, "exact": False, "cached": True}
    else:
        with timer("search"):
            similarities, ids, built = approximate_search(
                passages, queries, top_k, kind=miner.index, nlist=miner.index_nlist, nprobe=miner.index_nprobe,
                hnsw_m=miner.hnsw_m, ef_search=miner.hnsw_ef_search, seed=int(cfg.seed),
                batch_size=miner.search_batch_size)
        cache.put_search(key, similarities, ids)
        info = {**built, "exact": False, "cached": False}
    with timer("search"):
        info["recall"] = recall_at_k(ids, passages, queries, miner.index_recall_queries, int(cfg.seed))
    log.info("%s index: recall@%d against exact search %s on %d sampled queries", miner.index, top_k,
             info["recall"]["recall_at_k"], info["recall"]["queries"])
    return similarities, ids, info


def run(cfg: Any) -> dict[str, Any]:
    timer = PhaseTimer()
    rules = MiningRules.from_config(cfg)
    check_index_kind(cfg.miner.index)
    out_dir = paths.run_dir(cfg)
    input_path, pool_path = input_paths(cfg)
    output_path = paths.user_path(cfg.output) or out_dir / "mined.jsonl"
    ensure_writable(output_path, cfg.overwrite)
    teacher = None
    if rules.teacher_filter:
        from prep.teacher import make_teacher

        teacher = make_teacher(cfg)  # a missing teacher model fails here, before any encoding

    with timer("load"):
        rows = read_jsonl(input_path, check_training_row)
    # The pool's texts (an Arrow file) and, with cache=false, its embeddings live in this folder,
    # removed when the run ends, however it ends.
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".mine-") as work_dir:
        with timer("load"):
            pool = open_pool(rows, pool_path, Path(work_dir))
        with pool:
            return mine_pool(cfg, rules, timer, rows, pool, teacher, Path(work_dir), input_path, pool_path,
                             output_path, out_dir)


def positive_similarities_of(rows: list[dict[str, Any]], positive_ids: list[list[int | None]],
                             pool_embeddings: embed.PoolEmbeddings, outside_embeddings: np.ndarray,
                             outside_row_of: dict[str, int], query_embeddings: np.ndarray) -> list[list[float]]:
    """Each row's similarity to each of its positives, reading the pool's chunks once for all rows.

    ``positive_ids``: each positive's pool id, or None for a positive outside the pool (its embedding
    is then row ``outside_row_of[text]`` of ``outside_embeddings``).
    """
    inside_ids = [pid for ids in positive_ids for pid in ids if pid is not None]
    gathered = iter(pool_embeddings.rows(inside_ids) if inside_ids else ())
    result = []
    for index, (row, ids) in enumerate(zip(rows, positive_ids)):
        vectors = [next(gathered) if pid is not None else outside_embeddings[outside_row_of[text]]
                   for text, pid in zip(row["pos"], ids)]
        result.append([float(vector @ query_embeddings[index]) for vector in vectors])
    return result


def mine_pool(cfg: Any, rules: MiningRules, timer: PhaseTimer, rows: list[dict[str, Any]], pool: PassagePool,
              teacher: Any, work_dir: Path, input_path: Path, pool_path: Path | None, output_path: Path,
              out_dir: Path) -> dict[str, Any]:
    log.info("%d rows from %s; corpus of %d distinct passages%s", len(rows), input_path, len(pool),
             f" from {pool_path}" if pool_path else " (pos and neg of the input)")
    positive_ids = [[pool.id_of(text) for text in row["pos"]] for row in rows]
    positives_outside = list(dict.fromkeys(text for row, ids in zip(rows, positive_ids)
                                           for text, pid in zip(row["pos"], ids) if pid is None))
    cache = Cache(cfg.cache_dir, cfg.cache)
    encoder = embed.CachedEncoder(cfg.miner, cfg.hardware, cache, timer, cfg.cache_dtype, cfg.encode_chunk)
    pool_embeddings = encoder.pool_embeddings(pool, work_dir)
    # Positives outside the pool are encoded only for the statistics (their similarity to the query).
    outside_embeddings = encoder.passages(positives_outside) if positives_outside else np.empty((0, 0), np.float32)
    query_texts = [row["query"] for row in rows]
    query_embeddings = encoder.queries(query_texts)

    low, high = rules.rank_window
    top_k = min(high, len(pool))
    if high > len(pool):
        log.warning("range_for_sampling %d-%d reaches past the corpus of %d passages: searching the top %d",
                    low, high, len(pool), top_k)
    backend = resolve_backend(cfg.miner.search_backend, cfg.hardware.use_gpu_for_searching, top_k)
    # The GPU searches in fp16, so where it ran is part of the key.
    search_key = fingerprint([pool_embeddings.key, encoder.key("queries", query_texts), backend,
                              bool(cfg.hardware.use_gpu_for_searching)])
    if cfg.miner.index == "flat":
        log.info("exact search of the top %d with %s on the %s", top_k, backend,
                 "GPU" if cfg.hardware.use_gpu_for_searching else "CPU")
        result_similarities, result_ids = cached_search(cfg, cache, timer, search_key, pool_embeddings,
                                                        query_embeddings, top_k, backend)
        index_info: dict[str, Any] = {"kind": "flat", "exact": True, "backend": backend}
    else:
        result_similarities, result_ids, index_info = approximate(cfg, cache, timer, search_key, pool_embeddings,
                                                                  query_embeddings, top_k)

    with timer("sample"):
        outside_row_of = {text: i for i, text in enumerate(positives_outside)}
        row_positive_similarities = positive_similarities_of(rows, positive_ids, pool_embeddings,
                                                             outside_embeddings, outside_row_of, query_embeddings)
        positive_similarities = [s for row_values in row_positive_similarities for s in row_values]
        removed: Counter = Counter({name: 0 for name in sampling.FILTERS})
        excluded_rows, qualifying_rows = [], []
        for index, row in enumerate(rows):
            excluded = {i for i in [*positive_ids[index], pool.id_of(row["query"])] if i is not None}
            excluded_rows.append(excluded)
            qualifying_rows.append(sampling.qualifying_candidates(
                result_ids[index], result_similarities[index], rules.rank_window, rules.similarity_window, excluded,
                positive_similarity=min(row_positive_similarities[index]), relative_margin=rules.relative_margin,
                absolute_margin=rules.absolute_margin, removed=removed))
    teacher_info, not_needed = None, 0
    if rules.teacher_filter:
        with timer("teacher"):
            qualifying_rows, teacher_info = denoise(teacher, cache, rows, pool, qualifying_rows, rules, removed)
        not_needed = teacher_info["candidates_not_needed"]
    with timer("sample"):
        results = [mine_row(index, excluded_rows[index], qualifying_rows[index], len(pool), rules)
                   for index in range(len(rows))]
        fills = [(index, pid) for index, r in enumerate(results) for pid in r.negative_ids[r.window_count:]]
        if fills:
            fill_embeddings = pool_embeddings.rows([pid for _, pid in fills])
            for (index, _), vector in zip(fills, fill_embeddings):
                results[index].similarities.append(float(vector @ query_embeddings[index]))

    with timer("write"):
        # Rows are written as their texts are read from the pool: the output is never held whole.
        write_jsonl(output_path, ({**row, "neg": pool.take(result.negative_ids)} for row, result in zip(rows, results)),
                    overwrite=cfg.overwrite)

    counts = [len(r.negative_ids) for r in results]
    filled = [len(r.negative_ids) - r.window_count for r in results]
    similarity = {
        "positive": describe(positive_similarities),
        "negative": describe([s for r in results for s in r.similarities]),
        "negative_window": describe([s for r in results for s in r.similarities[: r.window_count]]),
    }
    summary = {
        "step": "mine",
        "rows": len(rows),
        "corpus_size": len(pool),
        "negatives": {
            "mean": round(float(np.mean(counts)), 4),
            "min": int(min(counts)),
            "max": int(max(counts)),
            "rows_short": sum(1 for c in counts if c < rules.negative_number),
            "filled_random": int(sum(filled)),
            "rows_filled": sum(1 for f in filled if f),
        },
        "candidates": {
            "in_window": sum(removed.values()) + sum(len(q) for q in qualifying_rows) + not_needed,
            "removed": dict(removed),
            "qualifying": sum(len(q) for q in qualifying_rows),
            # with sampling_strategy=top and the teacher: candidates past those needed, never scored
            "not_needed": not_needed,
        },
        "sampling_strategy": rules.sampling_strategy,
        "teacher_filter": teacher_info,
        "similarity": similarity,
        "negative_rank": describe([rank for r in results for rank in r.ranks]),
        "searched_top_k": top_k,
        "index": index_info,
        "seconds": timer.seconds(("load", "encode", "search", "teacher", "sample", "write")),
        "cache": cache.stats(),
        "encoded": encoder.encoded,
        "input": str(input_path),
        "candidate_pool": str(pool_path) if pool_path else None,
        "output": str(output_path),
        **run_metadata(cfg),
    }
    log.info("similarity to the query\n%s", table({"positives": similarity["positive"],
                                                     "negatives": similarity["negative"],
                                                     "  from window": similarity["negative_window"],
                                                     "negative rank": summary["negative_rank"]}))
    log.info("candidates in the rank window: %d; removed by %s; qualifying: %d",
             summary["candidates"]["in_window"],
             ", ".join(f"{name} {count}" for name, count in removed.items()), summary["candidates"]["qualifying"])
    log.info("negatives per row: mean %.2f (min %d, max %d); rows short: %d; random fills: %d in %d rows",
             summary["negatives"]["mean"], summary["negatives"]["min"], summary["negatives"]["max"],
             summary["negatives"]["rows_short"], summary["negatives"]["filled_random"],
             summary["negatives"]["rows_filled"])
    positive_array = np.asarray(positive_similarities, dtype=np.float32)
    negative_array = np.asarray([s for r in results for s in r.similarities], dtype=np.float32)
    with atomic_file(out_dir / "similarities.npz", overwrite=True, binary=True) as handle:
        np.savez(handle, positive=positive_array, negative=negative_array)
    from prep.plots import similarity_histogram

    similarity_histogram(out_dir / "similarity.png", positive_array, negative_array,
                         f"{len(rows)} rows, ranks {low}-{high}, similarity {rules.similarity_window or 'any'}")
    summary["summary"] = str(out_dir / "summary.json")
    write_json(out_dir / "summary.json", summary)
    return summary
