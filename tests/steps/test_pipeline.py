"""``step=pipeline``: mine, score and split in one run folder."""

import json

import pytest

from prep import contract
from prep.io.jsonl import read_jsonl


@pytest.mark.slow
def test_pipeline_end_to_end_on_the_bundled_defaults(make_config, tmp_path):
    from prep.steps import pipeline

    summary = pipeline.run(make_config("step=pipeline", "splitter.length_list=[0,64,128]"))
    run_dir = tmp_path / "run"
    scored = read_jsonl(run_dir / "scored.jsonl")
    assert len(scored) == summary["mine"]["rows"] == 170
    assert contract.summary_mismatches(summary) == []
    assert all(len(r["neg_scores"]) == len(r["neg"]) == 15 for r in scored)
    buckets = sorted((run_dir / "split").glob("*.jsonl"))
    assert buckets and sum(len(read_jsonl(p)) for p in buckets) == 170
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert {"mine", "score", "split"} <= set(on_disk) and on_disk["split"]["rows"] == 170
