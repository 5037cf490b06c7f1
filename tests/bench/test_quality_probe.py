"""bench/quality.py's recipe (p): the probe sweep's pick is recorded, and it mines with the picked sampling the way
a user takes ``best_sampling.yaml`` (a sampling preset on Hydra's search path), not with the other recipes' window."""

from __future__ import annotations

import argparse
import json

import pytest

from prep.io.jsonl import read_jsonl
from prep.io.paths import SAMPLE_POOL, SAMPLE_TRAIN
from tests.bench import bench_script


@pytest.mark.slow
def test_the_probe_sweeps_pick_by_its_seeds_mean_mines_the_training_queries_with_its_sampling(tmp_path, monkeypatch):
    module = bench_script("quality")
    run_subprocess = module.subprocess.run
    sweeps = []

    def fake_sweep(command, **kwargs):
        if not any(c.startswith("+sweep=") for c in command):
            return run_subprocess(command, **kwargs)
        sweeps.append(command)
        sweep = tmp_path / "out" / "probe" / "sweep"
        jobs = [(["sampling=top_k", "seed=0"], 0.70, 0.64), (["sampling=top_k", "seed=1"], 0.58, 0.64),
                (["sampling=flagembedding", "miner.range_for_sampling=[10,100]", "seed=0"], 0.67, 0.665),
                (["sampling=flagembedding", "miner.range_for_sampling=[10,100]", "seed=1"], 0.66, 0.665)]
        lines = ["job,objective,objective_mean,best"]
        for job, (overrides, objective, mean) in enumerate(jobs):
            (sweep / str(job)).mkdir(parents=True)
            every_job = ["step=probe", "+sweep=probe_grid", "miner.candidate_pool=pool.jsonl", "cache_dir=c"]
            (sweep / str(job) / "summary.json").write_text(json.dumps({"overrides": [*every_job, *overrides],
                                                                        "objective": objective}))
            lines.append(f"{job},{objective},{mean},{'*' if job >= 2 else ''}")
        (sweep / "sweep_summary.csv").write_text("\n".join(lines) + "\n")
        (sweep / "best_sampling.yaml").write_text(
            "# @package miner\nrange_for_sampling:\n- 10\n- 100\nnegative_number: 15\nsampling_strategy: random\n")

    monkeypatch.setattr(module.subprocess, "run", fake_sweep)
    args = argparse.Namespace(probe_sweep="probe_grid", probe_seeds="0,1", probe_args="probe.steps=2")
    pick = module.probe_pick(args, SAMPLE_TRAIN, SAMPLE_POOL, tmp_path / "out", tmp_path / "cache")
    assert "+sweep=probe_grid" in sweeps[0] and "seed=0,1" in sweeps[0] and "probe.steps=2" in sweeps[0]
    # The setting with the best mean over the seeds, not the single best job (top_k's seed 0).
    assert pick["picked"] == ["sampling=flagembedding", "miner.range_for_sampling=[10,100]"]
    assert (pick["jobs"], pick["dev_objective"]) == (4, 0.665)
    assert pick["dev_objectives"] == {"sampling=top_k": 0.64,
                                      "sampling=flagembedding miner.range_for_sampling=[10,100]": 0.665}
    assert module.probe_pick(args, SAMPLE_TRAIN, SAMPLE_POOL, tmp_path / "out", tmp_path / "cache") == pick
    assert len(sweeps) == 1  # a recorded pick is not swept again

    summary = module.mine("p", pick["overrides"], SAMPLE_TRAIN, SAMPLE_POOL, tmp_path / "out", 3,
                          tmp_path / "cache", common=[])
    miner = summary["config"]["miner"]
    picked = (miner["range_for_sampling"], miner["sampling_strategy"], miner["negative_number"])
    assert picked == ([10, 100], "random", 3)
    assert all(len(row["neg"]) == 3 for row in read_jsonl(summary["output"]))
