"""``step=probe``: mine through the cache, train the student briefly, score it on held-out queries."""

import csv
import json
import logging

import pytest
from omegaconf import OmegaConf

from prep import contract
from prep.io.jsonl import read_jsonl
from prep.io.paths import SAMPLE_TRAIN
from prep.steps import probe
from tests.conftest import run_cli

TINY = ["step=probe", "probe.steps=3", "probe.batch_size=8", "probe.negatives=2", "probe.max_length=64",
        "miner.range_for_sampling=2-40", "miner.negative_number=4", "hardware.use_bf16=false"]


@pytest.mark.slow
def test_probe_holds_out_mines_trains_and_returns_its_objective(make_config, tmp_path, capfd, caplog):
    import run

    caplog.set_level(logging.INFO, logger="prep.progress")
    first = probe.run(make_config(*TINY, f"run_dir={tmp_path / 'a'}"))
    assert "Computing widget examples" not in capfd.readouterr().err  # a bar the probe's log never shows
    # Not on a terminal the trainer's bar is off, and the training's steps are logged instead.
    assert "train the student: 100% (3/3) in " in caplog.text
    rows = read_jsonl(SAMPLE_TRAIN)
    split = json.loads((tmp_path / "a" / "probe_split.json").read_text())
    assert len(split["dev"]) == round(0.3 * len(rows)) and sorted(split["train"] + split["dev"]) == list(range(170))
    training_positives = {p for i in split["train"] for p in rows[i]["pos"]}
    assert not training_positives & {p for i in split["dev"] for p in rows[i]["pos"]}
    mined = read_jsonl(tmp_path / "a" / "mined.jsonl")
    assert [r["query"] for r in mined] == [rows[i]["query"] for i in split["train"]]
    report = first["probe"]
    assert contract.summary_mismatches(first) == []
    assert report["dev"]["queries"] == len(split["dev"]) and report["train"]["steps"] == 3
    assert set(report["before"]) == set(report["after"]) == {"ndcg@10", "mrr@10", "recall@10", "recall@100"}
    assert first["objective"] == report["after"]["ndcg@10"]
    queries = json.loads((tmp_path / "a" / contract.PROBE_QUERIES).read_text())
    assert len(queries["query_ids"]) == len(split["dev"]) == len(queries["ndcg@10"]) and len(queries["dev"]) == 32
    assert round(sum(queries["ndcg@10"]) / len(queries["ndcg@10"]), 6) == report["after"]["ndcg@10"]
    assert first["seconds"]["train"] > 0 and first["seconds"]["evaluate"] > 0
    assert report["before_cached"] is False
    # The same run again, through the Hydra task function: the cache serves the pool and the untouched student's
    # metrics, training repeats exactly.
    returned = run.main.__wrapped__(make_config(*TINY, f"run_dir={tmp_path / 'b'}"))
    second = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert returned == second["objective"] == first["objective"]
    assert second["probe"]["train"]["train_loss"] == report["train"]["train_loss"]
    assert second["probe"]["mine"]["encoded"]["passages"] == 0
    assert second["probe"]["before_cached"] is True and second["probe"]["before"] == report["before"]


