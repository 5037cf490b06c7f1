"""bench/quality.py's recipe (p): the probe sweep's pick is recorded, and it mines with the picked sampling the way
a user takes ``best_sampling.yaml`` (a sampling preset on Hydra's search path), not with the other recipes' window."""

from __future__ import annotations

import argparse
import json

import pytest

from prep import contract
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
    record = json.loads((tmp_path / "out" / "probe" / "sweep" / "pick.json").read_text())
    assert record["grid"]["miner.range_for_sampling"] == "[2,200],[10,100]"
    # A finished sweep of other seeds or another grid is not lent to what is asked now.
    fewer_seeds = argparse.Namespace(**{**vars(args), "probe_seeds": "0"})
    with pytest.raises(SystemExit, match=r"sweep/pick.json: the finished sweep there ran another seeds "
                                         r"\(seeds='0,1'\) than asked now \(seeds='0'\); move .* aside"):
        module.probe_pick(fewer_seeds, SAMPLE_TRAIN, SAMPLE_POOL, tmp_path / "out", tmp_path / "cache")
    monkeypatch.setattr(module, "grid_params", lambda sweep: {"sampling": "top_k"})
    with pytest.raises(SystemExit, match=r"ran another grid \(grid=\{'step': 'probe'"):
        module.probe_pick(args, SAMPLE_TRAIN, SAMPLE_POOL, tmp_path / "out", tmp_path / "cache")
    assert len(sweeps) == 1

    mined = module.mine("p", pick["overrides"], SAMPLE_TRAIN, SAMPLE_POOL, tmp_path / "out", 3,
                        tmp_path / "cache", common=[])
    miner = contract.read(contract.RunRecord, contract.load(mined.output.parent / contract.SUMMARY)).config["miner"]
    picked = (miner["range_for_sampling"], miner["sampling_strategy"], miner["negative_number"])
    assert picked == ([10, 100], "random", 3)
    assert all(len(row["neg"]) == 3 for row in read_jsonl(mined.output))
    assert mined.summary.negatives.max == 3


def test_a_recipe_that_mined_a_trained_recipes_rows_byte_for_byte_takes_its_runs(tmp_path):
    """(p) picking a fixed recipe's setting mines that recipe's rows; the student would train the same, so the
    runs are taken, marked, and shown in the table. Rows that differ by one byte, or a recipe without runs, are
    not a twin."""
    module = bench_script("quality")
    for key, text in (("b", "same\n"), ("c", "same\n"), ("d", "differs\n"), ("p", "same\n")):
        (tmp_path / "mined" / key).mkdir(parents=True)
        (tmp_path / "mined" / key / "mined.jsonl").write_text(text)
    run = {"strict": {"ndcg@10": 0.8, "recall@10": 0.9, "mrr@10": 0.7},
           "sibling_tolerant": {"ndcg@10": 0.81, "recall@10": 0.9, "mrr@10": 0.72}, "train_s": 600, "eval_s": 300}
    results = {"base": run, "c": {"label": "no runs yet", "runs": {}}, "d": {"label": "other", "runs": {"0": run}},
               "b": {"label": "top-k", "runs": {"0": run}}, "p": {"label": "picked", "runs": {}}}
    assert module.twin_recipe(tmp_path, "p", results) == "b"
    assert module.twin_recipe(tmp_path, "e", results) is None  # no mined rows (in-batch only)
    assert module.reuse_run(results, "p", "b", "0") and not module.reuse_run(results, "p", "b", "1")
    assert results["p"]["runs"] == {"0": {**run, "same_training_as": "b"}}
    (tmp_path / "mined" / "b" / "mined.jsonl").write_text("samE\n")
    assert module.twin_recipe(tmp_path, "p", results) is None
    args = argparse.Namespace(train_queries=4, negatives=7, batch_size=2, lr=2e-5, train_max_length=8,
                              eval_max_length=8, test_queries=2, eval_passages=10, seeds="0")
    module.write_table(tmp_path, results, args)
    assert "| (p) picked (the runs of (b): it mined the same rows) | " in (tmp_path / "results.md").read_text()
