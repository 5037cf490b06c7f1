"""``step=mine``: hard negatives for each training row, from a window of ranks and similarities.

The rules (README, "Mining rules"): the corpus is the candidate pool, or every ``pos`` and ``neg`` of
the input, deduplicated in first-seen order; search the top ``B`` passages of each query; keep ranks
``[A, B)``; drop passages equal to a positive or to the query; keep those within ``similarity_range``
and under the margins; optionally drop what the teacher scores too close to the positive; sample
``negative_number`` of them, seeded per row; fill a short row with random passages that are neither
positives, nor the query, nor chosen already.

``run`` reads as its phases: load (the rows checked, the pool, where each row's texts sit in it), prepare (the
pool's embeddings, the search depth), claim (whose positive each passage is), then for each block of
``miner.query_block`` rows
(``mine_block``): encode its queries, search, rank its positives, qualify, denoise, select; the blocks are
written as they are mined (write), and the tally of their figures is the summary (report). Each phase is a
function that takes what it needs and returns what it made.

Memory does not grow with the pool: its texts are an Arrow file (``io.pool``), its embeddings
chunks on disk (``cache.embeddings.PoolEmbeddings``) that the exact search reads one at a time, and
the output is written row by row (README, "Large pools: memory"). Nor does it grow with the rows beyond a few
bytes per row and negative: the input rows stay on disk and are read again a block at a time (``io.rowstore``),
and what every block needs of all of them (``Placement``, the claims) is arrays and numbers (README, "Large
training sets").
"""

from __future__ import annotations

import logging
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prep.cache.embeddings import CachedEncoder, PoolEmbeddings
from prep.cache.identity import fingerprint
from prep.cache.store import Cache
from prep.config.settings import settings_of
from prep.io.atomic import atomic_file
from prep.io.digest import digest
from prep.io.formats import Written, check_output, log_written, output_counts, write_rows
from prep.io.jsonl import check_training_row, with_instruction_check
from prep.io.paths import input_sources, rejected_beside
from prep.io.pool import PassagePool, corpus_texts, open_pool
from prep.io.rawjson import replaced
from prep.io.rowstore import ListRows, RowStore, SourceRows
from prep.io.sources import Reader
from prep.models.lengths import miner_lengths
from prep.models.runtime import check_devices
from prep.models.sources import check_model_source
from prep.report.stats import describe, table
from prep.retrieval import sampling
from prep.retrieval.sampling import Candidate, MiningRules, RowResult
from prep.steps.frame import StepRun

if TYPE_CHECKING:
    from prep.config.schema import Config

log = logging.getLogger(__name__)

PHASES = ("load", "encode", "search", "teacher", "sample", "write")


@dataclass
class Mining:
    """What every phase of one mine run may use: its step frame (settings, timer, output), rules and cache."""

    step: StepRun
    rules: MiningRules
    cache: Cache
    reproducible: dict[str, Any] = field(default_factory=dict)  # summary.json's: see ``reproducible``
    lengths: dict[str, Any] = field(default_factory=dict)  # summary.json's: each length and its source