@pytest.mark.slow
def test_a_probe_sweep_marks_the_best_job_and_optuna_receives_each_objective(tmp_path):
    """Two Optuna trials (two basic-sweeper jobs where the optuna extra is missing): the best job is marked, its
    sampling settings written, the second job encodes nothing, and Optuna's verdict (from the values the Hydra
    task function returned) is the best job's objective."""
    import importlib.util

    optuna = importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is not None
    sweeper = ["+sweep=probe_optuna", "hydra.sweeper.n_trials=2"] if optuna else ["-m", "sampling=top_k,flagembedding"]
    result = run_cli(*sweeper, *TINY, f"hydra.sweep.dir={tmp_path / 'sweep'}", f"cache_dir={tmp_path / 'cache'}",
                     cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "sweep"
    with open(sweep / "sweep_summary.csv", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 2 and [row["best"] for row in table].count("*") == 1
    best = next(row for row in table if row["best"] == "*")
    assert float(best["probe_ndcg@10"]) == max(float(row["objective"]) for row in table)
    summaries = [json.loads((sweep / str(job) / "summary.json").read_text()) for job in range(2)]
    assert summaries[1]["probe"]["mine"]["encoded"]["passages"] == 0  # the second job encodes nothing
    recipe = OmegaConf.load(sweep / "best_sampling.yaml")
    chosen = summaries[int(best["job"])]["config"]["miner"]
    assert {key: recipe[key] for key in recipe} == {key: chosen[key] for key in recipe}
    assert (sweep / "best_sampling.yaml").read_text().startswith("# @package miner\n# python run.py")
    if optuna:
        assert OmegaConf.load(sweep / "optimization_results.yaml").best_value == float(best["objective"])


@pytest.mark.parametrize("rows", [
    [{"query": "only one row", "pos": ["its passage"]}],
    [{"query": f"query {n}", "pos": ["the one passage they share"]} for n in range(4)],
])
def test_no_dev_set_to_hold_out_is_refused_before_mining(make_config, tmp_path, rows):
    """Issue 32, defect 11: one row, or rows linked into one group by a shared positive, leave no dev set."""
    from prep.errors import UsageError
    from tests.conftest import write_jsonl

    data = write_jsonl(tmp_path / "rows.jsonl", rows)
    with pytest.raises(UsageError, match="none of the .* input rows can be held out as dev queries"):
        probe.run(make_config(*TINY, f"input={data}"))
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run" / "mine").exists()


def test_fewer_training_rows_than_a_batch_are_not_trained_and_the_summary_says_so(make_config, tmp_path, caplog):
    from tests.conftest import write_jsonl

    data = write_jsonl(tmp_path / "rows.jsonl", read_jsonl(SAMPLE_TRAIN)[:10])  # 8 train, 2 dev
    summary = probe.run(make_config(*TINY, "probe.batch_size=16", f"input={data}", "probe.dev_distractors=20"))
    trained = summary["probe"]["train"]
    assert trained["steps"] == 0 and "fewer training rows than probe.batch_size=16" in trained["not_trained"]
    assert summary["probe"]["after"] == summary["probe"]["before"]
    assert "the student is not trained" in caplog.text


@pytest.mark.slow
def test_a_distilling_probe_scores_what_it_mined_and_repeats_exactly_in_bf16(make_config, tmp_path):
    """Issue 35: probe.teacher scores the mined rows through the score cache; probe.loss=distill trains on those
    scores; the summary names the loss, the teacher and the precision; a second run (scores from the cache) gives
    the same loss and metrics, in bf16 too."""
    distill = [*TINY, "probe.loss=distill", "probe.teacher=true", "reranker=embedder", "hardware.use_bf16=true"]
    first = probe.run(make_config(*distill, f"run_dir={tmp_path / 'a'}"))
    report = first["probe"]
    assert contract.summary_mismatches(first) == []
    # teacher_temperature null: a bi-encoder teacher's cosines on the student's scale, its temperature
    assert report["loss"] == "distill" and report["temperature"] == 0.05 and report["teacher_temperature"] == 0.05
    assert report["teacher"].startswith("bi-encoder ") and report["train"]["precision"] == "bf16"
    mined, scored = read_jsonl(tmp_path / "a" / "mined.jsonl"), read_jsonl(tmp_path / "a" / "scored.jsonl")
    assert [{k: v for k, v in row.items() if not k.endswith("_scores")} for row in scored] == mined
    assert all(len(row["neg_scores"]) == len(row["neg"]) == 4 for row in scored)
    assert report["teacher_scores"]["pairs"] == report["teacher_scores"]["scores"]["positive"]["count"] + 4 * len(mined)
    assert report["teacher_scores"]["pairs_cached"] == 0 and first["seconds"]["score"] > 0
    second = probe.run(make_config(*distill, f"run_dir={tmp_path / 'b'}"))
    assert second["probe"]["teacher_scores"]["pairs_cached"] == report["teacher_scores"]["pairs"]
    assert second["probe"]["train"] == report["train"] and second["objective"] == first["objective"]
    # The same rows and draw without the teacher's term: another loss.
    contrastive = probe.run(make_config(*TINY, "hardware.use_bf16=true", f"run_dir={tmp_path / 'c'}"))
    assert contrastive["probe"]["loss"] == "mnrl" and contrastive["probe"]["teacher"] is None
    assert contrastive["probe"]["train"]["train_loss"] != report["train"]["train_loss"]


@pytest.mark.parametrize("overrides, expected", [
    ([], 0.05),  # reranker=embedder, the default: the teacher's cosines on the student's scale
    (["probe.temperature=0.02"], 0.02),
    (["reranker=bge_reranker_base"], 1.0),  # a cross-encoder's logits as they are, as FlagEmbedding takes them
    (["reranker=bge_reranker_base", "probe.teacher_temperature=0.3"], 0.3),
    (["probe.teacher_temperature=2"], 2.0),
])
def test_the_teachers_temperature_follows_the_kind_of_teacher_unless_given(make_config, overrides, expected):
    from prep.config.settings import settings_of

    settings = settings_of(make_config(*overrides))
    assert probe.training_settings(settings).teacher_temperature == expected
    assert settings.probe.teacher_temperature == (None if not any("teacher_temperature" in o for o in overrides)
                                                  else expected)  # the recorded settings keep the null


def test_rows_sharing_negatives_that_fill_no_batch_are_said_not_trained(make_config, caplog):
    """FlagEmbedding's example data trained 0 steps without a word: with the bundled 234-passage pool, 64 rows of 4
    negatives each need more distinct texts than there are, so the no-duplicate sampler fills no batch."""
    summary = probe.run(make_config(*TINY, "probe.batch_size=64", "probe.negatives=4"))
    trained = summary["probe"]["train"]
    assert trained["steps"] < 3 and trained["short"].endswith(
        "of probe.steps=3 steps: too few batches of probe.batch_size=64 rows without a repeated text")
    assert "lower probe.batch_size or probe.negatives" in caplog.text
