"""``prep/contract.py``: a summary's record serialised and read back, and a summary checked against its record both
ways (the steps' tests check every real summary with ``summary_mismatches``)."""

from prep import contract


def shard(**changes):
    return contract.ShardRecord(**{"index": 1, "count": 3, "first_row": 57, "input_rows": 170, "digest": "d",
                                   **changes})


def test_a_field_omitted_when_none_is_left_out_and_others_are_written_as_null():
    assert contract.as_json(shard()) == {"index": 1, "count": 3, "first_row": 57, "input_rows": 170, "digest": "d"}
    assert contract.as_json(shard(rejected_digest="r"))["rejected_digest"] == "r"
    merged = contract.MergeSummary(3, 2, [contract.MergedPart(0, "a.jsonl", 3)], "parts", None)
    assert contract.as_json(merged) == {"rows": 3, "rows_out": 2, "parts": [{"shard": 0, "output": "a.jsonl",
                                                                             "rows": 3}],
                                        "input": "parts", "rejected": None}


def test_read_gives_back_the_nested_records():
    merged = contract.MergeSummary(3, 2, [contract.MergedPart(0, "a.jsonl", 3)], "parts", "r.jsonl")
    data = {"step": "merge", **contract.as_json(merged), "seconds": {"total": 1.0}}
    assert contract.read(contract.MergeSummary, data) == merged
    assert contract.read(contract.ShardRecord, contract.as_json(shard())) == shard()


def test_mismatches_name_a_key_that_is_no_field_and_a_field_that_is_no_key_nested_too():
    data = contract.as_json(contract.MergeSummary(3, 2, [contract.MergedPart(0, "a.jsonl", 3)], "parts", None))
    assert contract.mismatches(contract.MergeSummary, data) == []
    data["extra"] = 1
    del data["rows_out"]
    data["parts"][0].pop("rows")
    assert contract.mismatches(contract.MergeSummary, data) == [
        "extra: not a field of MergeSummary", "rows_out: missing", "parts[0].rows: missing"]
    assert contract.mismatches(contract.ShardRecord, contract.as_json(shard())) == []  # rejected_digest may be absent


def test_a_whole_summary_is_its_step_s_record_and_the_run_record():
    run = {"seconds": {"total": 1.0}, "output": "merged.jsonl", "summary": "s.json", "overrides": [], "seed": 42,
           "peak_memory_gb": 0.5, "config": {}}
    merged = contract.as_json(contract.MergeSummary(3, 2, [], "parts", None))
    assert contract.summary_mismatches({"step": "merge", **merged, **run}) == []
    assert contract.summary_mismatches({"step": "merge", **merged, **{**run, "seed": None}} | {"x": 1}) == [
        "x: not a field of MergeSummary"]
    assert contract.summary_mismatches({"step": "merge", **merged, **{k: v for k, v in run.items() if k != "seed"}}
                                       ) == ["seed: missing"]
