"""``step=mine``: hard negatives for each training row, from a window of ranks and similarities.

The rules (README, "Mining rules"): the corpus is the candidate pool, or every ``pos`` and ``neg`` of
the input, deduplicated in first-seen order; search the top ``B`` passages of each query; keep ranks
``[A, B)``; drop passages equal to a positive or to the query; keep those within ``similarity_range``
and under the margins; optionally drop what the teacher scores too close to the positive; sample
``negative_number`` of them, seeded per row; fill a short row with random passages that are neither
positives, nor the query, nor chosen already.

``run`` reads as its phases: load, encode, search, qualify, denoise, select, write, report. Each
phase is a function that takes what it needs and returns what it made.

Memory does not grow with the pool: its texts are an Arrow file (``io.pool``), its embeddings
chunks on disk (``cache.embeddings.PoolEmbeddings``) that the exact search reads one at a time, and
the output is written row by row (README, "Large pools: memory").
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prep.cache.embeddings import CachedEncoder, PoolEmbeddings
from prep.cache.identity import fingerprint
from prep.cache.store import Cache
from prep.config.settings import settings_of
from prep.io.atomic import atomic_file
from prep.io.formats import Written, check_output, log_written, output_counts, write_rows
from prep.io.jsonl import check_training_row
from prep.io.paths import input_sources
from prep.io.pool import PassagePool, open_pool
from prep.io.rawjson import replaced
from prep.io.sources import Reader
from prep.models.runtime import check_devices
from prep.models.sources import check_model_source
from prep.report.stats import describe, table
from prep.retrieval import sampling
from prep.retrieval.sampling import Candidate, MiningRules, RowResult
from prep.steps.frame import StepRun

log = logging.getLogger(__name__)

PHASES = ("load", "encode", "search", "teacher", "sample", "write")


@dataclass
class Mining:
    """What every phase of one mine run may use: its step frame (settings, timer, output), rules and cache."""

    step: StepRun
    rules: MiningRules
    cache: Cache


@dataclass
class Corpus:
    """The rows, the deduplicated pool they are mined from, and where each row's positives and query sit in it
    (None: not in the pool); ``sources`` names the files they came from."""

    rows: list[dict[str, Any]]
    pool: PassagePool
    positive_ids: list[list[int | None]]
    query_ids: list[int | None]
    sources: dict[str, str | None]
    # With shard.count > 1 ``rows`` is one block of the input: ``first`` is the input row number of rows[0], and
    # ``everyone`` every input row (the pool and the positives other rows claim are the whole input's).
    first: int = 0
    everyone: list[dict[str, Any]] | None = None

    def excluded(self, index: int) -> set[int]:
        """Pool ids a row may never take as negatives: its positives and its query."""
        return {i for i in [*self.positive_ids[index], self.query_ids[index]] if i is not None}

    def row_number(self, index: int) -> int:
        """The input row number of ``rows[index]``: what seeds its sampling and names it in the claims."""
        return self.first + index

    @property
    def claimants(self) -> list[dict[str, Any]]:
        """Every input row: the rows whose positives are claimed (``miner.exclude_other_positives``)."""
        return self.rows if self.everyone is None else self.everyone


@dataclass
class Embedded:
    pool: PoolEmbeddings
    queries: np.ndarray
    query_key: str  # the queries' cache key, part of the search's
    positive_similarities: list[list[float]]  # each row's similarity to each of its positives
    encoded: dict[str, int]
    outside: dict[str, np.ndarray]  # embeddings of positives that are not in the pool


@dataclass
class Searched:
    """Each query's candidates in rank order (id -1: none), their dense similarities, and with
    ``miner.retriever=bm25|hybrid`` which retrievers found each (``SOURCE_DENSE | SOURCE_BM25`` bits)."""

    similarities: np.ndarray
    ids: np.ndarray
    top_k: int
    index: dict[str, Any]
    sources: np.ndarray | None = None  # None: every candidate is the dense search's


SOURCE_DENSE, SOURCE_BM25 = 1, 2
SOURCE_NAMES = {SOURCE_DENSE: "dense", SOURCE_BM25: "bm25", SOURCE_DENSE | SOURCE_BM25: "dense+bm25"}


@dataclass
class Ranked:
    """Where each row's best positive ranks for its own query (None: past the searched depth), and the rows
    ``miner.max_positive_rank`` rejects, with the reason."""

    ranks: list[int | None]
    rejected: dict[int, str]


@dataclass
class Claims:
    """Pool passages that rows claim: ``exact``, passage id -> the rows whose positive it is; ``near``, the same for
    passages at least ``miner.other_positive_threshold`` similar to a row's positive (None without one)."""

    exact: dict[int, set[int]]
    near: dict[int, set[int]] | None = None