@dataclass
class Placement:
    """Where every input row's positives and query sit in the pool, a few bytes per row: ``positives`` holds each
    row's positives in order (row ``r``'s at ``starts[r]:starts[r + 1]``), each a pool id or ``-1 - k`` for
    ``outside[k]``, a positive the pool lacks; ``queries`` each row's query id (-1: not in the pool)."""

    positives: np.ndarray
    starts: np.ndarray
    queries: np.ndarray
    outside: list[str]

    @classmethod
    def of(cls, rows: Iterable[dict[str, Any]], pool: PassagePool) -> Placement:
        positives, starts, queries = array("q"), array("q", [0]), array("q")
        outside: dict[str, int] = {}
        for row in rows:
            for text in row["pos"]:
                pid = pool.id_of(text)
                positives.append(pid if pid is not None else -1 - outside.setdefault(text, len(outside)))
            starts.append(len(positives))
            query = pool.id_of(row["query"])
            queries.append(-1 if query is None else query)
        return cls(np.frombuffer(positives, np.int64), np.frombuffer(starts, np.int64),
                   np.frombuffer(queries, np.int64), list(outside))

    def __len__(self) -> int:
        return len(self.queries)

    def positive_ids(self, number: int) -> list[int | None]:
        """Input row ``number``'s positives' pool ids (None: not in the pool)."""
        ids = self.positives[self.starts[number]:self.starts[number + 1]].tolist()
        return [pid if pid >= 0 else None for pid in ids]

    def query_id(self, number: int) -> int | None:
        query = int(self.queries[number])
        return None if query < 0 else query

    def owners(self) -> np.ndarray:
        """The input row number of each entry of ``positives``."""
        return np.repeat(np.arange(len(self), dtype=np.int64), np.diff(self.starts))

    @property
    def most_positives(self) -> int:
        return int(np.diff(self.starts).max()) if len(self) else 1


@dataclass
class Input:
    """Every input row (left on disk and read a block at a time: ``io.rowstore``), the deduplicated pool they are
    mined from, where each row's positives and query sit in it, and ``span``: the input rows mined here (all of
    them, or a shard's); ``sources`` names the files they came from."""

    store: RowStore
    pool: PassagePool
    placement: Placement
    sources: dict[str, str | None]
    span: range

    def block(self, span: range) -> Corpus:
        """The rows of ``span`` (input row numbers), read."""
        return Corpus(self.store.rows(span), self.pool, [self.placement.positive_ids(n) for n in span],
                      [self.placement.query_id(n) for n in span], span.start)


@dataclass
class Corpus:
    """One block of rows, the pool, and where each of the block's positives and queries sit in it (None: not in
    the pool); ``first`` is the input row number of ``rows[0]``."""

    rows: list[dict[str, Any]]
    pool: PassagePool
    positive_ids: list[list[int | None]]
    query_ids: list[int | None]
    first: int = 0

    def excluded(self, index: int) -> set[int]:
        """Pool ids a row may never take as negatives: its positives and its query."""
        return {i for i in [*self.positive_ids[index], self.query_ids[index]] if i is not None}

    def row_number(self, index: int) -> int:
        """The input row number of ``rows[index]``: what seeds its sampling and names it in the claims."""
        return self.first + index


@dataclass
class Pooled:
    """What every block of rows shares: the encoder, the pool's embeddings, the embeddings of every input row's
    positives that are not in the pool, the search depth, and the teacher's cached scores."""

    encoder: CachedEncoder
    pool: PoolEmbeddings
    outside: dict[str, np.ndarray]
    top_k: int
    scores: Any = None  # CachedScores of the teacher, with miner.teacher_filter
    lexical: Any = None  # the BM25 index (miner.retriever=bm25|hybrid), loaded or built by the first block
    lexical_cached: bool = False


@dataclass
class Embedded:
    """One block's query embeddings and each of its rows' similarity to its positives."""

    pool: PoolEmbeddings
    queries: np.ndarray
    query_key: str  # the queries' cache key, part of the search's
    positive_similarities: list[list[float]]  # each row's similarity to each of its positives
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
    """Pool passages that rows claim: ``exact``, passage id -> the row whose positive it is (``sampling.SEVERAL``:
    more than one row's); ``near``, the same for passages at least ``miner.other_positive_threshold`` similar to a
    row's positive (None without one). One number per passage, however many rows claim it."""

    exact: dict[int, int]
    near: dict[int, int] | None = None


@dataclass
class Qualified:
    """Each row's candidates that passed the filters, and how many each filter removed."""

    candidates: list[list[Candidate]]
    removed: Counter
    not_needed: int = 0  # with sampling_strategy=top and the teacher: candidates past those needed, never scored
    teacher: dict[str, Any] | None = None
    positive_scores: list[float] | None = None  # the teacher's score of each row's positive


