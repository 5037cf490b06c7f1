"""``miner.retriever=bm25|hybrid`` end to end on the bundled sample: candidates from the right lists, every negative's
source counted (and written with ``miner.write_sources``), the BM25 index from the cache on a second run."""

from __future__ import annotations

import numpy as np
import pytest

from prep.io import paths
from prep.io.jsonl import read_jsonl
from prep.retrieval.lexical import BM25Index
from prep.steps import mine

COMMON = ("miner.range_for_sampling=0-30", "miner.negative_number=5", "miner.fill_random=false")


def test_bm25_negatives_are_bm25_candidates_and_the_index_is_cached(make_config, tmp_path):
    first = mine.run(make_config(*COMMON, "miner.retriever=bm25", f"output={tmp_path / 'a.jsonl'}"))
    second = mine.run(make_config(*COMMON, "miner.retriever=bm25", f"output={tmp_path / 'b.jsonl'}"))
    assert (first["index"]["bm25_index_cached"], second["index"]["bm25_index_cached"]) == (False, True)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    pool = list(dict.fromkeys(row["text"] for row in read_jsonl(paths.SAMPLE_POOL)))
    rows = read_jsonl(paths.SAMPLE_TRAIN)
    _, ids = BM25Index.build(pool, 1.5, 0.75).search([row["query"] for row in rows], 30)
    for row, mined, row_ids in zip(rows, read_jsonl(tmp_path / "a.jsonl"), ids):
        allowed = {pool[i] for i in row_ids.tolist() if i >= 0} - {*row["pos"], row["query"]}
        assert set(mined["neg"]) <= allowed
    counts = first["negatives_by_retriever"]
    assert counts["bm25"] == sum(len(r["neg"]) for r in read_jsonl(tmp_path / "a.jsonl")) and counts["dense"] == 0


def test_hybrid_counts_and_writes_each_negatives_sources(make_config, tmp_path):
    summary = mine.run(make_config(*COMMON, "miner.retriever=hybrid", "miner.write_sources=true",
                                   "miner.similarity_range=[0.0,0.9]"))
    mined = read_jsonl(summary["output"])
    flat = [source for row in mined for source in row["neg_sources"]]
    assert all(len(row["neg_sources"]) == len(row["neg"]) for row in mined)
    assert set(flat) <= {"dense", "bm25", "dense+bm25"} and "bm25" in flat and "dense" in flat
    counts = summary["negatives_by_retriever"]
    assert counts["both"] == flat.count("dense+bm25")
    assert counts["bm25"] == flat.count("bm25") + counts["both"] and counts["dense"] == flat.count("dense") + \
        counts["both"]
    # the similarity window applies to every candidate, whichever list it came from
    assert all(0.0 <= s <= 0.9 for s in np.load(summary["summary"].replace("summary.json", "similarities.npz"))[
        "negative"])


@pytest.mark.parametrize("retriever", ["dense", "hybrid"])
def test_without_write_sources_rows_keep_their_keys(make_config, retriever):
    summary = mine.run(make_config(*COMMON, f"miner.retriever={retriever}"))
    assert all("neg_sources" not in row for row in read_jsonl(summary["output"]))
    assert summary["retriever"] == retriever


def test_hybrid_union_takes_its_share_of_places_from_each_list(make_config, tmp_path):
    """fusion=union over a window of the fused top 40: BM25's list wins bm25_share of the 40 places (a passage both
    lists hold is placed once), so no row has more BM25-only negatives than its share, and a larger share gives
    more; a negative's source names BM25 exactly when BM25's top 40, computed here, holds it."""
    pool = list(dict.fromkeys(row["text"] for row in read_jsonl(paths.SAMPLE_POOL)))
    rows = read_jsonl(paths.SAMPLE_TRAIN)
    _, lexical = BM25Index.build(pool, 1.5, 0.75).search([row["query"] for row in rows], 40)
    totals = {}
    for share, places in ((0.25, 10), (0.75, 30)):
        summary = mine.run(make_config(
            "miner.range_for_sampling=0-40", "miner.negative_number=40", "miner.fill_random=false",
            "miner.retriever=hybrid", "miner.fusion=union", f"miner.bm25_share={share}", "miner.write_sources=true",
            f"output={tmp_path / f'{share}.jsonl'}"))
        assert (summary["index"]["fusion"], summary["index"]["bm25_share"]) == ("union", share)
        totals[share] = 0
        for mined, lexical_ids in zip(read_jsonl(summary["output"]), lexical):
            bm25_texts = {pool[i] for i in lexical_ids.tolist() if i >= 0}
            assert all(("bm25" in source) == (text in bm25_texts)
                       for text, source in zip(mined["neg"], mined["neg_sources"]))
            only_bm25 = mined["neg_sources"].count("bm25")
            assert only_bm25 <= places
            totals[share] += only_bm25
    assert 0 < totals[0.25] < totals[0.75]
