"""Exact in every precision: the mined bytes hold across blocks, shards, pool batchings, the cache's history and
concurrent runs, in fp32 and in bf16 (forced, so it runs on every CPU: emulated where the CPU lacks AVX512-BF16)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from prep.io.jsonl import read_jsonl
from prep.io.paths import SAMPLE_POOL, SAMPLE_TRAIN
from prep.steps import merge, mine
from tests.conftest import ROOT, compose_config, write_jsonl

# Rules that read the similarities closely: a narrow similarity window, margins, near duplicates of positives.
RULES = ["miner.range_for_sampling=2-40", "miner.similarity_range=[0.2,0.7]", "miner.negative_number=5",
         "miner.relative_margin=0.02", "miner.other_positive_threshold=0.9", "miner.exclude_other_positives=true",
         f"miner.candidate_pool={SAMPLE_POOL}", "seed=13"]


@pytest.mark.parametrize("bf16", ["false", "true"])
def test_mined_bytes_hold_across_blocks_shards_batchings_and_cache_history(tmp_path, bf16):
    rows = read_jsonl(SAMPLE_TRAIN)
    data = write_jsonl(tmp_path / "train.jsonl", rows[:60])
    other = write_jsonl(tmp_path / "other.jsonl", rows[40:120])  # shares the pool and 20 rows
    settings = [f"input={data}", *RULES, f"hardware.use_bf16={bf16}"]

    def mined(name, *extra, cache="cold"):
        summary = mine.run(compose_config([f"run_dir={tmp_path / name}", f"cache_dir={tmp_path / cache}", *settings,
                                           *extra]))
        return open(summary["output"], "rb").read(), summary

    single, summary = mined("single")
    assert summary["reproducible"] == {"dtype": "bf16" if bf16 == "true" else "fp32", "across_batches": True}
    assert summary["negatives"]["mean"] > 3 and summary["candidates"]["removed"]["similarity_range"] > 0
    variants = {
        "query_block=1": mined("block1", "miner.query_block=1")[0],
        "query_block=37": mined("block37", "miner.query_block=37")[0],
        # the pool encoded in chunks of 50 (other passes), no cache at all
        "encode_chunk=50, cache=false": mined("chunks", "encode_chunk=50", "cache=false")[0],
    }
    for index in range(3):
        mined(f"parts/{index}", f"shard.index={index}", "shard.count=3", "miner.query_block=7")
    merge.run(compose_config(["step=merge", f"input={tmp_path / 'parts'}", f"output={tmp_path / 'merged.jsonl'}",
                              f"run_dir={tmp_path / 'merge'}"]))
    variants["3 shards merged"] = (tmp_path / "merged.jsonl").read_bytes()
    mine.run(compose_config([f"run_dir={tmp_path / 'other'}", f"cache_dir={tmp_path / 'warm'}", f"input={other}",
                             *settings[1:]]))
    variants["a cache warmed by another input"] = mined("warm", cache="warm")[0]
    assert {name: output == single for name, output in variants.items()} == dict.fromkeys(variants, True)


@pytest.mark.slow
@pytest.mark.parametrize("bf16", ["false", "true"])
def test_two_concurrent_runs_on_one_cold_cache_write_the_single_runs_bytes(tmp_path, bf16):
    data = write_jsonl(tmp_path / "train.jsonl", read_jsonl(SAMPLE_TRAIN)[:60])
    settings = [f"input={data}", *RULES, f"hardware.use_bf16={bf16}", f"cache_dir={tmp_path / 'shared'}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    processes = [subprocess.Popen([sys.executable, str(ROOT / "run.py"), "step=mine", f"run_dir={tmp_path / name}",
                                   *settings], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True) for name in ("a", "b")]
    for process in processes:
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, output[-3000:]
    alone = mine.run(compose_config([f"run_dir={tmp_path / 'alone'}", f"cache_dir={tmp_path / 'own'}", *settings[:-1]]))
    expected = open(alone["output"], "rb").read()
    assert (tmp_path / "a" / "mined.jsonl").read_bytes() == (tmp_path / "b" / "mined.jsonl").read_bytes() == expected
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["reproducible"]["across_batches"] is True