@dataclass
class Block:
    """What mining one block of rows made, for writing."""

    corpus: Corpus
    searched: Searched
    results: list[RowResult]
    kept_inputs: list[list[str]]  # miner.keep_input_negatives: each row's own negatives kept, before its mined ones
    ranked: Ranked


class Tally:
    """The summary's figures, added up block by block: counts as numbers, distributions as float32 and int32 arrays
    (a few bytes per negative), so that nothing else of a block outlives it (README, "Large training sets")."""

    def __init__(self) -> None:
        self.rows = self.rejected = self.stale = self.own = self.other_positives = 0
        self.qualifying = self.not_needed = 0
        self.removed: Counter = Counter({name: 0 for name in sampling.FILTERS})
        self.by_retriever: Counter = Counter({"dense": 0, "bm25": 0, "both": 0, "random": 0})
        self.arrays: dict[str, list[np.ndarray]] = {name: [] for name in (
            "counts", "filled", "positives", "negatives", "window", "ranks", "positive_ranks", "teacher_positive")}
        self.teacher: dict[str, Any] | None = None
        self.index: dict[str, Any] = {}

    def add(self, block: Block, embedded: Embedded, qualified: Qualified, claims: Claims) -> None:
        kept = [index for index in range(len(block.corpus.rows)) if index not in block.ranked.rejected]
        results = [block.results[index] for index in kept]
        own = [len(block.kept_inputs[index]) for index in kept]
        add = {
            "counts": ([len(r.negative_ids) + o for r, o in zip(results, own)], np.int32),
            "filled": ([len(r.negative_ids) - r.window_count for r in results], np.int32),
            "positives": ([s for index in kept for s in embedded.positive_similarities[index]], np.float32),
            "negatives": ([s for r in results for s in r.similarities], np.float32),
            "window": ([s for r in results for s in r.similarities[:r.window_count]], np.float32),
            "ranks": ([rank for r in results for rank in r.ranks], np.int32),
            "positive_ranks": ([-1 if rank is None else rank for rank in block.ranked.ranks], np.int32),
            "teacher_positive": (qualified.positive_scores or [], np.float32),
        }
        for name, (values, dtype) in add.items():
            self.arrays[name].append(np.asarray(values, dtype=dtype))
        self.rows += len(block.corpus.rows)
        self.rejected += len(block.ranked.rejected)
        self.stale += sum(1 for row in block.corpus.rows if "neg_scores" in row)
        self.own += sum(own)
        self.other_positives += other_positive_negatives(block.corpus, claims, block.results, block.kept_inputs, kept)
        self.removed.update(qualified.removed)
        self.qualifying += sum(len(q) for q in qualified.candidates)
        self.not_needed += qualified.not_needed
        self.by_retriever.update(negatives_by_retriever(block.searched, block.results, kept))
        self.teacher = qualified.teacher  # the teacher's pair counts are its cache's, cumulative over the blocks
        self.index = block.searched.index

    def values(self, name: str) -> np.ndarray:
        parts = self.arrays[name]
        return np.concatenate(parts) if parts else np.empty(0)


