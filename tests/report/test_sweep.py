"""A multirun over similarity windows: one encode, then a summary table and plots."""

import csv
import json

import pytest

from prep.io.jsonl import read_jsonl
from prep.io.paths import SAMPLE_TRAIN
from prep.report.sweep import COLUMNS, markdown_table
from prep.steps import mine
from tests.conftest import CONF_DIR, compose_config, run_cli, write_jsonl

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_three_job_sweep_encodes_once_and_is_summarised(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", read_jsonl(SAMPLE_TRAIN)[:40])
    result = run_cli("-m", "step=mine", f"input={data}", "miner.similarity_range=[0.0,0.9],[0.1,0.6],[0.2,0.5]",
                     "miner.range_for_sampling=2-60", "miner.negative_number=5", f"cache_dir={tmp_path / 'cache'}",
                     f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "sweep"
    summaries = [json.loads((sweep / str(job) / "summary.json").read_text()) for job in range(3)]
    assert summaries[0]["encoded"]["passages"] > 0
    for later in summaries[1:]:
        assert later["encoded"] == {"queries": 0, "passages": 0}
        assert later["cache"]["misses"] == 0
    with open(sweep / "sweep_summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["job"] for r in rows] == ["0", "1", "2"]
    assert list(rows[0]) == COLUMNS
    assert rows[1]["overrides"] == "miner.similarity_range=[0.1,0.6]"  # only what varies between jobs
    assert float(rows[2]["neg_sim_mean"]) > float(rows[0]["neg_sim_mean"])  # a narrower, harder window
    assert int(rows[2]["filled_random"]) >= int(rows[0]["filled_random"])
    markdown = (sweep / "sweep_summary.md").read_text()
    table = [line for line in markdown.splitlines() if line.startswith("|")]
    assert table[0].startswith("| job | overrides | rows |") and len(table) == 5
    assert "miner.negative_number=5" in markdown.split("| job")[0]  # shared overrides, said once
    for png in [sweep / "sweep_similarity.png", *(sweep / str(j) / "similarity.png" for j in range(3))]:
        assert png.read_bytes()[:8] == PNG_SIGNATURE and png.stat().st_size > 2000


def test_markdown_escapes_pipes_and_leaves_missing_values_empty():
    row = {c: None for c in COLUMNS} | {"job": "0", "overrides": "a=|b"}
    assert "| 0 | a=\\|b |" in markdown_table([row])


def test_ready_sweeps_compose():
    for path in sorted((CONF_DIR / "sweep").glob("*.yaml")):
        # Hydra reads "@package" only before any other comment; the command comes right after it.
        assert path.read_text().splitlines()[:2][0] == "# @package _global_"
        assert path.read_text().splitlines()[1].startswith("# python run.py +sweep=")
        cfg = compose_config([f"+sweep={path.stem}"], with_hydra=True)
        assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
        assert cfg.hydra.sweeper.params.get("step", cfg.step) in ("mine", "probe")
        assert set(cfg.hydra.sweeper.params) - {"step"}


@pytest.mark.slow
def test_parallel_jobs_share_a_cold_cache_safely(tmp_path):
    """Two joblib jobs encode into one cold cache at once; a later run trusts what they left."""
    data = write_jsonl(tmp_path / "train.jsonl", read_jsonl(SAMPLE_TRAIN)[:30])
    cache = tmp_path / "cache"
    result = run_cli("-m", "step=mine", f"input={data}", "seed=1,2", "miner.range_for_sampling=2-40",
                     "miner.negative_number=4", f"cache_dir={cache}", "hydra/launcher=joblib",
                     "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not list(cache.rglob("*.tmp"))
    summary = mine.run(compose_config([f"input={data}", "seed=2", "miner.range_for_sampling=2-40",
                                       "miner.negative_number=4", f"cache_dir={cache}",
                                       f"output={tmp_path / 'again.jsonl'}", f"run_dir={tmp_path / 'again'}"]))
    assert summary["encoded"] == {"queries": 0, "passages": 0} and summary["cache"]["misses"] == 0
    job_output = next(p for p in (tmp_path / "sweep").glob("*/mined.jsonl")
                      if "seed=2" in json.loads((p.parent / "summary.json").read_text())["overrides"])
    assert (tmp_path / "again.jsonl").read_bytes() == job_output.read_bytes()


def test_a_sweep_over_seeds_picks_the_setting_with_the_best_mean(tmp_path):
    """Setting A wins one seed by a little and loses the other by more; B's mean is higher, so B is the verdict:
    both its jobs are marked and best_sampling.yaml holds its settings."""
    from omegaconf import OmegaConf

    from prep.report.sweep import write_sweep_summary

    jobs = [("sampling=top_k", 0, 0.91, "top"), ("sampling=top_k", 1, 0.88, "top"),
            ("sampling=flagembedding", 0, 0.90, "random"), ("sampling=flagembedding", 1, 0.905, "random")]
    for number, (sampling, seed, objective, strategy) in enumerate(jobs):
        folder = tmp_path / str(number)
        folder.mkdir()
        (folder / "summary.json").write_text(json.dumps({
            "overrides": ["step=probe", sampling, f"seed={seed}"], "objective": objective,
            "probe": {"metric": "ndcg@10", "after": {"ndcg@10": objective}},
            "config": {"miner": {"range_for_sampling": "2-200", "negative_number": 15,
                                 "sampling_strategy": strategy}}}))
    rows = write_sweep_summary(tmp_path)
    assert [row["best"] for row in rows] == ["", "", "*", "*"]
    assert [row["objective_mean"] for row in rows] == [0.895, 0.895, 0.9025, 0.9025]
    assert OmegaConf.load(tmp_path / "best_sampling.yaml").sampling_strategy == "random"
    with open(tmp_path / "sweep_summary.csv", newline="") as handle:
        assert [row["best"] for row in csv.DictReader(handle)] == ["", "", "*", "*"]
    assert "(mean over its seeds 0.9025)" in (tmp_path / "sweep_report.html").read_text()
    # One seed: the highest objective, as before; no means.
    for number in (1, 3):
        (tmp_path / str(number) / "summary.json").unlink()
    rows = write_sweep_summary(tmp_path)
    assert [row["best"] for row in rows] == ["*", ""] and {row["objective_mean"] for row in rows} == {None}


def test_the_jobs_of_two_sweeps_gathered_in_one_folder_get_one_verdict(tmp_path, capsys):
    """Points added to a finished sweep run into a folder of their own; linking both sweeps' job folders into a
    third and running ``python -m prep.report`` on it ranks every setting together (docs/probe.md)."""
    from omegaconf import OmegaConf

    from prep.report.__main__ import main

    def job(folder, sampling, seed, objective, strategy):
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps({
            "overrides": ["step=probe", sampling, f"seed={seed}"], "objective": objective,
            "probe": {"metric": "ndcg@10", "after": {"ndcg@10": objective}},
            "config": {"miner": {"range_for_sampling": "2-200", "negative_number": 15,
                                 "sampling_strategy": strategy}}}))

    first, added, gathered = tmp_path / "first", tmp_path / "added", tmp_path / "gathered"
    job(first / "0", "sampling=top_k", 0, 0.90, "top")
    job(first / "1", "sampling=top_k", 1, 0.89, "top")
    job(added / "0", "sampling=flagembedding", 0, 0.88, "random")
    job(added / "1", "sampling=flagembedding", 1, 0.92, "random")
    gathered.mkdir()
    for number, source in enumerate([first / "0", first / "1", added / "0", added / "1"]):
        (gathered / str(number)).symlink_to(source, target_is_directory=True)
    assert main([str(gathered)]) == 0
    with open(gathered / "sweep_summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["job"], row["objective_mean"], row["best"]) for row in rows] == [
        ("0", "0.895", ""), ("1", "0.895", ""), ("2", "0.9", "*"), ("3", "0.9", "*")]
    assert OmegaConf.load(gathered / "best_sampling.yaml").sampling_strategy == "random"
    assert sorted(p.name for p in first.iterdir()) == ["0", "1"]  # the sweeps' own folders are left as they were


def test_a_jobs_row_reads_each_steps_record_and_leaves_what_an_older_summary_lacks_empty():
    """The sweep reads a summary through its records (contract): a mine job's figures, a probe's own mining and
    metrics, a score job's cache; a field an older summary lacks is an empty cell, not an error."""
    from prep.report.sweep import job_row

    run = {"seconds": {"total": 9.5, "encode": 2.0}, "overrides": ["seed=1"], "summary": "s", "seed": 1,
           "peak_memory_gb": 1.0, "config": {}, "output": None}
    negatives = {"mean": 7.0, "min": 7, "max": 7, "rows_short": 1, "filled_random": 2, "rows_filled": 1}
    similarity = {"negative": {"mean": 0.4, "p5": 0.1, "p25": 0.2, "p50": 0.4, "p75": 0.5, "p95": 0.7},
                  "positive": {"mean": 0.8}}
    mining = {"negatives": negatives, "similarity": similarity, "negative_rank": {"mean": 20.5},
              "encoded": {"queries": 3, "passages": 30}}
    mined = job_row("0", {"step": "mine", "rows": 40, **mining, "cache": {"hits": 1, "misses": 2}, **run})
    assert (mined["rows"], mined["rows_short"], mined["filled_random"], mined["negatives_mean"]) == (40, 1, 2, 7.0)
    assert (mined["neg_sim_mean"], mined["neg_sim_p95"], mined["neg_rank_mean"], mined["pos_sim_mean"]) == (
        0.4, 0.7, 20.5, 0.8)
    assert (mined["passages_encoded"], mined["cache_hits"], mined["cache_misses"]) == (30, 1, 2)
    assert (mined["seconds_total"], mined["overrides"], mined["probe_loss"]) == (9.5, "seed=1", None)
    probe = {"metric": "ndcg@10", "student": "m", "loss": "distill", "temperature": 0.05, "teacher": "t",
             "teacher_temperature": 0.02, "before": {"ndcg@10": 0.5}, "after": {"ndcg@10": 0.6, "recall@100": 0.9},
             "mine": mining}
    probed = job_row("1", {"step": "probe", "rows": 50, "objective": 0.6, "probe": probe, **run})
    assert (probed["probe_ndcg@10_before"], probed["probe_ndcg@10"], probed["probe_recall@100"]) == (0.5, 0.6, 0.9)
    assert (probed["probe_loss"], probed["probe_teacher"], probed["probe_teacher_temperature"]) == (
        "distill", "t", 0.02)
    assert (probed["negatives_mean"], probed["passages_encoded"], probed["cache_hits"]) == (7.0, 30, None)
    scored = job_row("2", {"step": "score", "rows": 5, "cache": {"hits": 4, "misses": 0}, **run})
    assert (scored["cache_hits"], scored["negatives_mean"], scored["probe_ndcg@10"]) == (4, None, None)
    older = job_row("3", {"step": "probe", "rows": 5, "probe": {"after": {"ndcg@10": 0.7}}, "overrides": []})
    assert (older["probe_ndcg@10"], older["probe_loss"], older["neg_sim_mean"], older["seconds_total"]) == (
        0.7, None, None, None)
