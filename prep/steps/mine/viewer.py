"""The rows ``report.html`` shows (docs/tracking.md): a seeded sample of ``report.rows`` of the input
rows mined here, each with its query, positives and mined negatives, and per negative where it ranked, its
similarity to the query, which retriever found it (``random``: a fill; ``input``: a kept input negative), and whether
it is another row's positive or a near duplicate of one. People judge negatives by reading them (is this "negative"
really a positive?); these records are what the page's row viewer draws (``report/html.py``)."""

from __future__ import annotations

from typing import Any

from prep.steps.mine.records import Block, Claims
from prep.steps.mine.retrieve import negative_sources


def viewer_rows(block: Block, claims: Claims, wanted: frozenset[int]) -> list[dict[str, Any]]:
    """The viewer's records of the block's rows in ``wanted`` that were mined (not rejected), in input order."""
    rows = block.rows
    records = []
    for index, row in enumerate(rows.rows):
        number = rows.row_number(index)
        if number not in wanted or index in block.ranked.rejected:
            continue
        result, kept = block.selected.results[index], block.selected.kept_inputs[index]
        sources = negative_sources(block.searched, index, result)
        mined = [{"text": text, "rank": result.ranks[k] if k < result.window_count else None,
                  "similarity": round(float(result.similarities[k]), 4), "source": sources[k],
                  "other_positive": claims.exact.get(passage, number) != number,
                  "near_duplicate": claims.near is not None and claims.near.get(passage, number) != number}
                 for k, (passage, text) in enumerate(zip(result.negative_ids, rows.pool.take(result.negative_ids)))]
        records.append({"row": number, "query": row["query"], "pos": row["pos"],
                        "pos_similarity": [round(float(s), 4) for s in block.embedded.positive_similarities[index]],
                        "neg": [{"text": text, "rank": None, "similarity": None, "source": "input",
                                 "other_positive": False, "near_duplicate": False} for text in kept] + mined})
    return records