def run(cfg: Any, rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Mine the input file's rows, or ``rows`` when given (``step=probe`` mines its training rows, already read
    and checked)."""
    settings = settings_of(cfg)
    check_model_source(settings.miner.model_name_or_path, "miner.model_name_or_path", settings.miner.cache_dir)
    resolved = miner_lengths(settings)
    settings = resolved.settings  # the numbers a finished shard's summary holds, too
    if settings.shard.count > 1 and (done := finished_shard(settings)) is not None:
        return done
    check_devices(settings.hardware)
    mining = Mining(StepRun(settings, "mine", default_output="mined.jsonl"), MiningRules.from_settings(settings),
                    Cache(settings.cache_dir, settings.cache), lengths=resolved.summary())
    if mining.rules.max_positive_rank is not None:
        check_output(rejected_path(mining.step), settings.overwrite)
    teacher = None
    if mining.rules.teacher_filter:
        from prep.models.teacher import make_teacher

        teacher = make_teacher(settings)  # a missing teacher model fails here, before any encoding
        mining.lengths.update(teacher.lengths)
    with mining.step.phase("load"):  # the first FlagEmbedding import (torch, transformers): most of the load phase
        mining.reproducible = reproducible(settings, teacher)
    # The pool's texts (an Arrow file) and, with cache=false, its embeddings live in this folder.
    with mining.step.work_dir(".mine-") as work_dir:
        source = load(mining, Path(work_dir), rows)
        with source.pool:
            pooled = prepare(mining, source, Path(work_dir), teacher)
            claims = claim_positives(mining, source, pooled)
            tally = Tally()
            spans = query_blocks(source.span, settings.miner.query_block)
            blocks = (mine_block(mining, source.block(span), pooled, claims, tally, (number, len(spans)))
                      for number, span in enumerate(spans))
            written = write(mining, blocks)
    return report(mining, source, pooled, tally, written)


def reproducible(settings: Config, teacher: Any) -> dict[str, Any]:
    """Whether output bytes hold across ``miner.query_block``, shards and the cache's history (README,
    "Reproducible"): the embeddings' answer, or the teacher's where ``miner.teacher_filter`` uses one that holds
    less; said in the log at start when it does not hold."""
    from prep.models.embedder import reproducibility

    found = reproducibility(settings.miner, settings.hardware)
    if teacher is not None and found["across_batches"] is True:
        scored = teacher.reproducible()
        if scored["across_batches"] is not True:
            found = {**scored, "why": f"teacher: {scored['why']}"}
    if found["across_batches"] is not True:
        log.warning("the output may change with miner.query_block, shards and what the cache held: %s", found["why"])
    return found


def query_blocks(rows: range, size: int) -> list[range]:
    """The rows (a span of input row numbers) in blocks of ``size`` (``miner.query_block``), mined one after the
    other (one empty block for no rows)."""
    return [range(start, min(start + size, rows.stop)) for start in range(rows.start, rows.stop, size)] or [
        range(rows.start, rows.start)]


def mine_block(mining: Mining, corpus: Corpus, pooled: Pooled, claims: Claims, tally: Tally,
               position: tuple[int, int]) -> Block:
    """One block of rows end to end: its queries encoded, searched, its positives ranked, the candidates qualified
    (and denoised), the negatives selected; its figures added to ``tally``. Only the block's rows are held."""
    if position[1] > 1:
        log.info("block %d of %d: rows %d to %d", position[0] + 1, position[1], corpus.first,
                 corpus.first + len(corpus.rows) - 1)
    embedded = encode_block(mining, corpus, pooled)
    searched = search(mining, corpus, embedded, pooled)
    ranked = rank_positives(mining, corpus, embedded, searched)
    qualified = qualify(mining, corpus, embedded, searched, claims)
    if pooled.scores is not None:
        qualified = denoise(mining, corpus, qualified, pooled.scores)
    results, kept_inputs = select(mining, corpus, embedded, qualified, claims)
    block = Block(corpus, searched, results, kept_inputs, ranked)
    tally.add(block, embedded, qualified, claims)
    return block


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
            for leftover in (folder / "mined.jsonl", rejected_beside(folder / "mined.jsonl")):
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


