"""``io.rowstore``: rows read once, then read again by span from where they are, equal to the first read."""

from __future__ import annotations

import json
import os

import pytest

from prep.cache.store import Cache
from prep.cache.tables import TableEntries
from prep.config.schema import ColumnsConfig
from prep.errors import DataError
from prep.io.conversions import Conversions
from prep.io.jsonl import check_training_row
from prep.io.rowstore import ListRows, SourceRows
from prep.io.sources import resolve
from tests.io.test_sources import write_parquet

ROWS = [{"query": f"q{i}", "pos": [f"p{i}"], "neg": [f"n{i}", "ü€"], "extra": {"k": i}} for i in range(7)]


def conversions(tmp_path) -> Conversions:
    return Conversions(TableEntries(Cache(tmp_path / "cache")), tmp_path)


def scanned(tmp_path, target, **columns) -> tuple[SourceRows, list[dict]]:
    store = SourceRows(resolve(target), ColumnsConfig(**columns), check_training_row, conversions(tmp_path))
    return store, list(store.scan())


def test_spans_read_again_equal_the_first_read_across_parts_and_line_quirks(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    # a byte-order mark, CRLF endings, blank lines, a last line without its newline, then a table part
    lines = [json.dumps(row, ensure_ascii=False) for row in ROWS[:4]]
    (folder / "a.jsonl").write_bytes(b"\xef\xbb\xbf" + "\r\n\n".join(lines).encode("utf-8"))
    write_parquet(folder / "b.parquet", ROWS[4:])
    store, first = scanned(tmp_path, folder)
    assert len(store) == 7 and [dict(row) for row in first] == ROWS
    for start in range(8):
        for stop in range(start, 8):
            assert [dict(row) for row in store.rows(range(start, stop))] == ROWS[start:stop]
    assert [dict(row) for row in store] == ROWS


def test_sentence_transformers_columns_are_mapped_on_every_read(tmp_path):
    path = tmp_path / "st.jsonl"
    path.write_text("".join(json.dumps({"anchor": f"a{i}", "positive": f"b{i}"}) + "\n" for i in range(3)))
    store, first = scanned(tmp_path, path)
    assert store.rows(range(1, 3)) == [{"query": "a1", "pos": ["b1"]}, {"query": "a2", "pos": ["b2"]}] == first[1:]


def test_a_bad_row_is_named_by_the_scan(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps({"query": "q", "pos": []}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: field 'pos'"):
        scanned(tmp_path, path)


def test_a_file_changed_after_the_scan_is_not_read_again(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    store, _ = scanned(tmp_path, path)
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS[1:]))
    os.utime(path, ns=(0, 0))
    with pytest.raises(DataError, match="rows.jsonl: changed while its rows were being mined"):
        store.rows(range(0, 2))


def test_rows_in_memory_are_their_own_store():
    store = ListRows(ROWS)
    assert len(store) == 7 and store.rows(range(2, 4)) == ROWS[2:4] and list(store) == ROWS


@pytest.mark.parametrize("value, problem", [
    (float("nan"), "NaN is not JSON"), (float("-inf"), "-inf is not JSON"), (b"\x00\x01", "of type bytes"),
    ("timestamp", "of type datetime"), ([1.0, float("inf")], "inf is not JSON"),
])
def test_a_table_value_json_cannot_hold_stops_the_read_naming_file_row_and_column(tmp_path, value, problem):
    import datetime

    carried = datetime.datetime(2026, 12, 6, 12, 0) if value == "timestamp" else value
    path = write_parquet(tmp_path / "train.parquet", [{"query": "q1", "pos": ["p1"], "w": None},
                                                      {"query": "q2", "pos": ["p2"], "w": carried}])
    store = SourceRows(resolve(path), ColumnsConfig(), check_training_row, conversions(tmp_path))
    with pytest.raises(DataError) as caught:
        list(store.scan())
    assert str(caught.value).startswith(f"{path}: row 2: field 'w': ") and problem in str(caught.value)
    assert "drop or convert the column" in str(caught.value)