@dataclass
class Qualified:
    """Each row's candidates that passed the filters, and how many each filter removed."""

    candidates: list[list[Candidate]]
    removed: Counter
    not_needed: int = 0  # with sampling_strategy=top and the teacher: candidates past those needed, never scored
    teacher: dict[str, Any] | None = None


@dataclass
class Mined:
    """What the phases after ``load`` made, for the report."""

    embedded: Embedded
    searched: Searched
    qualified: Qualified
    results: list[RowResult]
    kept_inputs: list[list[str]]  # miner.keep_input_negatives: each row's own negatives kept, before its mined ones
    ranked: Ranked
    claims: Claims
    stale_neg_scores: int  # rows whose neg_scores were dropped with their old negatives
    written: Written


def run(cfg: Any, rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Mine the input file's rows, or ``rows`` when given (``step=probe`` mines its training rows, already read
    and checked)."""
    settings = settings_of(cfg)
    if settings.shard.count > 1 and (done := finished_shard(settings)) is not None:
        return done
    check_model_source(settings.miner.model_name_or_path, "miner.model_name_or_path", settings.miner.cache_dir)
    check_devices(settings.hardware)
    mining = Mining(StepRun(settings, "mine", default_output="mined.jsonl"), MiningRules.from_settings(settings),
                    Cache(settings.cache_dir, settings.cache))
    if mining.rules.max_positive_rank is not None:
        check_output(rejected_path(mining.step), settings.overwrite)
    teacher = None
    if mining.rules.teacher_filter:
        from prep.models.teacher import make_teacher

        teacher = make_teacher(settings)  # a missing teacher model fails here, before any encoding
    # The pool's texts (an Arrow file) and, with cache=false, its embeddings live in this folder.
    with mining.step.work_dir(".mine-") as work_dir:
        corpus = load(mining, Path(work_dir), rows)
        with corpus.pool:
            embedded = encode(mining, corpus, Path(work_dir))
            searched = search(mining, corpus, embedded)
            ranked = rank_positives(mining, corpus, embedded, searched)
            claims = claim_positives(mining, corpus, embedded)
            qualified = qualify(mining, corpus, embedded, searched, claims)
            if teacher is not None:
                qualified = denoise(mining, corpus, qualified, teacher)
            results, kept_inputs = select(mining, corpus, embedded, qualified, claims)
            stale, written = write(mining, corpus, results, kept_inputs, ranked, searched)
    return report(mining, corpus, Mined(embedded, searched, qualified, results, kept_inputs, ranked, claims, stale,
                                        written))


def finished_shard(settings: Any) -> dict[str, Any] | None:
    """A shard's earlier run in this run folder, when it finished with the same settings (its summary and output
    are there): its summary, and nothing is mined again. How a rerun of a sharded multirun (same
    ``hydra.sweep.dir``) resumes: only the shards that had not finished run. A run folder with no summary held a
    job that was killed: the files it left there (the default output names) are removed first; an ``output=``
    outside it is never removed."""
    import dataclasses
    import json

    from prep.io.paths import run_dir

    folder = run_dir(settings)
    path = folder / "summary.json"
    if not path.is_file():
        if settings.output is None:  # a job killed before its summary: what it left in its own folder is stale
            for leftover in (folder / "mined.jsonl", folder / "rejected.jsonl"):
                if leftover.is_file():
                    log.info("shard %d of %d did not finish here before: %s is replaced", settings.shard.index,
                             settings.shard.count, leftover)
                    leftover.unlink()
        return None
    summary = json.loads(path.read_text(encoding="utf-8"))
    same = summary.get("config") == json.loads(json.dumps(dataclasses.asdict(settings), default=str))
    if not same or summary.get("step") != "mine" or not Path(summary.get("output", "")).exists():
        return None
    log.info("shard %d of %d already mined with these settings (%s): skipped", settings.shard.index,
             settings.shard.count, summary["output"])
    return summary


def load(mining: Mining, work_dir: Path, rows: list[dict[str, Any]] | None) -> Corpus:
    """The training rows (read and checked unless given), the deduplicated pool (an Arrow file in ``work_dir``),
    and each row's positives and query in it."""
    source, pool_source = input_sources(mining.step.settings)
    reader = Reader.of(mining.step.settings)
    shard = mining.step.settings.shard
    with mining.step.phase("load"):
        rows = reader.training_rows(source, check_training_row) if rows is None else rows
        pool = open_pool(rows, pool_source, work_dir, reader)
    log.info("%d rows from %s; corpus of %d distinct passages%s", len(rows), source.label, len(pool),
             f" from {pool_source.label}" if pool_source else " (pos and neg of the input)")
    block, everyone = range(len(rows)), None
    if shard.count > 1:
        block, everyone = row_block(len(rows), shard.index, shard.count), rows
        log.info("shard %d of %d: rows %d to %d of %d", shard.index, shard.count, block.start, block.stop - 1,
                 len(rows))
        rows = rows[block.start:block.stop]
    return Corpus(rows, pool, [[pool.id_of(text) for text in row["pos"]] for row in rows],
                  [pool.id_of(row["query"]) for row in rows],
                  {"input": source.label, "candidate_pool": pool_source.label if pool_source else None},
                  block.start, everyone)