def load(mining: Mining, work_dir: Path, rows: list[dict[str, Any]] | None) -> Input:
    """The training rows (read and checked, then left on disk, unless given), the deduplicated pool (an Arrow file
    in ``work_dir``: the pool file's texts, or every row's ``pos`` and ``neg`` read as the rows are checked), where
    each row's positives and query sit in it, and the rows this run mines (a shard's with ``shard.count > 1``)."""
    source, pool_source = input_sources(mining.step.settings)
    reader = Reader.of(mining.step.settings)
    shard = mining.step.settings.shard
    with mining.step.phase("load"):
        if rows is None:
            store: RowStore = SourceRows(source, reader.columns, row_check(mining.step.settings),
                                         reader.datasets_cache or str(work_dir / "datasets"))
            scanned = store.scan()
        else:
            store = ListRows(rows)
            scanned = iter(rows)
        if pool_source is None:
            pool = PassagePool.build(corpus_texts(scanned, None), work_dir)
        else:
            for _ in scanned:  # every row checked before the pool is read
                pass
            pool = open_pool([], pool_source, work_dir, reader)
        placement = Placement.of(store, pool)
    log.info("%d rows from %s; corpus of %d distinct passages%s", len(store), source.label, len(pool),
             f" from {pool_source.label}" if pool_source else " (pos and neg of the input)")
    span = range(len(store))
    if shard.count > 1:
        span = row_block(len(store), shard.index, shard.count)
        log.info("shard %d of %d: rows %d to %d of %d", shard.index, shard.count, span.start, span.stop - 1,
                 len(store))
    return Input(store, pool, placement,
                 {"input": source.label, "candidate_pool": pool_source.label if pool_source else None}, span)


def row_check(settings: Config) -> Callable[[dict[str, Any]], None]:
    """A training row's check, with the per-row instruction columns the run reads (the miner's, and the teacher's
    when ``miner.teacher_filter`` scores)."""
    check = with_instruction_check(check_training_row, settings.miner.query_instruction_from_row)
    if settings.miner.teacher_filter:
        check = with_instruction_check(check, settings.reranker.query_instruction_from_row)
    return check


def row_block(rows: int, index: int, count: int) -> range:
    """Shard ``index`` of ``count``: a contiguous block of the rows, the first ``rows % count`` blocks one row
    longer, so that the blocks in shard order are the input in its order."""
    size, longer = divmod(rows, count)
    start = index * size + min(index, longer)
    return range(start, start + size + (index < longer))


def prepare(mining: Mining, source: Input, work_dir: Path, teacher: Any) -> Pooled:
    """What every block needs: the pool's embeddings (chunks on disk), those of positives outside the pool (every
    input row's: other rows' positives are claimed, near duplicates included; encoded only for similarities), the
    search depth, and the teacher's score cache."""
    settings = mining.step.settings
    encoder = CachedEncoder(settings.miner, settings.hardware, mining.cache, mining.step.timer, settings.cache_dtype,
                            settings.encode_chunk)
    pool_embeddings = encoder.pool_embeddings(source.pool, work_dir)
    outside = source.placement.outside
    outside_embeddings = encoder.passages(outside) if outside else np.empty((0, 0), np.float32)
    scores = None
    if teacher is not None:
        from prep.cache.scores import CachedScores

        scores = CachedScores(teacher, mining.cache)
    return Pooled(encoder, pool_embeddings, dict(zip(outside, outside_embeddings)), search_depth(mining, source),
                  scores)


def search_depth(mining: Mining, source: Input) -> int:
    """How many passages each query's search returns: the rank window's end (deep enough to see a positive at rank
    ``miner.max_positive_rank``), clamped to the pool; the same for every block and shard of the input."""
    low, high = mining.rules.rank_window
    if mining.rules.max_positive_rank is not None:
        high = max(high, mining.rules.max_positive_rank + source.placement.most_positives)
    if high > len(source.pool):
        log.warning("range_for_sampling %d-%d reaches past the corpus of %d passages: searching the top %d",
                    low, high, len(source.pool), len(source.pool))
    return min(high, len(source.pool))


def encode_block(mining: Mining, corpus: Corpus, pooled: Pooled) -> Embedded:
    """A block's query embeddings, and each of its rows' similarity to its positives."""
    column = mining.step.settings.miner.query_instruction_from_row
    queries, query_key = encode_queries(pooled.encoder, corpus.rows, column)
    with mining.step.phase("sample"):
        positives = positive_similarities(corpus, pooled.pool, pooled.outside, queries)
    return Embedded(pooled.pool, queries, query_key, positives, pooled.outside)


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


