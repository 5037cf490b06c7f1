"""Reading rows and pools from every container through ``io.sources``: columns found by name or given, errors
naming the file (or dataset and split), the row and the source's own column."""

from __future__ import annotations

import json

import pytest

from prep.cache.store import Cache
from prep.cache.tables import TableEntries
from prep.config.schema import ColumnsConfig
from prep.errors import DataError
from prep.io.jsonl import check_training_row
from prep.io.reader import Reader
from prep.io.sources import resolve

ROWS = [{"query": "q1", "pos": ["p1"], "neg": ["n1", "n2"], "type": "normal"},
        {"query": "q2", "pos": ["p2", "p3"], "neg": ["n3"], "type": "normal"}]


def reader(tmp_path, **columns) -> Reader:
    return Reader(ColumnsConfig(**columns), "train", TableEntries(Cache(tmp_path / "cache")))


def read(tmp_path, value, **columns):
    r = reader(tmp_path, **columns)
    return r.training_rows(r.source(value), check_training_row)


def write_parquet(path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("container", ["jsonl", "json-array", "parquet", "saved", "saved-dict", "folder"])
def test_every_container_gives_the_same_rows(tmp_path, container):
    import datasets

    if container == "jsonl":
        target = tmp_path / "rows.jsonl"
        target.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    elif container == "json-array":
        target = tmp_path / "rows.json"
        target.write_text(json.dumps(ROWS), encoding="utf-8")
    elif container == "parquet":
        target = write_parquet(tmp_path / "rows.parquet", ROWS)
    elif container == "saved":
        target = tmp_path / "saved"
        datasets.Dataset.from_list(ROWS).save_to_disk(str(target))
    elif container == "saved-dict":
        target = tmp_path / "saved"
        datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS)}).save_to_disk(str(target))
    else:
        target = tmp_path / "parts"
        target.mkdir()
        write_parquet(target / "a.parquet", ROWS[:1])
        (target / "b.jsonl").write_text(json.dumps(ROWS[1]) + "\n", encoding="utf-8")
        (target / "README.txt").write_text("not data", encoding="utf-8")
    assert [dict(row) for row in read(tmp_path, target)] == ROWS


def test_sentence_transformers_columns_become_flagembedding_rows(tmp_path):
    path = write_parquet(tmp_path / "st.parquet", [
        {"anchor": "q1", "positive": "p1", "negative_1": "n1", "negative_2": "n2", "negative_10": "n10"},
        {"anchor": "q2", "positive": "p2", "negative_1": "n3", "negative_2": None, "negative_10": None}])
    rows = read(tmp_path, path)
    # negative_10 sorts after negative_2 (by number); a null in a numbered column is no negative
    assert rows == [{"query": "q1", "pos": ["p1"], "neg": ["n1", "n2", "n10"]},
                    {"query": "q2", "pos": ["p2"], "neg": ["n3"]}]


def test_a_triplet_file_in_json_lines_is_mapped_and_keeps_extra_keys(tmp_path):
    path = tmp_path / "triplets.jsonl"
    path.write_text(json.dumps({"anchor": "q", "positive": "p", "negative": "n", "id": 7}) + "\n", encoding="utf-8")
    assert read(tmp_path, path) == [{"query": "q", "pos": ["p"], "neg": ["n"], "id": 7}]


def test_columns_can_be_named(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("question,answer\nwhat is it,an answer\n", encoding="utf-8")
    assert read(tmp_path, path, query="question", pos="answer") == [{"query": "what is it", "pos": ["an answer"]}]


def test_a_string_in_flagembeddings_pos_is_still_an_error(tmp_path):
    path = write_parquet(tmp_path / "rows.parquet", [{"query": "q", "pos": "p"}])
    with pytest.raises(DataError, match=r"rows.parquet: row 1: field 'pos': must be a list of strings, got a string"):
        read(tmp_path, path)


def test_a_bad_row_names_the_file_the_row_and_the_sources_column(tmp_path):
    path = write_parquet(tmp_path / "st.parquet", [{"anchor": "q", "positive": "p"}, {"anchor": "q", "positive": ""}])
    with pytest.raises(DataError, match=r"st.parquet: row 2: field 'positive\[0\]': is an empty string"):
        read(tmp_path, path)


def test_a_missing_column_is_named_with_the_columns_there(tmp_path):
    path = write_parquet(tmp_path / "rows.parquet", [{"question": "q", "pos": ["p"]}])
    with pytest.raises(DataError, match="has no query column .*columns: pos, question.*columns.query"):
        read(tmp_path, path)
    with pytest.raises(DataError, match="has no column 'title'"):
        read(tmp_path, path, query="title")


def test_json_lines_errors_keep_their_line_numbers(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"query": "q", "pos": ["p"]}\n\n{"query": "q", "pos": []}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"rows.jsonl:3: field 'pos': is empty"):
        read(tmp_path, path)


def test_a_saved_dataset_dict_without_the_split_says_which_splits_it_has(tmp_path):
    import datasets

    datasets.DatasetDict({"dev": datasets.Dataset.from_list(ROWS)}).save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(DataError, match="has no split 'train' \\(it has dev\\): pass input_split=NAME"):
        read(tmp_path, tmp_path / "saved")


