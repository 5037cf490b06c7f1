"""The sweep's verdict knows its noise (issue 38): paired differences over dev queries, their bootstrap interval
against hand computations, and a sweep whose settings differ only by noise reported as a tie."""

from __future__ import annotations

import json

import numpy as np
import pytest

from prep import contract
from prep.report.noise import Difference, paired_difference
from prep.report.sweep import write_sweep_summary


def test_a_constant_difference_has_an_interval_of_no_width():
    found = paired_difference([(np.full(5, 0.7), np.full(5, 0.6))])
    assert found == Difference(mean=0.1, low=0.1, high=0.1, seeds=1, queries=5) and not found.tied


def test_two_queries_give_the_three_bootstrap_means_by_hand():
    """Differences 0.2 and 0: a resample of two queries has mean 0 (1/4), 0.1 (1/2) or 0.2 (1/4), so the 2.5th
    and 97.5th percentiles of 4,000 resamples are 0 and 0.2, and the mean is 0.1."""
    found = paired_difference([(np.array([0.2, 0.5]), np.array([0.0, 0.5]))])
    assert (found.mean, found.low, found.high) == (0.1, 0.0, 0.2) and found.tied


def test_seeds_are_pooled_and_drawn_too():
    """Seed 0: every query +0.1; seed 1: every query -0.1. The mean is 0; drawing the seeds with replacement gives
    -0.1 (both draws seed 1), 0 or +0.1: the interval spans the seeds' disagreement (training noise), not 0 width."""
    found = paired_difference([(np.full(4, 0.6), np.full(4, 0.5)), (np.full(4, 0.4), np.full(4, 0.5))])
    assert (found.mean, found.low, found.high, found.seeds, found.queries) == (0.0, -0.1, 0.1, 2, 8)


def test_the_interval_is_seeded():
    rng = np.random.default_rng(3)
    pairs = [(rng.random(50), rng.random(50)), (rng.random(40), rng.random(40))]
    assert paired_difference(pairs) == paired_difference(pairs)


def test_no_pair_is_an_error():
    with pytest.raises(ValueError):
        paired_difference([])


def probe_job(folder, overrides, seed, values, strategy="random", range_="2-200", probe=None):
    folder.mkdir(parents=True)
    values = np.asarray(values, dtype=float)
    probe = probe or {"loss": "mnrl", "temperature": 0.05}
    (folder / contract.SUMMARY).write_text(json.dumps({
        "step": "probe", "overrides": ["step=probe", *overrides, f"seed={seed}"], "objective": float(values.mean()),
        "probe": {"metric": "ndcg@10", "after": {"ndcg@10": float(values.mean())}, **probe},
        "config": {"seed": seed, "miner": {"range_for_sampling": range_, "negative_number": 15,
                                           "sampling_strategy": strategy},
                   "probe": {"steps": 15, "teacher": probe["loss"] == "distill", "teacher_temperature": None,
                             **probe}}}))
    (folder / contract.PROBE_QUERIES).write_text(json.dumps({
        "dev": f"dev-of-seed-{seed}", "query_ids": [f"q{i}" for i in range(len(values))],
        "ndcg@10": values.tolist()}))


