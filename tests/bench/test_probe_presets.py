"""bench/probe_presets.py, the probe's calibration against full training: its Kendall tau, and the probe jobs
it asks for (the sweep of presets and the in-batch arm's job, with the extra overrides)."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest

from tests.bench import bench_script


@pytest.mark.parametrize(("second", "tau"), [
    ({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}, 1.0),
    ({"a": 5, "b": 4, "c": 3, "d": 2, "e": 1}, -1.0),
    ({"a": 2, "b": 1, "c": 3, "d": 4, "e": 5}, 0.8),  # one pair of ten swapped
    ({"a": 1, "b": 1, "c": 3, "d": 4, "e": 5}, 0.9),  # a tie counts as neither
])
def test_kendall_tau_counts_agreeing_and_disagreeing_pairs(second, tau):
    first = {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4, "e": 0.5}
    assert bench_script("probe_presets").kendall_tau(first, second) == tau


def test_the_presets_run_as_one_sweep_and_the_in_batch_arm_as_a_job_with_no_negatives(tmp_path, monkeypatch):
    module = bench_script("probe_presets")
    commands = []

    def fake_run(command, **_):
        commands.append(command)
        sweep = tmp_path / next(c for c in command if c.startswith("hydra.sweep.dir=")).split("=", 1)[1]
        sampling = next(c for c in command if c.startswith("sampling=")).split("=", 1)[1].split(",")
        for job, preset in enumerate(sampling):
            (sweep / str(job)).mkdir(parents=True)
            (sweep / str(job) / "summary.json").write_text(json.dumps(
                {"overrides": [f"sampling={preset}"], "objective": 0.5 + job / 10}))
        (sweep / "sweep_summary.csv").write_text("")

    monkeypatch.setattr(module.subprocess, "run", fake_run)
    args = argparse.Namespace(dir=tmp_path, presets=["flagembedding", "top_k", "in_batch"],
                              extra=["probe.negatives=7", "miner.negative_number=5"], tag="_n7")
    arms = module.probe_sweep(args, tmp_path / "corpus", 30, 16, 1)
    assert {arm: summary["objective"] for arm, summary in arms.items()} == {
        "flagembedding": 0.5, "top_k": 0.6, "in_batch": 0.5}
    sweep, in_batch = commands
    assert "sampling=flagembedding,top_k" in sweep and "probe.negatives=7" in sweep
    # Mined as full training mined (ranks 2-200), with what the extra overrides change (5 negatives, not 7).
    assert "miner.range_for_sampling=2-200" in sweep
    assert [c for c in sweep if c.startswith("miner.negative_number=")] == ["miner.negative_number=5"]
    assert f"hydra.sweep.dir={tmp_path / 'sweep_30x16_seed1_n7'}" in sweep
    assert ["probe.steps=30", "probe.batch_size=16", "seed=1"] == [c for c in sweep if c.split("=")[0] in (
        "probe.steps", "probe.batch_size", "seed")]
    # The in-batch arm trains on no mined negatives, whatever the extra overrides say.
    assert [c for c in in_batch if c.startswith("probe.negatives=")] == ["probe.negatives=0"]
    assert "probe.steps=30" in in_batch and "seed=1" in in_batch
    assert f"hydra.sweep.dir={tmp_path / 'sweep_30x16_seed1_n7_in_batch'}" in in_batch
    module.probe_sweep(args, tmp_path / "corpus", 30, 16, 1)
    assert len(commands) == 2  # done sweeps are read back, not run again


def test_against_pairs_each_arm_with_its_twin_of_another_tag_query_by_query(tmp_path):
    """--against: an arm of this tag minus the same arm of finished sweeps of another tag, over the same dev queries;
    a tag without finished sweeps is refused, not run."""
    module = bench_script("probe_presets")

    def finished(tag: str, seed: int, ndcg: dict[str, list[float]]) -> dict[str, dict]:
        runs = {}
        for name, presets in ((f"sweep_15x16_seed{seed}{tag}", ["top_k"]),
                              (f"sweep_15x16_seed{seed}{tag}_in_batch", ["in_batch"])):
            for job, preset in enumerate(presets):
                folder = tmp_path / name / str(job)
                folder.mkdir(parents=True)
                summary = {"overrides": [f"sampling={'top_k' if preset == 'in_batch' else preset}"],
                           "objective": sum(ndcg[preset]) / 4, "summary": str(folder / "summary.json")}
                (folder / "summary.json").write_text(json.dumps(summary))
                (folder / "probe_queries.json").write_text(json.dumps({"ndcg@10": ndcg[preset]}))
                runs[preset] = summary
            (tmp_path / name / "sweep_summary.csv").write_text("")
        return runs

    old = {"top_k": [0.5, 0.5, 0.5, 0.5], "in_batch": [0.4, 0.4, 0.4, 0.4]}
    new = {"top_k": [0.6, 0.6, 0.6, 0.6], "in_batch": [0.4, 0.4, 0.4, 0.4]}
    finished("_fp32", 0, old)
    runs = [finished("_bf16", 0, new)]
    args = argparse.Namespace(dir=tmp_path, presets=["top_k", "in_batch"], extra=[], tag="_bf16", against="_fp32",
                              seeds="0")
    lines = module.against(args, tmp_path / "corpus", 15, 16, runs)
    assert lines == ["| 15x16 | top_k | +0.1000 | +0.1000 to +0.1000 |",
                     "| 15x16 | in_batch | +0.0000 | +0.0000 to +0.0000 |"]
    with pytest.raises(SystemExit, match="--against _fp16: .*sweep_15x16_seed0_fp16 holds no finished sweep"):
        module.against(argparse.Namespace(**{**vars(args), "against": "_fp16"}), tmp_path / "corpus", 15, 16, runs)
    finished("_fp8", 0, old)  # its in-batch arm's sweep gone: refused, not run with this run's overrides
    shutil.rmtree(tmp_path / "sweep_15x16_seed0_fp8_in_batch")
    with pytest.raises(SystemExit, match="sweep_15x16_seed0_fp8_in_batch holds no finished sweep"):
        module.against(argparse.Namespace(**{**vars(args), "against": "_fp8"}), tmp_path / "corpus", 15, 16, runs)