def search(mining: Mining, corpus: Corpus, embedded: Embedded, pooled: Pooled) -> Searched:
    """The top ``pooled.top_k`` passages of each query of the block."""
    from prep.cache.searches import CachedSearch

    top_k = pooled.top_k
    miner = mining.step.settings.miner
    if miner.retriever == "dense":
        similarities, ids, index = CachedSearch(mining.step.settings, mining.cache, mining.step.timer, top_k).run(
            embedded.pool, embedded.queries, embedded.query_key)
        return Searched(similarities, ids, top_k, index)
    from prep.retrieval.lexical import bm25_index, rrf_fuse, union_fuse

    with mining.step.phase("search"):
        if pooled.lexical is None:
            pooled.lexical, pooled.lexical_cached = bm25_index(corpus.pool, mining.cache, miner.bm25_k1, miner.bm25_b)
        _, lexical_ids = pooled.lexical.search([row["query"] for row in corpus.rows], top_k)
    index = {"retriever": str(miner.retriever), "bm25_index_cached": pooled.lexical_cached}
    sources = np.where(lexical_ids >= 0, SOURCE_BM25, 0).astype(np.int8)
    ids = lexical_ids
    if miner.retriever == "hybrid":
        _, dense_ids, dense_index = CachedSearch(mining.step.settings, mining.cache, mining.step.timer, top_k).run(
            embedded.pool, embedded.queries, embedded.query_key)
        index.update(dense_index, fusion=str(miner.fusion), rrf_k=miner.rrf_k, bm25_share=miner.bm25_share)
        ids = np.full_like(lexical_ids, -1)
        for row in range(len(ids)):
            ranked = [dense_ids[row].tolist(), lexical_ids[row].tolist()]
            fused = (rrf_fuse(ranked, miner.rrf_k, top_k) if miner.fusion == "rrf"
                     else union_fuse(ranked, [1 - miner.bm25_share, miner.bm25_share], top_k))
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
    return Ranked(ranks, rejected)


NEAR_DEPTH = 32  # neighbours of each positive looked at for near duplicates


def claim_positives(mining: Mining, source: Input, pooled: Pooled) -> Claims:
    """Which pool passages are some row's positive and, with ``miner.other_positive_threshold``, which are near
    duplicates of one (among each positive's ``NEAR_DEPTH`` nearest passages). Claims name input row numbers (a
    shard's rows are claimed by the whole input's)."""
    placement = source.placement
    owners = placement.owners()
    exact: dict[int, int] = {}
    for number, pid in zip(owners.tolist(), placement.positives.tolist()):
        if pid >= 0:
            sampling.claim(exact, pid, number)
    threshold = mining.rules.other_positive_threshold
    if threshold is None:
        return Claims(exact)
    from prep.retrieval.search import search as exact_search

    near: dict[int, int] = {}
    outside = [pooled.outside[text] for text in placement.outside]
    block = mining.step.settings.miner.query_block
    for start in range(0, len(placement.positives), block):  # the positives' embeddings a block at a time
        ids = placement.positives[start:start + block]
        inside = iter(pooled.pool.rows(ids[ids >= 0]) if (ids >= 0).any() else ())
        vectors = np.stack([next(inside) if pid >= 0 else outside[-1 - pid] for pid in ids.tolist()])
        with mining.step.phase("search"):
            similarities, neighbours = exact_search(pooled.pool, vectors.astype(np.float32),
                                                    min(NEAR_DEPTH, len(source.pool)),
                                                    batch_size=mining.step.settings.miner.search_batch_size)
        for owner, row_similarities, row_ids in zip(owners[start:start + block].tolist(), similarities, neighbours):
            for similarity, pid in zip(row_similarities.tolist(), row_ids.tolist()):
                if pid >= 0 and similarity >= threshold:
                    sampling.claim(near, pid, owner)
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