@pytest.fixture
def offline_datasets_cache(tmp_path, monkeypatch):
    """An empty 🤗 datasets cache in ``tmp_path``, offline; returns a function that puts a dataset in it as
    ``load_dataset`` leaves one it has downloaded (prepared Arrow files under ``owner___name/default``)."""
    import glob
    import os

    import datasets
    import huggingface_hub.constants

    cache = tmp_path / "hf-datasets"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    def put(name: str, rows: list[dict]) -> None:
        owner, short = name.split("/")
        path = write_parquet(tmp_path / f"{short}.parquet", rows)
        datasets.load_dataset("parquet", data_files={"train": str(path)}, cache_dir=str(cache))
        os.rename(cache / "parquet", cache / f"{owner}___{short}")
        [config] = glob.glob(str(cache / f"{owner}___{short}" / "default-*"))
        os.rename(config, cache / f"{owner}___{short}" / "default")
        for arrow in glob.glob(str(cache / f"{owner}___{short}" / "default" / "*" / "*" / "parquet-*.arrow")):
            os.rename(arrow, arrow.replace("/parquet-", f"/{short}-"))

    return put


def test_a_dataset_id_in_the_local_cache_is_read_offline(tmp_path, offline_datasets_cache):
    offline_datasets_cache("someone/tiny", [{"anchor": "q", "positive": "p", "negative": "n"}])
    assert read(tmp_path, "someone/tiny") == [{"query": "q", "pos": ["p"], "neg": ["n"]}]


def test_a_dataset_id_not_in_the_cache_says_so_offline(tmp_path, offline_datasets_cache):
    source = resolve("nobody-here/no-such-dataset")
    assert source.label == "nobody-here/no-such-dataset[train]"
    with pytest.raises(DataError, match=r"nobody-here/no-such-dataset\[train\]: cannot load this dataset: it is not "
                                        "in the local Hugging Face cache"):
        reader(tmp_path).training_rows(source, check_training_row)


def test_unknown_suffixes_and_missing_paths_are_named(tmp_path):
    (tmp_path / "rows.xlsx").write_bytes(b"x")
    with pytest.raises(DataError, match="cannot read '.xlsx' files"):
        resolve(tmp_path / "rows.xlsx")
    with pytest.raises(DataError, match="no such file or folder"):
        resolve(tmp_path / "missing.parquet")
    with pytest.raises(DataError, match="^/dev/null: is not a file or a folder \\(a device, a pipe or a socket\\)"):
        resolve("/dev/null")


@pytest.mark.parametrize("name, content", [
    ("empty.csv", ""), ("header.csv", "query,pos\n\n"), ("empty.json", " [\n ] "), ("empty.parquet", None)])
def test_a_table_file_of_no_rows_says_so(tmp_path, name, content):
    path = tmp_path / name
    if content is None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"query": pa.array([], pa.string())}), path)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=f"^{path}: holds no rows$"):
        read(tmp_path, path)


def test_pool_texts_from_parquet_by_name_or_given_column(tmp_path):
    path = write_parquet(tmp_path / "pool.parquet", [{"id": 1, "text": "a"}, {"id": 2, "text": "b"}])
    assert list(reader(tmp_path).pool_texts(resolve(path))) == ["a", "b"]
    other = write_parquet(tmp_path / "corpus.parquet", [{"body": "a"}, {"body": None}])
    with pytest.raises(DataError, match=r"corpus.parquet: row 2: field 'body': must be a string, got NoneType"):
        list(reader(tmp_path, text="body").pool_texts(resolve(other)))


def test_a_json_lines_pool_with_a_named_text_column_keeps_line_numbers(tmp_path):
    path = tmp_path / "pool.jsonl"
    path.write_text('{"body": "a"}\n\n{"body": ""}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"pool.jsonl:3: field 'body': is an empty string"):
        list(reader(tmp_path, text="body").pool_texts(resolve(path)))
    path.write_text('{"body": "a"}\n{"text": "b"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"pool.jsonl:2: field 'body': is missing"):
        list(reader(tmp_path, text="body").pool_texts(resolve(path)))


def test_a_null_in_a_table_is_a_key_the_row_does_not_have(tmp_path):
    path = write_parquet(tmp_path / "rows.parquet", [{"query": "q1", "pos": ["p"], "neg": ["n"], "prompt": "P: "},
                                                     {"query": "q2", "pos": ["p"], "neg": None, "prompt": None}])
    assert read(tmp_path, path) == [{"query": "q1", "pos": ["p"], "neg": ["n"], "prompt": "P: "},
                                    {"query": "q2", "pos": ["p"]}]
    missing = write_parquet(tmp_path / "missing.parquet", [{"query": "q", "pos": ["p"]}, {"query": "q", "pos": None}])
    with pytest.raises(DataError, match=r"missing.parquet: row 2: field 'pos': is missing"):
        read(tmp_path, missing)


def test_an_empty_csv_cell_of_a_carried_column_is_kept_as_null(tmp_path):
    """A CSV row has every column: an empty cell is the row's value there (null), not a key it lacks; in a parquet
    file (often made from JSON rows, where keys come and go) a null stays a key the row does not have."""
    path = tmp_path / "rows.csv"
    path.write_text("anchor,positive,negative,note\nq1,p1,,\nq2,p2,n2,hello\n", encoding="utf-8")
    assert read(tmp_path, path) == [{"query": "q1", "pos": ["p1"], "note": None},
                                    {"query": "q2", "pos": ["p2"], "neg": ["n2"], "note": "hello"}]
    parquet = write_parquet(tmp_path / "rows.parquet", [{"query": "q1", "pos": ["p1"], "note": None},
                                                        {"query": "q2", "pos": ["p2"], "note": "hello"}])
    assert read(tmp_path, parquet) == [{"query": "q1", "pos": ["p1"]}, {"query": "q2", "pos": ["p2"], "note": "hello"}]
