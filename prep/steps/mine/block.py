"""One block of rows through ``step=mine``'s pipeline: encode its queries -> search -> rank its positives ->
qualify the candidates -> denoise them with the teacher -> select the negatives. Each stage returns what it made
and changes nothing it was given; ``mine_block`` returns them all as one ``Block``."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import numpy as np

from prep.cache.embeddings import CachedEncoder
from prep.cache.identity import fingerprint
from prep.models.teacher import query_text
from prep.retrieval import sampling
from prep.retrieval.denoise import denoise as teacher_denoise
from prep.steps.mine.records import (
    Block,
    Claims,
    Embedded,
    Mining,
    Qualified,
    Ranked,
    RowBlock,
    Searched,
    Selected,
    Shared,
)
from prep.steps.mine.retrieve import search

log = logging.getLogger(__name__)


def mine_block(mining: Mining, block: RowBlock, shared: Shared, claims: Claims) -> Block:
    """One block of rows end to end; only the block's rows are held."""
    embedded = encode_block(mining, block, shared)
    searched = search(mining, block, embedded, shared)
    ranked = rank_positives(mining, block, embedded, searched)
    qualified = qualify(mining, block, embedded, searched, claims)
    if shared.scores is not None:
        qualified = denoise(mining, block, qualified, shared)
    selected = select(mining, block, embedded, qualified, claims, shared)
    return Block(block, embedded, searched, ranked, qualified, selected)


def encode_block(mining: Mining, block: RowBlock, shared: Shared) -> Embedded:
    """A block's query embeddings, and each of its rows' similarity to its positives."""
    column = mining.step.settings.miner.query_instruction_from_row
    queries, query_key = encode_queries(shared.encoder, block.rows, column)
    with mining.step.phase("sample"):
        positives = positive_similarities(block, shared, queries)
    return Embedded(queries, query_key, positives)


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


def positive_similarities(block: RowBlock, shared: Shared, queries: np.ndarray) -> list[list[float]]:
    """Each row's similarity to each of its positives, reading the pool's chunks once for all rows (positives
    outside the pool from ``shared.outside``)."""
    inside_ids = [pid for ids in block.positive_ids for pid in ids if pid is not None]
    gathered = iter(shared.pool.rows(inside_ids) if inside_ids else ())
    result = []
    for index, (row, ids) in enumerate(zip(block.rows, block.positive_ids)):
        vectors = [next(gathered) if pid is not None else shared.outside[text] for text, pid in zip(row["pos"], ids)]
        result.append([float(vector @ queries[index]) for vector in vectors])
    return result


def rank_positives(mining: Mining, block: RowBlock, embedded: Embedded, searched: Searched) -> Ranked:
    """Where each row's best positive ranks among the other passages for its own query, and with
    ``miner.max_positive_rank`` the rows whose positive ranks there or lower (rejected, with the reason)."""
    limit = mining.rules.max_positive_rank
    ranks: list[int | None] = []
    rejected: dict[int, str] = {}
    with mining.step.phase("sample"):
        for index in range(len(block.rows)):
            own = {pid for pid in block.positive_ids[index] if pid is not None}
            rank = sampling.positive_rank(searched.ids[index], searched.similarities[index], own,
                                          max(embedded.positive_similarities[index]), len(block.pool))
            ranks.append(rank)
            if limit is not None and (rank is None or rank >= limit):
                where = f"rank {rank}" if rank is not None else f"below the top {searched.top_k} searched"
                rejected[index] = (f"its best positive ranks {where} for its own query "
                                   f"(miner.max_positive_rank={limit}): likely a wrong label")
    return Ranked(ranks, rejected)


def qualify(mining: Mining, block: RowBlock, embedded: Embedded, searched: Searched, claims: Claims) -> Qualified:
    """Each row's search results that pass the rank window, the exclusions, the similarity window and the
    margins (``sampling.qualifying_candidates``)."""
    rules = mining.rules
    removed: Counter = Counter({name: 0 for name in sampling.FILTERS})
    candidates = []
    with mining.step.phase("sample"):
        for index in range(len(block.rows)):
            others = claimed_by_others(mining, block.row_number(index), searched.ids[index], claims)
            kept, removed_here = sampling.qualifying_candidates(
                searched.ids[index], searched.similarities[index], rules.window, block.excluded(index),
                positive_similarity=min(embedded.positive_similarities[index]), other_positive_ids=others)
            candidates.append(kept)
            removed.update(removed_here)
    return Qualified(candidates, removed)


def claimed_by_others(mining: Mining, number: int, ranked_ids: np.ndarray, claims: Claims) -> set[int]:
    """With ``miner.exclude_other_positives``: the passages of input row ``number``'s rank window that other rows
    claim (their positives, and with a threshold their near duplicates)."""
    rules = mining.rules
    if not rules.exclude_other_positives:
        return set()
    window = ranked_ids[rules.rank_window[0]:rules.rank_window[1]].tolist()
    others = sampling.claimed_by_other_rows(claims.exact, number, window)
    if claims.near is not None:
        others |= sampling.claimed_by_other_rows(claims.near, number, window)
    return others


def denoise(mining: Mining, block: RowBlock, qualified: Qualified, shared: Shared) -> Qualified:
    """Drop candidates the teacher scores close to or above the row's positive (``retrieval.denoise``)."""
    settings = mining.step.settings
    rows = block.rows
    if settings.reranker.query_instruction_from_row:  # the teacher reads each query with its row's instruction
        rows = [{**row, "query": query_text(row, settings)} for row in rows]
    with mining.step.phase("teacher"):
        denoised = teacher_denoise(shared.scores, rows, block.pool, qualified.candidates, mining.rules)
    removed = Counter(qualified.removed)
    removed["teacher"] += denoised.removed
    return Qualified(denoised.kept, removed, denoised.not_needed, denoised.info, denoised.positive_scores)


def select(mining: Mining, block: RowBlock, embedded: Embedded, qualified: Qualified, claims: Claims,
           shared: Shared) -> Selected:
    """Each row's negatives (``sampling.mine_row``), with the similarity of its random fills added; and with
    ``miner.keep_input_negatives`` each row's own negatives kept, which the mined ones then never repeat."""
    rules = mining.rules
    kept_inputs = [sampling.kept_input_negatives(row.get("neg", []), row["pos"], row["query"])
                   if rules.keep_input_negatives else [] for row in block.rows]
    # Random fills never take another row's positive (or near duplicate) either; one set for every row.
    barred = frozenset({*claims.exact, *(claims.near or ())}) if rules.exclude_other_positives else frozenset()
    with mining.step.phase("sample"):
        results = []
        for index, own in enumerate(kept_inputs):
            excluded = block.excluded(index)
            candidates = qualified.candidates[index]
            if own:
                excluded |= {pid for pid in map(block.pool.id_of, own) if pid is not None}
                candidates = [c for c in candidates if c.passage_id not in excluded]
            fill = sampling.Fill(len(block.pool), excluded, barred)
            results.append(sampling.mine_row(block.row_number(index), candidates, rules, fill,
                                             wanted=max(0, rules.negative_number - len(own))))
        fills = [(index, pid) for index, r in enumerate(results) for pid in r.negative_ids[r.window_count:]]
        if fills:
            fill_embeddings = shared.pool.rows([pid for _, pid in fills])
            for (index, _), vector in zip(fills, fill_embeddings):
                results[index].similarities.append(float(vector @ embedded.queries[index]))
    return Selected(results, kept_inputs)
