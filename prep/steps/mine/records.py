"""What the phases of ``step=mine`` hand each other: each phase takes some of these and returns a new one."""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from prep.cache.embeddings import CachedEncoder, PoolEmbeddings
from prep.cache.store import Cache
from prep.io.pool import PassagePool
from prep.io.rowstore import RowStore
from prep.retrieval.sampling import Candidate, MiningRules, RowResult
from prep.steps.frame import StepRun

if TYPE_CHECKING:
    from prep.cache.scores import CachedScores
    from prep.retrieval.lexical import BM25Index


@dataclass
class Mining:
    """What every phase of one mine run may use: its step frame (settings, timer, output), rules and cache."""

    step: StepRun
    rules: MiningRules
    cache: Cache
    reproducible: dict[str, Any] = field(default_factory=dict)  # summary.json's: see ``summary.reproducible``
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
    them, or a shard's); ``labels`` names the files they came from (the summary's ``input``, ``candidate_pool``)."""

    store: RowStore
    pool: PassagePool
    placement: Placement
    labels: dict[str, str | None]
    span: range

    def block(self, span: range) -> RowBlock:
        """The rows of ``span`` (input row numbers), read."""
        return RowBlock(self.store.rows(span), self.pool, [self.placement.positive_ids(n) for n in span],
                        [self.placement.query_id(n) for n in span], span.start)


@dataclass
class RowBlock:
    """One block of ``miner.query_block`` rows, the pool, and where each of the block's positives and queries sit
    in it (None: not in the pool); ``first`` is the input row number of ``rows[0]``."""

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


@dataclass(frozen=True)
class Shared:
    """What every block of rows reads and none changes: the encoder, the pool's embeddings, the embeddings of every
    input row's positives that are not in the pool, the search depth, the teacher's cached scores (with
    ``miner.teacher_filter``) and the BM25 index (with ``miner.retriever=bm25|hybrid``)."""

    encoder: CachedEncoder
    pool: PoolEmbeddings
    outside: dict[str, np.ndarray]
    top_k: int
    scores: CachedScores | None = None
    lexical: BM25Index | None = None
    lexical_cached: bool = False


@dataclass
class Claims:
    """Pool passages that rows claim: ``exact``, passage id -> the row whose positive it is (``sampling.SEVERAL``:
    more than one row's); ``near``, the same for passages at least ``miner.other_positive_threshold`` similar to a
    row's positive (None without one). One number per passage, however many rows claim it."""

    exact: dict[int, int]
    near: dict[int, int] | None = None


@dataclass
class Embedded:
    """One block's query embeddings and each of its rows' similarity to its positives."""

    queries: np.ndarray
    query_key: str  # the queries' cache key, part of the search's
    positive_similarities: list[list[float]]  # each row's similarity to each of its positives


SOURCE_DENSE, SOURCE_BM25 = 1, 2
SOURCE_NAMES = {SOURCE_DENSE: "dense", SOURCE_BM25: "bm25", SOURCE_DENSE | SOURCE_BM25: "dense+bm25"}


@dataclass
class Searched:
    """Each query's candidates in rank order (id -1: none), their dense similarities, and with
    ``miner.retriever=bm25|hybrid`` which retrievers found each (``SOURCE_DENSE | SOURCE_BM25`` bits)."""

    similarities: np.ndarray
    ids: np.ndarray
    top_k: int
    index: dict[str, Any]
    sources: np.ndarray | None = None  # None: every candidate is the dense search's


@dataclass
class Ranked:
    """Where each row's best positive ranks for its own query (None: past the searched depth), and the rows
    ``miner.max_positive_rank`` rejects, with the reason."""

    ranks: list[int | None]
    rejected: dict[int, str]


@dataclass
class Qualified:
    """Each row's candidates that passed the filters, and how many each filter removed."""

    candidates: list[list[Candidate]]
    removed: Counter
    not_needed: int = 0  # with sampling_strategy=top and the teacher: candidates past those needed, never scored
    teacher: dict[str, Any] | None = None
    positive_scores: list[float] | None = None  # the teacher's score of each row's positive


@dataclass
class Selected:
    """Each row's mined negatives, and with ``miner.keep_input_negatives`` its own kept ones (written first)."""

    results: list[RowResult]
    kept_inputs: list[list[str]]


@dataclass
class Block:
    """What mining one block of rows made: for writing, and for the tally of the summary's figures."""

    rows: RowBlock
    embedded: Embedded
    searched: Searched
    ranked: Ranked
    qualified: Qualified
    selected: Selected