def row_block(rows: int, index: int, count: int) -> range:
    """Shard ``index`` of ``count``: a contiguous block of the rows, the first ``rows % count`` blocks one row
    longer, so that the blocks in shard order are the input in its order."""
    size, longer = divmod(rows, count)
    start = index * size + min(index, longer)
    return range(start, start + size + (index < longer))


def encode(mining: Mining, corpus: Corpus, work_dir: Path) -> Embedded:
    """The pool's embeddings (chunks on disk), the queries', and each row's similarity to its positives.

    Positives outside the pool are encoded only for that similarity (the positive-aware margins and the
    statistics)."""
    settings = mining.step.settings
    encoder = CachedEncoder(settings.miner, settings.hardware, mining.cache, mining.step.timer, settings.cache_dtype,
                            settings.encode_chunk)
    pool_embeddings = encoder.pool_embeddings(corpus.pool, work_dir)
    # Every input row's (not only a shard's): other rows' positives are claimed, near duplicates included.
    outside = list(dict.fromkeys(text for row in corpus.claimants for text in row["pos"]
                                 if corpus.pool.id_of(text) is None))
    outside_embeddings = encoder.passages(outside) if outside else np.empty((0, 0), np.float32)
    queries, query_key = encode_queries(encoder, corpus.rows, settings.miner.query_instruction_from_row)
    with mining.step.phase("sample"):
        positives = positive_similarities(corpus, pool_embeddings, dict(zip(outside, outside_embeddings)), queries)
    return Embedded(pool_embeddings, queries, query_key, positives, encoder.encoded,
                    dict(zip(outside, outside_embeddings)))


def instruction_groups(rows: list[dict[str, Any]], column: str | None) -> dict[str | None, list[int]]:
    """Row indexes by the query instruction of each row: its ``column`` when that holds a non-empty string, else
    None (the configured instruction); groups in first-seen order."""
    groups: dict[str | None, list[int]] = {}
    for index, row in enumerate(rows):
        value = row.get(column) if column else None
        groups.setdefault(value if isinstance(value, str) and value else None, []).append(index)
    return groups


def encode_queries(encoder: CachedEncoder, rows: list[dict[str, Any]], column: str | None) -> tuple[np.ndarray, str]:
    """The rows' query embeddings in row order, and their cache key (part of the search's key). With
    ``miner.query_instruction_from_row``, each distinct instruction's queries are encoded (and cached) together."""
    texts = [row["query"] for row in rows]
    groups = instruction_groups(rows, column)
    if list(groups) == [None]:
        return encoder.queries(texts), encoder.key("queries", texts)
    queries: np.ndarray | None = None
    keys = []
    for instruction, indexes in groups.items():
        group_texts = [texts[i] for i in indexes]
        values = encoder.queries(group_texts, instruction)
        if queries is None:
            queries = np.empty((len(texts), values.shape[1]), dtype=np.float32)
        queries[indexes] = values
        keys.append([encoder.key("queries", group_texts, instruction), indexes])
    log.info("%d distinct query instructions from the rows' '%s' (%d rows without one)", len(groups) - (None in groups),
             column, len(groups.get(None, [])))
    return queries, fingerprint(keys)