def test_settings_that_differ_by_noise_only_are_a_tie_and_best_sampling_says_so(tmp_path):
    """top_k's per-query figures are the default's moved by noise of mean 0 (and 0.002, far below it): the sweep
    picks top_k by its mean, says it cannot be told from the default, and best_sampling.yaml warns that its pick is
    no finding."""
    rng = np.random.default_rng(0)
    job = 0
    for seed in (0, 1):
        base = rng.random(200) * 0.9
        for name, strategy, shift in (("sampling=flagembedding", "random", 0.0), ("sampling=top_k", "top", 0.002)):
            noise = rng.normal(0, 0.1, 200) if strategy == "top" else np.zeros(200)
            noise -= noise.mean()  # of mean 0 exactly: top_k's mean is the default's + 0.002, so top_k is best
            probe_job(tmp_path / str(job), [name], seed, base + shift + noise, strategy=strategy)
            job += 1
    rows = write_sweep_summary(tmp_path)
    assert [(row["best"], row["tied"]) for row in rows] == [("", "yes"), ("*", ""), ("", "yes"), ("*", "")]
    default = rows[0]
    assert default["vs_best_low"] < 0 < default["vs_best_high"] and default["vs_best"] < 0
    markdown = (tmp_path / contract.SWEEP_MARKDOWN).read_text()
    assert "Verdict: no setting beats the default (sampling=flagembedding) beyond noise: keep the default" in markdown
    best_sampling = (tmp_path / contract.BEST_SAMPLING).read_text().splitlines()
    assert best_sampling[0] == "# @package miner" and best_sampling[1].startswith("# A tie, not a finding: the default")
    assert (tmp_path / contract.SWEEP_DIFFERENCE_PLOT).read_bytes()[:4] == b"\x89PNG"
    assert "no setting beats the default" in (tmp_path / contract.SWEEP_REPORT).read_text()


def test_a_setting_better_beyond_noise_is_the_verdict(tmp_path):
    rng = np.random.default_rng(1)
    job = 0
    for seed in (0, 1):
        base = rng.random(300) * 0.8
        for name, strategy, spread in (("sampling=flagembedding", "random", None), ("sampling=top_k", "top", 0.01),
                                       ("sampling=top_k_close", "top", 0.05)):
            # top_k and top_k_close: the default's figures + 0.1, moved by noise of mean 0 (more for top_k_close)
            noise = rng.normal(0, spread or 0.01, 300)
            noise -= noise.mean()
            probe_job(tmp_path / str(job), [name], seed, base + (0.1 if spread else 0.0) + noise, strategy=strategy)
            job += 1
    rows = write_sweep_summary(tmp_path)
    verdict = (tmp_path / contract.SWEEP_MARKDOWN).read_text()
    assert "Verdict: best: sampling=top_k" in verdict and "not distinguishable from: sampling=top_k_close" in verdict
    by_setting = {row["overrides"].split()[0]: row for row in rows}
    default = by_setting["sampling=flagembedding"]
    assert default["tied"] == "" and default["vs_best_high"] < 0
    assert "A tie" not in (tmp_path / contract.BEST_SAMPLING).read_text()


def test_a_sweep_of_the_probes_loss_finds_its_default_setting_by_the_probe_keys(tmp_path):
    """Issue 35: jobs that mine alike and train differently (probe.loss, probe.temperature). The default is the
    setting with the schema's loss and temperature, whatever order the jobs come in; distill's gain here is noise."""
    rng = np.random.default_rng(2)
    job = 0
    for seed in (0, 1):
        base = rng.random(200) * 0.9
        for loss, temperature, shift in (("distill", 0.02, 0.001), ("mnrl", 0.05, 0.0), ("distill", 0.05, 0.002)):
            noise = rng.normal(0, 0.1, 200) if shift else np.zeros(200)
            noise -= noise.mean()
            probe_job(tmp_path / str(job), [f"probe.loss={loss}", f"probe.temperature={temperature}"], seed,
                      base + shift + noise, probe={"loss": loss, "temperature": temperature})
            job += 1
    rows = write_sweep_summary(tmp_path)
    assert [row["best"] for row in rows[:3]] == ["", "", "*"]
    assert [(row["probe_loss"], row["probe_temperature"]) for row in rows[:3]] == [
        ("distill", 0.02), ("mnrl", 0.05), ("distill", 0.05)]
    markdown = (tmp_path / contract.SWEEP_MARKDOWN).read_text()
    assert ("Verdict: no setting beats the default (probe.loss=mnrl probe.temperature=0.05) beyond noise: keep the "
            "default") in markdown
