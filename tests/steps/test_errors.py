"""Rough edges of every step: each a clear line naming the key or file, early (before any model is loaded or
any output written), and exit status 2 on the command line."""

import json
import math
import signal
import subprocess
import sys
import time

import pytest

from prep.errors import OutputExistsError, UsageError
from prep.io.paths import SAMPLE_TRAIN
from prep.steps import mine, pipeline
from tests.conftest import ROOT, run_cli


@pytest.mark.parametrize("override, message", [
    ("miner.similarity_range=[nan,1]", "holds nan"),
    ("miner.absolute_margin=nan", "nan is not a margin"),
    ("miner.teacher_relative_margin=nan", "nan is not a margin"),
    ("miner.similarity_range=2-3", "outside [-1, 1]"),
    ("miner.search_batch_size=0", "miner.search_batch_size"),
    # issue 32, defects 5, 13 and 14: a negative seed, a device that does not exist, inf where nan is refused
    ("seed=-1", "seed: need a whole number from 0 to 4294967295, got -1"),
    ("hardware.devices=banana", "'banana' is not a device"),
    ("hardware.devices=[cpu,cuda:x]", "'cuda:x' is not a device"),
    ("miner.bm25_k1=inf", "miner.bm25_k1: need a finite number >= 0, got inf"),
    ("miner.absolute_margin=inf", "miner.absolute_margin: inf is not a margin"),
    ("miner.teacher_relative_margin=-inf", "miner.teacher_relative_margin: -inf is not a margin"),
    ("miner.similarity_range=[0.1,inf]", "holds inf"),
    ("probe.learning_rate=inf", "probe.learning_rate: need a finite number > 0"),
])
def test_values_that_would_mine_nothing_or_fail_late_are_refused(make_config, override, message):
    with pytest.raises(UsageError, match=message.replace("[", r"\[")):
        mine.run(make_config(override))


def test_a_similarity_window_past_one_is_fine_for_embeddings_that_are_not_normalised(make_config):
    from prep.config.settings import settings_of
    from prep.retrieval.sampling import MiningRules

    rules = MiningRules.from_settings(settings_of(make_config("miner.similarity_range=2-30",
                                                              "miner.normalize_embeddings=false")))
    assert rules.similarity_window == (2.0, 30.0) and not math.isnan(rules.similarity_window[0])


def test_a_missing_embedder_is_named_before_any_data_is_read(make_config, tmp_path):
    with pytest.raises(UsageError, match="miner.model_name_or_path: no such folder"):
        mine.run(make_config(f"miner.model_name_or_path={tmp_path / 'nope'}", f"input={tmp_path / 'not-read.jsonl'}"))
    assert not (tmp_path / "cache").exists()


def test_an_output_that_is_a_folder_is_refused_before_any_work(make_config, tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(OutputExistsError, match="is a folder"):
        mine.run(make_config(f"output={tmp_path / 'taken'}", "overwrite=true"))
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("override, message", [
    ("reranker=cross_encoder reranker.model_name_or_path=/no/such/reranker", "reranker.model_name_or_path"),
    ("splitter.model_name_or_path=/no/such/tokenizer", "splitter.model_name_or_path"),
    ("splitter.length_list=[0,5,5]", "splitter.length_list"),
])
def test_the_pipeline_finds_what_its_later_steps_need_before_mining(make_config, tmp_path, override, message):
    with pytest.raises(UsageError, match=message):
        pipeline.run(make_config("step=pipeline", *override.split()))
    assert not (tmp_path / "run" / "mined.jsonl").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("hardware, message", [
    ("gpu", "hardware.devices=cuda:0: torch sees no CUDA GPU"),
    ("multi_gpu", "hardware.devices=null with hardware.use_gpu_for_searching=true (hardware=multi_gpu): torch sees "
                  "no CUDA GPU"),
])
def test_gpu_settings_on_a_machine_without_cuda_exit_2_at_once(tmp_path, hardware, message):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    started = time.monotonic()
    result = run_cli("step=mine", f"hardware={hardware}", f"cache_dir={tmp_path / 'c'}", cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert message in result.stdout + result.stderr
    assert time.monotonic() - started < 60 and not (tmp_path / "c").exists()


def test_a_fixed_output_in_a_multirun_is_refused_at_the_first_job(tmp_path):
    out = tmp_path / "mined.jsonl"
    result = run_cli("-m", "step=mine", "miner.negative_number=2,3", f"output={out}",
                     f"cache_dir={tmp_path / 'c'}", cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    text = result.stdout + result.stderr
    assert "names one file for every job of this multirun" in text and "hydra:job.num" in text
    assert not out.exists()


@pytest.mark.slow
def test_sigterm_removes_the_run_s_temporary_folder(tmp_path):
    """docs/errors.md promises the .mine-* folder goes however the run ends; a scheduler ends runs with SIGTERM."""
    rows = [json.loads(line) for line in SAMPLE_TRAIN.read_text().splitlines()] * 30
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({**r, "query": f"{r['query']} {i}"}) + "\n" for i, r in enumerate(rows)))
    run = tmp_path / "run"
    process = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "step=mine", f"input={data}", f"run_dir={run}",
                                "cache=false", "hardware.use_bf16=false"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not list(run.glob(".mine-*/*")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be stopped"
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, output[-2000:]
    assert not list(run.glob(".mine-*")) and not (run / "mined.jsonl").exists()


def test_an_error_goes_to_stderr_and_the_run_s_progress_to_stdout(tmp_path):
    missing = tmp_path / "missing.jsonl"
    result = run_cli("step=mine", f"input={missing}", f"cache_dir={tmp_path / 'c'}", cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and errors[0].endswith(f"{missing}: no such file or folder")
    assert "[ERROR]" not in result.stdout and "[INFO]" in result.stdout


def test_a_refused_second_run_into_a_run_folder_leaves_its_hydra_record_as_it_was(tmp_path):
    run = tmp_path / "run"
    first = run_cli("step=mine", f"hydra.run.dir={run}", f"cache_dir={tmp_path / 'c'}", cwd=tmp_path, timeout=300)
    assert first.returncode == 0, first.stderr
    record = {path.name: path.read_bytes() for path in (run / ".hydra").iterdir()}
    assert set(record) == {"config.yaml", "hydra.yaml", "overrides.yaml"}
    second = run_cli("step=mine", "miner.negative_number=3", f"hydra.run.dir={run}", f"cache_dir={tmp_path / 'c'}",
                     cwd=tmp_path, timeout=300)
    assert second.returncode == 2 and "output exists; pass overwrite=true" in second.stderr
    assert {path.name: path.read_bytes() for path in (run / ".hydra").iterdir()} == record
