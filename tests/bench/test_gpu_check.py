"""bench/gpu.py, the GPU check, run on the CPU at toy sizes: every measurement runs and agrees with its reference
(the GPU's figures themselves come from a GPU machine: README, "A GPU check")."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from prep.io.paths import SAMPLE_POOL, SAMPLE_TRAIN
from tests.conftest import ROOT


@pytest.mark.slow
def test_the_gpu_check_runs_each_measurement_at_toy_sizes_on_the_cpu(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(SAMPLE_POOL, corpus / "corpus.jsonl")
    shutil.copy(SAMPLE_TRAIN, corpus / "train.jsonl")
    script = str(ROOT / "bench" / "gpu.py")
    kit = tmp_path / "kit"
    made = subprocess.run([sys.executable, script, "--make-kit", "--no-wheels", "--kit", str(kit), "--corpus",
                           str(corpus)], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    assert (kit / "site" / "antlr4" / "__init__.py").is_file() and (kit / "tokenizer" / "vocab.txt").is_file()
    done = subprocess.run([sys.executable, script, "--kit", str(kit), "--smoke", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=600,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "toy sizes on the CPU" in done.stdout and "card: cpu" in done.stdout
    records = {record["check"]: record for record in map(json.loads, (tmp_path / "out" / "gpu.jsonl").open())}
    assert list(records) == ["encode", "search", "mine", "rerank"]
    assert records["encode"]["passages"] == 200 and records["encode"]["min_cosine_to_flagembedding"] >= 0.999
    assert records["search"]["top_k_overlap_with_bare"] == 1.0  # exact search on both sides
    assert records["mine"]["exit_status"] == 0 and records["mine"]["rows"] == 30
    assert records["mine"]["index"]["backend"] == "torch"
    assert records["rerank"]["pairs"] == 100 and records["rerank"]["max_score_difference"] < 1e-3