def positive_similarities(corpus: Corpus, pool_embeddings: PoolEmbeddings, outside: dict[str, np.ndarray],
                          queries: np.ndarray) -> list[list[float]]:
    """Each row's similarity to each of its positives, reading the pool's chunks once for all rows;
    ``outside`` holds the embeddings of positives that are not in the pool."""
    inside_ids = [pid for ids in corpus.positive_ids for pid in ids if pid is not None]
    gathered = iter(pool_embeddings.rows(inside_ids) if inside_ids else ())
    result = []
    for index, (row, ids) in enumerate(zip(corpus.rows, corpus.positive_ids)):
        vectors = [next(gathered) if pid is not None else outside[text] for text, pid in zip(row["pos"], ids)]
        result.append([float(vector @ queries[index]) for vector in vectors])
    return result


def search(mining: Mining, corpus: Corpus, embedded: Embedded) -> Searched:
    """The top ``B`` passages of each query (``B``: the rank window's end, clamped to the corpus)."""
    from prep.cache.searches import CachedSearch

    low, high = mining.rules.rank_window
    if mining.rules.max_positive_rank is not None:  # deep enough to see a positive at rank max_positive_rank
        high = max(high, mining.rules.max_positive_rank + max(len(ids) for ids in corpus.positive_ids))
    top_k = min(high, len(corpus.pool))
    if high > len(corpus.pool):
        log.warning("range_for_sampling %d-%d reaches past the corpus of %d passages: searching the top %d",
                    low, high, len(corpus.pool), top_k)
    miner = mining.step.settings.miner
    if miner.retriever == "dense":
        similarities, ids, index = CachedSearch(mining.step.settings, mining.cache, mining.step.timer, top_k).run(
            embedded.pool, embedded.queries, embedded.query_key)
        return Searched(similarities, ids, top_k, index)
    from prep.retrieval.lexical import bm25_index, rrf_fuse

    with mining.step.phase("search"):
        lexical, cached = bm25_index(corpus.pool, mining.cache, miner.bm25_k1, miner.bm25_b)
        _, lexical_ids = lexical.search([row["query"] for row in corpus.rows], top_k)
    index = {"retriever": str(miner.retriever), "bm25_index_cached": cached}
    sources = np.where(lexical_ids >= 0, SOURCE_BM25, 0).astype(np.int8)
    ids = lexical_ids
    if miner.retriever == "hybrid":
        _, dense_ids, dense_index = CachedSearch(mining.step.settings, mining.cache, mining.step.timer, top_k).run(
            embedded.pool, embedded.queries, embedded.query_key)
        index.update(dense_index, rrf_k=miner.rrf_k)
        ids = np.full_like(lexical_ids, -1)
        for row in range(len(ids)):
            fused = rrf_fuse([dense_ids[row].tolist(), lexical_ids[row].tolist()], miner.rrf_k, top_k)
            ids[row, :len(fused)] = fused
        sources = (SOURCE_DENSE * row_member(ids, dense_ids) + SOURCE_BM25 * row_member(ids, lexical_ids)
                   ).astype(np.int8)
    with mining.step.phase("sample"):
        similarities = dense_similarities(embedded, ids)
    return Searched(similarities, ids, top_k, index, sources)


def row_member(ids: np.ndarray, lists: np.ndarray) -> np.ndarray:
    """Whether each ``ids[r, j]`` (not -1) is in row ``r`` of ``lists``."""
    return np.array([np.isin(row, other[other >= 0]) & (row >= 0) for row, other in zip(ids, lists)], dtype=bool)


def dense_similarities(embedded: Embedded, ids: np.ndarray, batch: int = 256) -> np.ndarray:
    """The dense similarity of each query to each of its candidates (``-inf`` where the id is -1), reading the
    pool's embeddings for a batch of queries at a time."""
    result = np.full(ids.shape, -np.inf, dtype=np.float32)
    for start in range(0, len(ids), batch):
        part = ids[start:start + batch]
        wanted = np.unique(part[part >= 0])
        if not len(wanted):
            continue
        vectors = embedded.pool.rows(wanted)
        for offset, row in enumerate(part):
            valid = row >= 0
            result[start + offset, valid] = vectors[np.searchsorted(wanted, row[valid])] @ embedded.queries[
                start + offset]
    return result