def denoise(mining: Mining, corpus: Corpus, qualified: Qualified, scores: Any) -> Qualified:
    """Drop candidates the teacher scores close to or above the row's positive (``retrieval.denoise``)."""
    from prep.models.teacher import query_text
    from prep.retrieval.denoise import denoise as teacher_denoise

    settings = mining.step.settings
    rows = corpus.rows
    if settings.reranker.query_instruction_from_row:  # the teacher reads each query with its row's instruction
        rows = [{**row, "query": query_text(row, settings)} for row in rows]
    with mining.step.phase("teacher"):
        denoised = teacher_denoise(scores, rows, corpus.pool, qualified.candidates, mining.rules)
    removed = Counter(qualified.removed)
    removed["teacher"] += denoised.removed
    return Qualified(denoised.kept, removed, denoised.not_needed, denoised.info, denoised.positive_scores)


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
    """``NAME.rejected.jsonl`` beside the output ``NAME.jsonl`` (or ``NAME.parquet``, or the folder ``NAME``): the
    rows ``miner.max_positive_rank`` rejects, each with its reason. Named after the output, so that it can never be
    the output, nor another run's output or rejected file in the same folder."""
    return rejected_beside(step.output)


def write(mining: Mining, blocks: Iterator[Block]) -> Written:
    """The rows with their new ``neg`` (after their own kept ones), written block by block as each block is mined,
    their texts read from the pool as they are written; rejected rows go to ``NAME.rejected.jsonl`` with the reason, as
    they came. The write phase's seconds are the writing's, not the mining of the blocks it waits for.

    A row's ``neg_scores`` scored its old negatives: FlagEmbedding's distillation would read them as the
    new ones' teacher scores, so they are dropped (``step=score`` fills them again); ``pos_scores`` stays,
    as ``pos`` does."""
    step = mining.step
    rejected: list[dict[str, Any]] = []
    mining_seconds = [0.0]

    def output_rows() -> Iterator[dict[str, Any]]:
        for block in timed(blocks, mining_seconds):
            corpus = block.corpus
            for i, row in enumerate(corpus.rows):
                if i in block.ranked.rejected:
                    rejected.append(replaced(row, rejected=block.ranked.rejected[i]))
                    continue
                sources = None
                if step.settings.miner.write_sources:
                    sources = ["input"] * len(block.kept_inputs[i]) + negative_sources(block.searched, i,
                                                                                        block.results[i])
                yield mined_row(row, block.kept_inputs[i] + corpus.pool.take(block.results[i].negative_ids), sources)

    started = time.perf_counter()
    written = write_rows(step.output, output_rows(), step.settings.output_format, step.settings.overwrite,
                         mining.rules.negative_number)
    if mining.rules.max_positive_rank is not None:
        write_rows(rejected_path(step), rejected, overwrite=step.settings.overwrite)
    step.timer.add("write", time.perf_counter() - started - mining_seconds[0])
    log_written(written, step.settings.output_format)
    return written


def timed(items: Iterator[Any], seconds: list[float]) -> Iterator[Any]:
    """``items``, adding to ``seconds[0]`` the time spent making each."""
    iterator = iter(items)
    while True:
        began = time.perf_counter()
        try:
            item = next(iterator)
        except StopIteration:
            seconds[0] += time.perf_counter() - began
            return
        seconds[0] += time.perf_counter() - began
        yield item


def mined_row(row: dict[str, Any], negatives: list[str], sources: list[str] | None = None) -> dict[str, Any]:
    """``row`` with ``neg`` replaced (and ``neg_sources`` with ``miner.write_sources``) and its stale ``neg_scores``
    dropped; every other key as it came."""
    extra = {} if sources is None else {"neg_sources": sources}
    return replaced(row, removed=("neg_scores",), neg=negatives, **extra)


