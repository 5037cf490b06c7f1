"""Cross-row false negatives, positive-rank diagnostics with rejected rows, and kept input negatives: the pure
rules on fixed numbers, then mine runs on the bundled sample."""

from __future__ import annotations

import json

import pytest

from prep.config.values import RangeError
from prep.io import paths
from prep.io.jsonl import read_jsonl
from prep.retrieval import sampling
from prep.steps import mine


def test_positive_rank_counts_the_other_passages_that_beat_the_positive():
    ids, sims = [7, 3, 9, 1], [0.9, 0.8, 0.7, 0.6]
    assert sampling.positive_rank(ids, sims, {3}, 0.8, corpus_size=10) == 1  # only 7 beats it; 3 is its own
    assert sampling.positive_rank(ids, sims, set(), 0.95, corpus_size=10) == 0
    assert sampling.positive_rank(ids, sims, set(), 0.5, corpus_size=10) is None  # all 4 searched beat it: past depth
    assert sampling.positive_rank(ids, sims, set(), 0.5, corpus_size=4) == 4  # the whole corpus was searched


def test_claims_of_other_rows_and_kept_input_negatives():
    claims: dict[int, int] = {}
    for pid, row in [(5, 0), (6, 1), (7, 0), (7, 2), (9, 3), (9, 3)]:
        sampling.claim(claims, pid, row)
    assert claims == {5: 0, 6: 1, 7: sampling.SEVERAL, 9: 3}
    assert sampling.claimed_by_other_rows(claims, 0, [5, 6, 7, 8, 9]) == {6, 7, 9}
    assert sampling.claimed_by_other_rows(claims, 3, [5, 9]) == {5}
    assert sampling.kept_input_negatives(["a", "q", "b", "a", "p"], ["p"], "q") == ["a", "b"]


def test_other_positives_are_a_filter_of_their_own():
    kept, removed = sampling.qualifying_candidates([1, 2, 3, 4], [0.9, 0.8, 0.7, 0.6], sampling.Window((0, 4)), {1},
                                                   other_positive_ids={2, 1})
    assert [c.passage_id for c in kept] == [3, 4] and removed == {"positive_or_query": 1, "other_positive": 1}


@pytest.mark.parametrize("overrides, message", [
    (["miner.max_positive_rank=0"], "miner.max_positive_rank must be >= 1"),
    (["miner.other_positive_threshold=0.9"], "applies with miner.exclude_other_positives=true"),
    (["miner.exclude_other_positives=true", "miner.other_positive_threshold=1.5"], "need a similarity in"),
])
def test_bad_settings_name_their_key(make_config, overrides, message):
    with pytest.raises(RangeError, match=message):
        mine.run(make_config(*overrides))


def sample_run(make_config, tmp_path, name, *overrides):
    """The sample mined against its own passages (every row's positive is in the pool), ranks 0-60."""
    summary = mine.run(make_config(f"input={paths.SAMPLE_MINED}", "miner.range_for_sampling=0-60",
                                   "miner.negative_number=8", f"output={tmp_path / name}", *overrides))
    return summary, read_jsonl(tmp_path / name)


def test_other_rows_positives_are_counted_and_excluded(make_config, tmp_path):
    rows = read_jsonl(paths.SAMPLE_MINED)
    positive_rows: dict[str, set[int]] = {}
    for index, row in enumerate(rows):
        for text in row["pos"]:
            positive_rows.setdefault(text, set()).add(index)

    def others_in(mined):
        return sum(1 for index, row in enumerate(mined) for text in row["neg"]
                   if positive_rows.get(text, set()) - {index})

    plain, plain_rows = sample_run(make_config, tmp_path, "plain.jsonl")
    assert plain["other_positives"]["negatives_that_are_other_rows_positives"] == others_in(plain_rows) > 0
    assert plain["candidates"]["removed"]["other_positive"] == 0
    clean, clean_rows = sample_run(make_config, tmp_path, "clean.jsonl", "miner.exclude_other_positives=true")
    assert clean["other_positives"]["negatives_that_are_other_rows_positives"] == others_in(clean_rows) == 0
    assert clean["candidates"]["removed"]["other_positive"] > 0
    near, near_rows = sample_run(make_config, tmp_path, "near.jsonl", "miner.exclude_other_positives=true",
                                 "miner.other_positive_threshold=0.5")
    assert near["candidates"]["removed"]["other_positive"] > clean["candidates"]["removed"]["other_positive"]
    assert others_in(near_rows) == 0  # random fills take no other row's positive either