def rank_positives(mining: Mining, corpus: Corpus, embedded: Embedded, searched: Searched) -> Ranked:
    """Where each row's best positive ranks among the other passages for its own query, and with
    ``miner.max_positive_rank`` the rows whose positive ranks there or lower (rejected, with the reason)."""
    limit = mining.rules.max_positive_rank
    ranks: list[int | None] = []
    rejected: dict[int, str] = {}
    with mining.step.phase("sample"):
        for index in range(len(corpus.rows)):
            own = {pid for pid in corpus.positive_ids[index] if pid is not None}
            rank = sampling.positive_rank(searched.ids[index], searched.similarities[index], own,
                                          max(embedded.positive_similarities[index]), len(corpus.pool))
            ranks.append(rank)
            if limit is not None and (rank is None or rank >= limit):
                where = f"rank {rank}" if rank is not None else f"below the top {searched.top_k} searched"
                rejected[index] = (f"its best positive ranks {where} for its own query "
                                   f"(miner.max_positive_rank={limit}): likely a wrong label")
    if rejected:
        log.warning("%d of %d rows rejected: their positive ranks %d or lower for their own query (rejected.jsonl)",
                    len(rejected), len(corpus.rows), limit)
    return Ranked(ranks, rejected)


NEAR_DEPTH = 32  # neighbours of each positive looked at for near duplicates


def claim_positives(mining: Mining, corpus: Corpus, embedded: Embedded) -> Claims:
    """Which pool passages are some row's positive and, with ``miner.other_positive_threshold``, which are near
    duplicates of one (among each positive's ``NEAR_DEPTH`` nearest passages)."""
    # Claims name input row numbers (a shard's rows are claimed by the whole input's).
    claimants = corpus.claimants
    positive_ids = corpus.positive_ids if corpus.everyone is None else [
        [corpus.pool.id_of(text) for text in row["pos"]] for row in claimants]
    exact: dict[int, set[int]] = {}
    for number, ids in enumerate(positive_ids):
        for pid in ids:
            if pid is not None:
                exact.setdefault(pid, set()).add(number)
    threshold = mining.rules.other_positive_threshold
    if threshold is None:
        return Claims(exact)
    from prep.retrieval.search import search as exact_search

    owners = [number for number, row in enumerate(claimants) for _ in row["pos"]]
    inside = [pid for ids in positive_ids for pid in ids if pid is not None]
    gathered = iter(embedded.pool.rows(inside) if inside else ())
    vectors = np.stack([next(gathered) if pid is not None else embedded.outside[text]
                        for row, ids in zip(claimants, positive_ids) for text, pid in zip(row["pos"], ids)])
    near: dict[int, set[int]] = {}
    with mining.step.phase("search"):
        similarities, neighbours = exact_search(embedded.pool, vectors.astype(np.float32),
                                                min(NEAR_DEPTH, len(corpus.pool)),
                                                batch_size=mining.step.settings.miner.search_batch_size)
    for owner, row_similarities, row_ids in zip(owners, similarities, neighbours):
        for similarity, pid in zip(row_similarities.tolist(), row_ids.tolist()):
            if pid >= 0 and similarity >= threshold:
                near.setdefault(pid, set()).add(owner)
    return Claims(exact, near)


def qualify(mining: Mining, corpus: Corpus, embedded: Embedded, searched: Searched, claims: Claims) -> Qualified:
    """Each row's search results that pass the rank window, the exclusions, the similarity window and the
    margins (``sampling.qualifying_candidates``)."""
    rules = mining.rules
    removed: Counter = Counter({name: 0 for name in sampling.FILTERS})
    candidates = []
    with mining.step.phase("sample"):
        for index in range(len(corpus.rows)):
            others: set[int] = set()
            if rules.exclude_other_positives:
                window = searched.ids[index][rules.rank_window[0]:rules.rank_window[1]].tolist()
                number = corpus.row_number(index)
                others = sampling.claimed_by_other_rows(claims.exact, number, window)
                if claims.near is not None:
                    others |= sampling.claimed_by_other_rows(claims.near, number, window)
            kept, removed_here = sampling.qualifying_candidates(
                searched.ids[index], searched.similarities[index], rules.rank_window, rules.similarity_window,
                corpus.excluded(index), positive_similarity=min(embedded.positive_similarities[index]),
                relative_margin=rules.relative_margin, absolute_margin=rules.absolute_margin,
                other_positive_ids=others)
            candidates.append(kept)
            removed.update(removed_here)
    return Qualified(candidates, removed)