def report(mining: Mining, source: Input, pooled: Pooled, tally: Tally, written: Written) -> dict[str, Any]:
    """The summary (README, "Mining rules") from the blocks' tally, the log's tables, ``similarities.npz`` and
    ``similarity.png``."""
    rules = mining.rules
    positives, negatives = tally.values("positives"), tally.values("negatives")
    if tally.rejected:
        log.warning("%d of %d rows rejected: their positive ranks %d or lower for their own query (%s)",
                    tally.rejected, tally.rows, rules.max_positive_rank, rejected_path(mining.step))
    if tally.stale:
        log.warning("%d rows had neg_scores for their old negatives: removed (step=score adds scores for the new "
                    "ones)", tally.stale)
    teacher = tally.teacher
    if teacher is not None:
        teacher = {**teacher, "candidates_not_needed": tally.not_needed,
                   "positive_score": describe(tally.values("teacher_positive"))}
    summary = {
        "rows": tally.rows,
        "corpus_size": len(source.pool),
        "negatives": negative_counts(tally.values("counts"), tally.values("filled"), rules.negative_number),
        "candidates": {"in_window": sum(tally.removed.values()) + tally.qualifying + tally.not_needed,
                       "removed": dict(tally.removed), "qualifying": tally.qualifying,
                       "not_needed": tally.not_needed},
        "sampling_strategy": rules.sampling_strategy,
        "teacher_filter": teacher,
        "similarity": {"positive": describe(positives), "negative": describe(negatives),
                       "negative_window": describe(tally.values("window"))},
        "negative_rank": describe(tally.values("ranks")),
        "searched_top_k": pooled.top_k,
        "index": tally.index,
        "cache": mining.cache.stats(),
        "encoded": pooled.encoder.encoded,
        "scores_removed": {"neg_scores": tally.stale},
        "output_format": output_counts(mining.step.settings.output_format, written),
        "positive_rank": positive_rank_summary(tally.values("positive_ranks"), pooled.top_k),
        "rows_rejected": tally.rejected,
        "rejected": str(rejected_path(mining.step)) if rules.max_positive_rank is not None else None,
        "other_positives": {"negatives_that_are_other_rows_positives": tally.other_positives},
        "input_negatives_kept": tally.own,
        "retriever": str(mining.step.settings.miner.retriever),
        "reproducible": mining.reproducible,
        "lengths": mining.lengths,
        "negatives_by_retriever": dict(tally.by_retriever),
        **source.sources,
    }
    shard = mining.step.settings.shard
    if shard.count > 1:  # step=merge joins the parts in this order, once their digests match what was written
        summary["shard"] = {"index": shard.index, "count": shard.count, "first_row": source.span.start,
                            "input_rows": len(source.store), "digest": digest(mining.step.output)}
        if rules.max_positive_rank is not None:
            summary["shard"]["rejected_digest"] = digest(rejected_path(mining.step))
    log_summary(summary)
    write_similarities(mining.step, positives.astype(np.float32), negatives.astype(np.float32),
                       f"{tally.rows} rows, ranks {rules.rank_window[0]}-{rules.rank_window[1]}, "
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


def positive_rank_summary(ranks: np.ndarray, top_k: int) -> dict[str, Any]:
    """Percentiles of where rows' best positives rank for their own queries (0: first), and how many rank past the
    searched depth (-1 in ``ranks``)."""
    found = ranks[ranks >= 0]
    return {**describe(found), "past_searched_depth": int(len(ranks) - len(found)), "searched_top_k": top_k}


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


def negative_counts(counts: np.ndarray, filled: np.ndarray, wanted: int) -> dict[str, Any]:
    """Negatives per written row (``counts``: mined and kept own ones; ``filled``: of those, random fills)."""
    if not len(counts):  # every row rejected
        return {"mean": 0.0, "min": 0, "max": 0, "rows_short": 0, "filled_random": 0, "rows_filled": 0}
    return {"mean": round(float(np.mean(counts)), 4), "min": int(counts.min()), "max": int(counts.max()),
            "rows_short": int((counts < wanted).sum()), "filled_random": int(filled.sum()),
            "rows_filled": int((filled > 0).sum())}


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