def test_rows_whose_positive_ranks_low_are_rejected_with_the_reason(make_config, tmp_path):
    everything, _ = sample_run(make_config, tmp_path, "all.jsonl")
    ranks = everything["positive_rank"]
    assert ranks["count"] + ranks["past_searched_depth"] == everything["rows"] and everything["rows_rejected"] == 0
    summary, kept = sample_run(make_config, tmp_path, "kept.jsonl", "miner.max_positive_rank=1")
    rejected = read_jsonl(tmp_path / "kept.rejected.jsonl")
    assert summary["rows_rejected"] == len(rejected) > 0 and len(kept) + len(rejected) == summary["rows"]
    assert all("its best positive ranks" in row["rejected"] and "max_positive_rank=1" in row["rejected"]
               for row in rejected)
    originals = {row["query"]: row for row in read_jsonl(paths.SAMPLE_MINED)}
    assert all({k: v for k, v in row.items() if k != "rejected"} == originals[row["query"]] for row in rejected)
    assert sorted(r["query"] for r in kept + rejected) == sorted(originals)
    # Named after its output: a second run into the folder has its own (issue 32, defect 12: they refused each other)
    again, _ = sample_run(make_config, tmp_path, "again.jsonl", "miner.max_positive_rank=1")
    assert again["rejected"] == str(tmp_path / "again.rejected.jsonl")
    assert (tmp_path / "again.rejected.jsonl").read_bytes() == (tmp_path / "kept.rejected.jsonl").read_bytes()
    (tmp_path / "kept.jsonl").unlink()  # its rejected file is checked at start with the output
    with pytest.raises(Exception, match="kept.rejected.jsonl: output exists"):
        sample_run(make_config, tmp_path, "kept.jsonl", "miner.max_positive_rank=1")


def test_an_output_named_rejected_keeps_the_mined_rows(make_config, tmp_path):
    """``output=o/rejected.jsonl`` once had its mined rows replaced by the rejected ones (with overwrite=true)."""
    summary, kept = sample_run(make_config, tmp_path, "rejected.jsonl", "miner.max_positive_rank=1", "overwrite=true")
    rejected = read_jsonl(tmp_path / "rejected.rejected.jsonl")
    assert summary["rejected"] == str(tmp_path / "rejected.rejected.jsonl")
    assert len(kept) == summary["rows"] - summary["rows_rejected"] and len(rejected) == summary["rows_rejected"] > 0
    assert read_jsonl(tmp_path / "rejected.jsonl") == kept and all("rejected" not in row for row in kept)


def test_kept_input_negatives_come_first_and_are_never_repeated(make_config, tmp_path):
    summary, mined = sample_run(make_config, tmp_path, "kept.jsonl", "miner.keep_input_negatives=true",
                                "miner.negative_number=18")
    for original, row in zip(read_jsonl(paths.SAMPLE_MINED), mined):
        own = sampling.kept_input_negatives(original["neg"], original["pos"], original["query"])
        assert row["neg"][:len(own)] == own
        assert len(row["neg"]) == len(set(row["neg"])) == max(18, len(own))
        assert not set(row["neg"]) & {*row["pos"], row["query"]}
    assert summary["input_negatives_kept"] == sum(
        len(sampling.kept_input_negatives(r["neg"], r["pos"], r["query"])) for r in read_jsonl(paths.SAMPLE_MINED))
    json.dumps(summary)
