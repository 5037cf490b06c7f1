"""Table files' Arrow conversions in the cache (``io.conversions``, ``cache.tables``): kept only once the rows read
from them passed their checks, reused while the file is unchanged, rebuilt when damaged."""

from __future__ import annotations

import logging

import pytest

from prep.cache.store import Cache
from prep.cache.tables import TableEntries
from prep.config.schema import ColumnsConfig
from prep.errors import DataError
from prep.io.jsonl import check_training_row
from prep.io.reader import Reader
from prep.io.sources import resolve
from tests.io.test_sources import write_parquet

ROWS = [{"query": f"q{i}", "pos": [f"p{i}"], "neg": [f"n{i}"], "w": i} for i in range(5)]


def read(cache: Cache, path) -> list[dict]:
    reader = Reader(ColumnsConfig(), "train", TableEntries(cache))
    return reader.training_rows(resolve(path), check_training_row)


def files_under(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_a_conversion_is_kept_once_and_read_again_from_the_cache(tmp_path):
    path = write_parquet(tmp_path / "train.parquet", ROWS)
    cache = Cache(tmp_path / "cache")
    assert read(cache, path) == ROWS
    assert (cache.hits, cache.misses) == (0, 1)
    entries = [p for p in (tmp_path / "cache" / "datasets").iterdir()]
    assert len(entries) == 1 and entries[0].is_dir() and not entries[0].name.startswith(".")
    assert any(name.endswith(".arrow") for name in files_under(entries[0]))
    assert read(cache, path) == ROWS
    assert (cache.hits, cache.misses) == (1, 1)
    write_parquet(path, ROWS[:2])  # the file changed: converted again
    assert read(cache, path) == ROWS[:2]
    assert (cache.hits, cache.misses) == (1, 2)


@pytest.mark.parametrize("bad", [{"pos": [""]}, {"query": None}, {"pos": []}])
def test_a_rejected_table_leaves_no_cache_entry(tmp_path, bad):
    rows = [dict(row) for row in ROWS]
    rows[3].update(bad)
    path = write_parquet(tmp_path / "train.parquet", rows)
    with pytest.raises(DataError, match=rf"^{path}: row 4: field "):
        read(Cache(tmp_path / "cache"), path)
    assert files_under(tmp_path / "cache") == []


def test_a_rejected_pool_table_leaves_no_cache_entry(tmp_path):
    path = write_parquet(tmp_path / "pool.parquet", [{"text": "a"}, {"text": ""}])
    reader = Reader(ColumnsConfig(), "train", TableEntries(Cache(tmp_path / "cache")))
    with pytest.raises(DataError, match=rf"^{path}: row 2: field 'text': is an empty string"):
        list(reader.pool_texts(resolve(path)))
    assert files_under(tmp_path / "cache") == []
    good = write_parquet(tmp_path / "good.parquet", [{"text": "a"}, {"text": "b"}])
    assert list(reader.pool_texts(resolve(good))) == ["a", "b"]
    assert any(name.endswith(".arrow") for name in files_under(tmp_path / "cache"))


def test_a_damaged_conversion_is_rebuilt_not_blamed_on_the_input(tmp_path, caplog):
    path = write_parquet(tmp_path / "train.parquet", ROWS)
    cache = Cache(tmp_path / "cache")
    read(cache, path)
    arrow = next((tmp_path / "cache" / "datasets").rglob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[:500])  # truncated, as by a full disk
    with caplog.at_level(logging.WARNING):
        assert read(cache, path) == ROWS
    assert "does not load" in caplog.text and "rebuilding it" in caplog.text
    assert read(cache, path) == ROWS  # the rebuilt entry loads
    assert (cache.hits, cache.misses) == (1, 2)


def test_without_a_cache_a_table_is_read_and_nothing_is_kept(tmp_path):
    path = write_parquet(tmp_path / "train.parquet", ROWS)
    assert Reader(ColumnsConfig()).training_rows(resolve(path), check_training_row) == ROWS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.parquet"]


def test_mine_on_a_rejected_parquet_input_leaves_no_cache_entry(make_config, tmp_path):
    from prep.steps import mine

    rows = [{"query": f"query {i}", "pos": [f"passage {i}"], "neg": [f"other {i}"]} for i in range(6)]
    rows[2]["pos"] = [""]
    path = write_parquet(tmp_path / "train.parquet", rows)
    with pytest.raises(DataError, match=rf"^{path}: row 3: field 'pos\[0\]': is an empty string"):
        mine.run(make_config(f"input={path}"))
    assert files_under(tmp_path / "cache") == []
