"""Rows out in sentence-transformers' formats (exact rows on a small case) and in every container."""

from __future__ import annotations

import json

import pytest

from prep.errors import OutputExistsError, UsageError
from prep.io.formats import container_of, write_rows

ROW = {"query": "q", "pos": ["p1", "p2"], "neg": ["n1", "n2", "n3"], "type": "normal"}
SCORED = {**ROW, "pos_scores": [0.9, 0.8], "neg_scores": [0.3, 0.2, 0.1]}


def written(tmp_path, rows, output_format, negatives=0, name="out.jsonl"):
    result = write_rows(tmp_path / name, rows, output_format, negatives=negatives)
    return [json.loads(line) for line in (tmp_path / name).read_text(encoding="utf-8").splitlines()], result


def test_triplet_is_one_row_per_positive_and_negative(tmp_path):
    rows, result = written(tmp_path, [ROW], "triplet")
    assert rows[:2] == [{"anchor": "q", "positive": "p1", "negative": "n1"},
                        {"anchor": "q", "positive": "p1", "negative": "n2"}]
    assert len(rows) == 6 and rows[-1] == {"anchor": "q", "positive": "p2", "negative": "n3"}
    assert (result.rows_in, result.rows_out) == (1, 6)
    scored, _ = written(tmp_path, [SCORED], "triplet", name="scored.jsonl")
    assert scored[-1] == {"anchor": "q", "positive": "p2", "negative": "n3", "scores": [0.8, 0.1]}


def test_n_tuple_takes_n_negatives_and_leaves_out_short_rows(tmp_path):
    short = {"query": "s", "pos": ["x"], "neg": ["y"]}
    rows, result = written(tmp_path, [SCORED, short], "n-tuple", negatives=2)
    negatives = {"negative_1": "n1", "negative_2": "n2"}
    assert rows == [{"anchor": "q", "positive": "p1", **negatives, "scores": [0.9, 0.3, 0.2]},
                    {"anchor": "q", "positive": "p2", **negatives, "scores": [0.8, 0.3, 0.2]}]
    assert (result.rows_in, result.rows_out, result.rows_short) == (2, 2, 1)


def test_labeled_pair_lists_positives_then_negatives(tmp_path):
    rows, _ = written(tmp_path, [ROW], "labeled-pair")
    assert [(r["positive"], r["label"]) for r in rows] == [("p1", 1), ("p2", 1), ("n1", 0), ("n2", 0), ("n3", 0)]
    scored, _ = written(tmp_path, [SCORED], "labeled-pair", name="scored.jsonl")
    assert scored[0] == {"anchor": "q", "positive": "p1", "score": 0.9} and "label" not in scored[-1]


def test_labeled_list_is_one_row_per_positive(tmp_path):
    rows, _ = written(tmp_path, [ROW], "labeled-list")
    assert rows == [{"anchor": "q", "positive": ["p1", "n1", "n2", "n3"], "labels": [1, 0, 0, 0]},
                    {"anchor": "q", "positive": ["p2", "n1", "n2", "n3"], "labels": [1, 0, 0, 0]}]
    scored, _ = written(tmp_path, [SCORED], "labeled-list", name="scored.jsonl")
    assert scored[1]["scores"] == [0.8, 0.3, 0.2, 0.1]


@pytest.mark.parametrize("name", ["out.parquet", "out_folder"])
@pytest.mark.parametrize("output_format", ["flagembedding", "n-tuple"])
def test_parquet_and_saved_dataset_hold_the_json_lines_rows(tmp_path, name, output_format):
    import datasets

    as_lines, _ = written(tmp_path, [SCORED, ROW], output_format, negatives=3)
    write_rows(tmp_path / name, [SCORED, ROW], output_format, negatives=3)
    if name.endswith(".parquet"):
        table = datasets.load_dataset("parquet", data_files=str(tmp_path / name), split="train",
                                      cache_dir=str(tmp_path / "hf"))
    else:
        table = datasets.load_from_disk(str(tmp_path / name))
    read_back = [{k: v for k, v in row.items() if v is not None} for row in table]
    assert read_back == as_lines


def test_a_folder_output_replaces_only_a_saved_dataset_and_only_when_told(tmp_path):
    write_rows(tmp_path / "saved", [ROW])
    with pytest.raises(OutputExistsError, match="output exists; pass overwrite=true"):
        write_rows(tmp_path / "saved", [ROW])
    write_rows(tmp_path / "saved", [ROW, ROW], overwrite=True)
    import datasets

    assert len(datasets.load_from_disk(str(tmp_path / "saved"))) == 2
    (tmp_path / "mine").mkdir()
    with pytest.raises(OutputExistsError, match="not a saved dataset; it is never replaced"):
        write_rows(tmp_path / "mine", [ROW], overwrite=True)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_unknown_output_suffixes_are_refused():
    with pytest.raises(UsageError, match="cannot write '.csv' files"):
        container_of("out.csv")


@pytest.mark.parametrize("second, field, message", [
    ({"w": "x"}, "w", "is string here but double in an earlier row"),
    ({"w": 10**30}, "w", "past a 64-bit integer"),
    ({"w": "\ud800"}, "w", "lone surrogate"),
    ({"w": [1, "x"]}, "w", "cannot hold this value"),
    ({"w": True}, "w", "is bool here but double"),
])
def test_a_row_a_table_output_cannot_hold_is_refused_when_read_naming_row_and_key(second, field, message):
    from prep.io.formats import with_table_fit
    from prep.io.jsonl import FieldError

    check = with_table_fit(lambda row: None, "mined.parquet", "flagembedding")
    check({"query": "q", "pos": ["p"], "w": 1})
    check({"query": "q", "pos": ["p"], "w": None})  # a null fits any column
    check({"query": "q", "pos": ["p"], "w": 2.5})  # ints and floats mix, as floats
    with pytest.raises(FieldError, match=message) as caught:
        check({"query": "q", "pos": ["p"], **second})
    assert caught.value.field == field
    assert with_table_fit(len, "mined.jsonl", "flagembedding") is len  # JSON lines hold any row
    assert with_table_fit(len, "mined.parquet", "triplet") is len  # carries no other key


def test_mine_refuses_before_any_work_what_its_parquet_output_could_not_hold(make_config, tmp_path):
    from prep.errors import DataError
    from prep.io.jsonl import read_jsonl
    from prep.io.paths import SAMPLE_TRAIN
    from prep.steps import mine

    rows = read_jsonl(SAMPLE_TRAIN)[:20]
    lines = [json.dumps({**row, "id": index}) for index, row in enumerate(rows)]
    lines[7] = json.dumps({**rows[7], "id": "seven"})
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as caught:
        mine.run(make_config(f"input={data}", f"output={tmp_path / 'mined.parquet'}", f"cache_dir={tmp_path / 'c'}"))
    assert str(caught.value).startswith(f"{data}:8: field 'id': is string here but int64 in an earlier row")
    assert not (tmp_path / "mined.parquet").exists() and not (tmp_path / "c").exists()