def denoise(mining: Mining, corpus: Corpus, qualified: Qualified, teacher: Any) -> Qualified:
    """Drop candidates the teacher scores close to or above the row's positive (``retrieval.denoise``)."""
    from prep.cache.scores import CachedScores
    from prep.models.teacher import query_text
    from prep.retrieval.denoise import denoise as teacher_denoise

    settings = mining.step.settings
    rows = corpus.rows
    if settings.reranker.query_instruction_from_row:  # the teacher reads each query with its row's instruction
        rows = [{**row, "query": query_text(row, settings)} for row in rows]
    with mining.step.phase("teacher"):
        denoised = teacher_denoise(CachedScores(teacher, mining.cache), rows, corpus.pool,
                                   qualified.candidates, mining.rules)
    removed = Counter(qualified.removed)
    removed["teacher"] += denoised.removed
    return Qualified(denoised.kept, removed, denoised.not_needed, denoised.info)


def select(mining: Mining, corpus: Corpus, embedded: Embedded, qualified: Qualified, claims: Claims
           ) -> tuple[list[RowResult], list[list[str]]]:
    """Each row's negatives (``sampling.mine_row``), with the similarity of its random fills added; and with
    ``miner.keep_input_negatives`` each row's own negatives kept, which the mined ones then never repeat."""
    rules = mining.rules
    kept_inputs = [sampling.kept_input_negatives(row.get("neg", []), row["pos"], row["query"])
                   if rules.keep_input_negatives else [] for row in corpus.rows]
    # Random fills never take another row's positive (or near duplicate) either; one set for every row.
    barred = frozenset({*claims.exact, *(claims.near or ())}) if rules.exclude_other_positives else frozenset()
    with mining.step.phase("sample"):
        results = []
        for index, own in enumerate(kept_inputs):
            excluded = corpus.excluded(index)
            if own:
                excluded |= {pid for pid in map(corpus.pool.id_of, own) if pid is not None}
                candidates = [c for c in qualified.candidates[index] if c.passage_id not in excluded]
            else:
                candidates = qualified.candidates[index]
            results.append(sampling.mine_row(corpus.row_number(index), excluded, candidates, len(corpus.pool),
                                             rules, wanted=max(0, rules.negative_number - len(own)), barred=barred))
        fills = [(index, pid) for index, r in enumerate(results) for pid in r.negative_ids[r.window_count:]]
        if fills:
            fill_embeddings = embedded.pool.rows([pid for _, pid in fills])
            for (index, _), vector in zip(fills, fill_embeddings):
                results[index].similarities.append(float(vector @ embedded.queries[index]))
    return results, kept_inputs


def negative_sources(searched: Searched, index: int, result: RowResult) -> list[str]:
    """Which retrievers found each of a row's mined negatives (``random`` for a fill), in its order."""
    if searched.sources is None:
        found = ["dense"] * result.window_count
    else:
        found = [SOURCE_NAMES[int(searched.sources[index, rank])] for rank in result.ranks]
    return found + ["random"] * (len(result.negative_ids) - result.window_count)


def rejected_path(step: StepRun) -> Path:
    """``rejected.jsonl`` beside the output: the rows ``miner.max_positive_rank`` rejects, each with its reason."""
    return step.output.parent / "rejected.jsonl"


