"""A multirun over similarity windows: one encode, then a summary table and plots."""

import csv
import json

from prep.io import read_jsonl
from prep.paths import SAMPLE_TRAIN
from prep.sweep import COLUMNS, markdown_table
from tests.conftest import CONF_DIR, compose_config, run_cli, write_jsonl

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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
    assert "miner.similarity_range=[0.1,0.6]" in rows[1]["overrides"]
    assert float(rows[2]["neg_sim_mean"]) > float(rows[0]["neg_sim_mean"])  # a narrower, harder window
    assert int(rows[2]["filled_random"]) >= int(rows[0]["filled_random"])
    markdown = (sweep / "sweep_summary.md").read_text()
    assert markdown.splitlines()[0].startswith("| job | overrides | rows |") and len(markdown.splitlines()) == 5
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
        assert cfg.hydra.sweeper.params.step == "mine"
        assert set(cfg.hydra.sweeper.params) > {"step"}
