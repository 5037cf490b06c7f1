"""Property tests of table inputs (issue 32's suites): parquet and CSV files written from generated rows, with
carried columns of any type, nulls included, are read into rows whose values JSON lines hold and write back, or
the read stops with one DataError naming the file (and the row where there is one); never another exception."""

from __future__ import annotations

import csv
import datetime
import json
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from prep.cache.store import Cache
from prep.cache.tables import TableEntries
from prep.config.schema import ColumnsConfig
from prep.errors import DataError
from prep.io.formats import write_rows
from prep.io.jsonl import check_training_row, read_jsonl
from prep.io.reader import Reader
from prep.io.sources import resolve

TABLES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Texts the parquet writer can encode (no lone surrogates: UTF-8 cannot hold them); empty, blank and NUL included.
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
CARRIED_VALUES = {
    "int": st.integers(-2**63, 2**63 - 1),
    "float": st.floats(allow_subnormal=False),  # NaN and infinities included: no JSON holds them
    "text": TEXT,
    "bool": st.booleans(),
    "ints": st.lists(st.integers(-1000, 1000), max_size=3),
    "bytes": st.binary(max_size=4),
    "date": st.dates(min_value=datetime.date(1900, 1, 1), max_value=datetime.date(2100, 1, 1)),
    "record": st.fixed_dictionaries({"a": st.integers(0, 9), "b": TEXT}),
}


@st.composite
def tables(draw) -> tuple[list[dict], dict[str, str]]:
    """Rows of FlagEmbedding's columns and carried columns, each carried column of one type, nulls anywhere."""
    kinds = draw(st.dictionaries(st.sampled_from(["w", "note", "meta", "id"]), st.sampled_from(sorted(CARRIED_VALUES)),
                                 max_size=3))
    count = draw(st.integers(1, 5))
    rows = []
    for _ in range(count):
        row = {"query": draw(TEXT), "pos": draw(st.lists(TEXT, min_size=1, max_size=2))}
        if draw(st.booleans()):
            row["neg"] = draw(st.lists(TEXT, max_size=2))
        for name, kind in kinds.items():
            row[name] = draw(st.none() | CARRIED_VALUES[kind])
        rows.append(row)
    return rows, kinds


def _bad_text(text: object) -> bool:
    return not isinstance(text, str) or not text or text.isspace() or "\x00" in text


def _json_can_hold(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (bytes, datetime.date)):
        return False
    if isinstance(value, list):
        return all(map(_json_can_hold, value))
    if isinstance(value, dict):
        return all(map(_json_can_hold, value.values()))
    return True


def _read(path: Path, cache: Path) -> list[dict]:
    reader = Reader(ColumnsConfig(), "train", TableEntries(Cache(cache)))
    return reader.training_rows(resolve(path), check_training_row)


@TABLES
@given(table=tables())
def test_a_parquet_file_of_any_rows_is_read_faithfully_or_refused_naming_file_and_row(table):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, kinds = table
    try:
        arrow = pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        assume(False)  # rows pyarrow itself cannot put in one table: no parquet file to read
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "train.parquet"
        pq.write_table(arrow, path)
        # What the file holds: pyarrow takes its columns from the first row, nulls where a row lacks one.
        expected = [{key: value for key, value in row.items() if value is not None} for row in arrow.to_pylist()]
        bad = [number for number, row in enumerate(expected, start=1)
               if _bad_text(row["query"]) or any(map(_bad_text, row["pos"] + row.get("neg", [])))
               or not all(_json_can_hold(row[name]) for name in kinds if name in row)]
        try:
            read = _read(path, Path(scratch) / "cache")
        except DataError as exc:
            assert bad, str(exc)
            assert str(exc).startswith(f"{path}: row {bad[0]}: "), str(exc)
            assert not [p for p in (Path(scratch) / "cache").rglob("*") if p.is_file()]  # no cache entry kept
            return
        assert not bad
        assert read == expected
        out = Path(scratch) / "out.jsonl"
        write_rows(out, read)
        assert read_jsonl(out) == json.loads(json.dumps(expected))


@st.composite
def csv_tables(draw) -> list[list[str]]:
    """A CSV file's cells: a header of sentence-transformers' columns and carried ones, then rows of any text."""
    carried = draw(st.lists(st.sampled_from(["note", "w", "meta"]), unique=True, max_size=2))
    header = ["anchor", "positive", *(["negative"] if draw(st.booleans()) else []), *carried]
    cell = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r"), max_size=10)
    return [header, *draw(st.lists(st.lists(cell, min_size=len(header), max_size=len(header)), max_size=5))]


@TABLES
@given(cells=csv_tables())
def test_a_csv_file_of_any_cells_is_read_or_refused_in_one_line(cells):
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "train.csv"
        with open(path, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(cells)
        try:
            read = _read(path, Path(scratch) / "cache")
        except DataError as exc:
            assert str(exc).startswith(f"{path}: "), str(exc)
            assert "\n" not in str(exc).strip(), str(exc)
            return
        assert len(read) == len(cells) - 1
        for row in read:
            assert set(row) <= {"query", "pos", "neg", *cells[0][2:]}
            assert isinstance(row["query"], str) and all(isinstance(p, str) for p in row["pos"])
            assert set(cells[0][3 if "negative" in cells[0] else 2:]) <= set(row)  # carried columns kept, nulls too
        out = Path(scratch) / "out.jsonl"
        write_rows(out, read)
        assert read_jsonl(out) == json.loads(json.dumps(read))


@pytest.mark.parametrize("value", [float("nan"), b"\x00", datetime.date(2026, 12, 6)])
def test_the_predicate_of_what_json_holds_is_not_vacuous(value):
    assert not _json_can_hold(value) and not _json_can_hold([value]) and _json_can_hold([1, "a", None])