def write(mining: Mining, corpus: Corpus, results: list[RowResult], kept_inputs: list[list[str]],
          ranked: Ranked, searched: Searched) -> tuple[int, Written]:
    """The rows with their new ``neg`` (after their own kept ones), written as their texts are read from the pool:
    never held whole; rejected rows go to ``rejected.jsonl`` with the reason, as they came.

    A row's ``neg_scores`` scored its old negatives: FlagEmbedding's distillation would read them as the
    new ones' teacher scores, so they are dropped (``step=score`` fills them again); ``pos_scores`` stays,
    as ``pos`` does. Returns how many rows lost their ``neg_scores``, and the output's row counts."""
    step = mining.step
    kept = [index for index in range(len(corpus.rows)) if index not in ranked.rejected]
    with step.phase("write"):
        def sources(i: int) -> list[str] | None:
            if not step.settings.miner.write_sources:
                return None
            return ["input"] * len(kept_inputs[i]) + negative_sources(searched, i, results[i])

        written = write_rows(step.output, (mined_row(corpus.rows[i], kept_inputs[i] +
                                                     corpus.pool.take(results[i].negative_ids), sources(i))
                                           for i in kept),
                             step.settings.output_format, step.settings.overwrite, mining.rules.negative_number)
        if mining.rules.max_positive_rank is not None:
            write_rows(rejected_path(step), (replaced(corpus.rows[i], rejected=reason)
                                             for i, reason in sorted(ranked.rejected.items())),
                       overwrite=step.settings.overwrite)
    log_written(written, step.settings.output_format)
    stale = sum(1 for row in corpus.rows if "neg_scores" in row)
    if stale:
        log.warning("%d rows had neg_scores for their old negatives: removed (step=score adds scores for the new "
                    "ones)", stale)
    return stale, written


def mined_row(row: dict[str, Any], negatives: list[str], sources: list[str] | None = None) -> dict[str, Any]:
    """``row`` with ``neg`` replaced (and ``neg_sources`` with ``miner.write_sources``) and its stale ``neg_scores``
    dropped; every other key as it came."""
    extra = {} if sources is None else {"neg_sources": sources}
    return replaced(row, removed=("neg_scores",), neg=negatives, **extra)


def report(mining: Mining, corpus: Corpus, mined: Mined) -> dict[str, Any]:
    """The summary (README, "Mining rules"), the log's tables, ``similarities.npz`` and ``similarity.png``."""
    rules = mining.rules
    kept = [index for index in range(len(corpus.rows)) if index not in mined.ranked.rejected]
    results = [mined.results[index] for index in kept]
    own_counts = [len(mined.kept_inputs[index]) for index in kept]
    positives = [s for index in kept for s in mined.embedded.positive_similarities[index]]
    negatives = [s for r in results for s in r.similarities]
    summary = {
        "rows": len(corpus.rows),
        "corpus_size": len(corpus.pool),
        "negatives": negative_counts(results, rules.negative_number, own_counts),
        "candidates": candidate_counts(mined.qualified),
        "sampling_strategy": rules.sampling_strategy,
        "teacher_filter": mined.qualified.teacher,
        "similarity": {"positive": describe(positives), "negative": describe(negatives),
                       "negative_window": describe([s for r in results for s in r.similarities[:r.window_count]])},
        "negative_rank": describe([rank for r in results for rank in r.ranks]),
        "searched_top_k": mined.searched.top_k,
        "index": mined.searched.index,
        "cache": mining.cache.stats(),
        "encoded": mined.embedded.encoded,
        "scores_removed": {"neg_scores": mined.stale_neg_scores},
        "output_format": output_counts(mining.step.settings.output_format, mined.written),
        "positive_rank": positive_rank_summary(mined.ranked, mined.searched.top_k),
        "rows_rejected": len(mined.ranked.rejected),
        "rejected": str(rejected_path(mining.step)) if rules.max_positive_rank is not None else None,
        "other_positives": {"negatives_that_are_other_rows_positives": other_positive_negatives(
            corpus, mined.claims, mined.results, mined.kept_inputs, kept)},
        "input_negatives_kept": sum(own_counts),
        "retriever": str(mining.step.settings.miner.retriever),
        "negatives_by_retriever": negatives_by_retriever(mined.searched, mined.results, kept),
        **corpus.sources,
    }
    shard = mining.step.settings.shard
    if shard.count > 1:  # step=merge joins the parts in this order
        summary["shard"] = {"index": shard.index, "count": shard.count, "first_row": corpus.first,
                            "input_rows": len(corpus.claimants)}
    log_summary(summary)
    write_similarities(mining.step, np.asarray(positives, dtype=np.float32), np.asarray(negatives, dtype=np.float32),
                       f"{len(corpus.rows)} rows, ranks {rules.rank_window[0]}-{rules.rank_window[1]}, "
                       f"similarity {rules.similarity_window or 'any'}")
    return mining.step.finish(summary, PHASES)


def negatives_by_retriever(searched: Searched, results: list[RowResult], kept: list[int]) -> dict[str, int]:
    """How many written negatives each retriever found (``dense``, ``bm25``; one both found counts for both and
    under ``both``), and how many are random fills."""
    counts = Counter({"dense": 0, "bm25": 0, "both": 0, "random": 0})
    for index in kept:
        for source in negative_sources(searched, index, results[index]):
            if source == "dense+bm25":
                counts.update(("dense", "bm25", "both"))
            else:
                counts[source] += 1
    return dict(counts)


def positive_rank_summary(ranked: Ranked, top_k: int) -> dict[str, Any]:
    """Percentiles of where rows' best positives rank for their own queries (0: first), and how many rank past the
    searched depth."""
    found = [rank for rank in ranked.ranks if rank is not None]
    return {**describe(found), "past_searched_depth": len(ranked.ranks) - len(found), "searched_top_k": top_k}


def other_positive_negatives(corpus: Corpus, claims: Claims, results: list[RowResult], kept_inputs: list[list[str]],
                             kept: list[int]) -> int:
    """How many written negatives are another row's positive (exactly): false negatives in any batch that holds
    both rows."""
    count = 0
    for index in kept:
        ids = list(results[index].negative_ids) + [pid for pid in map(corpus.pool.id_of, kept_inputs[index])
                                                   if pid is not None]
        count += len(sampling.claimed_by_other_rows(claims.exact, corpus.row_number(index), ids))
    return count


def negative_counts(results: list[RowResult], wanted: int, own_counts: list[int] | None = None) -> dict[str, Any]:
    """Negatives per row (``own_counts``: the row's own kept negatives, counted with its mined ones)."""
    own_counts = own_counts or [0] * len(results)
    counts = [len(r.negative_ids) + own for r, own in zip(results, own_counts)]
    filled = [len(r.negative_ids) - r.window_count for r in results]
    if not counts:  # every row rejected
        return {"mean": 0.0, "min": 0, "max": 0, "rows_short": 0, "filled_random": 0, "rows_filled": 0}
    return {"mean": round(float(np.mean(counts)), 4), "min": int(min(counts)), "max": int(max(counts)),
            "rows_short": sum(1 for c in counts if c < wanted), "filled_random": int(sum(filled)),
            "rows_filled": sum(1 for f in filled if f)}


def candidate_counts(qualified: Qualified) -> dict[str, Any]:
    qualifying = sum(len(q) for q in qualified.candidates)
    return {"in_window": sum(qualified.removed.values()) + qualifying + qualified.not_needed,
            "removed": dict(qualified.removed), "qualifying": qualifying, "not_needed": qualified.not_needed}


def log_summary(summary: dict[str, Any]) -> None:
    similarity, negatives, candidates = summary["similarity"], summary["negatives"], summary["candidates"]
    log.info("similarity to the query\n%s", table({"positives": similarity["positive"],
                                                     "negatives": similarity["negative"],
                                                     "  from window": similarity["negative_window"],
                                                     "negative rank": summary["negative_rank"]}))
    log.info("candidates in the rank window: %d; removed by %s; qualifying: %d", candidates["in_window"],
             ", ".join(f"{name} {count}" for name, count in candidates["removed"].items()), candidates["qualifying"])
    log.info("negatives per row: mean %.2f (min %d, max %d); rows short: %d; random fills: %d in %d rows",
             negatives["mean"], negatives["min"], negatives["max"], negatives["rows_short"],
             negatives["filled_random"], negatives["rows_filled"])
    ranks = summary["positive_rank"]
    log.info("positives rank for their own queries: median %s, p95 %s (0: first); past the searched top %d: %d rows; "
             "rows rejected: %d; negatives that are another row's positive: %d", ranks.get("p50"), ranks.get("p95"),
             ranks["searched_top_k"], ranks["past_searched_depth"], summary["rows_rejected"],
             summary["other_positives"]["negatives_that_are_other_rows_positives"])


def write_similarities(step: StepRun, positives: np.ndarray, negatives: np.ndarray, title: str) -> None:
    """``similarities.npz`` (the sweep summary's plot reads it) and ``similarity.png`` in the run folder."""
    from prep.report.plots import similarity_histogram

    with atomic_file(step.run_dir / "similarities.npz", overwrite=True, binary=True) as handle:
        np.savez(handle, positive=positives, negative=negatives)
    similarity_histogram(step.run_dir / "similarity.png", positives, negatives, title)
