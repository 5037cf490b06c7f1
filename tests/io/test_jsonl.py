import json
from pathlib import Path

import pytest

from prep.errors import DataError, OutputExistsError
from prep.io.atomic import atomic_file
from prep.io.jsonl import check_pool_row, check_training_row, read_jsonl, write_jsonl


def bad_file(tmp_path: Path, second_line: str) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"query": "q", "pos": ["p"]}) + "\n" + second_line + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "line, field, message",
    [
        ('{"query": "q", "pos": ["p"]', None, "not valid JSON"),
        ('["query", "pos"]', None, "must be a JSON object"),
        ('{"pos": ["p"]}', "query", "is missing"),
        ('{"query": 3, "pos": ["p"]}', "query", "must be a string"),
        ('{"query": "q", "pos": "a passage"}', "pos", "got a string"),
        ('{"query": "q", "pos": []}', "pos", "is empty"),
        ('{"query": "q"}', "pos", "is missing"),
        ('{"query": "q", "pos": ["p", 4]}', "pos[1]", "must be a string"),
        ('{"query": "q", "pos": ["p"], "neg": "n"}', "neg", "got a string"),
        ('{"query": "q", "pos": ["p"], "neg": [null]}', "neg[0]", "must be a string"),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path, line, field, message):
    path = bad_file(tmp_path, line)
    with pytest.raises(DataError) as caught:
        read_jsonl(path, check_training_row)
    text = str(caught.value)
    assert text.startswith(f"{path}:2: ")
    assert message in text
    if field:
        assert f"field '{field}'" in text
    assert caught.value.line == 2 and caught.value.field == field


def test_blank_lines_are_skipped_but_counted(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"query": "q", "pos": ["p"]}\n\n{"query": 1, "pos": ["p"]}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"train.jsonl:3: field 'query'"):
        read_jsonl(path, check_training_row)


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(DataError, match="empty.jsonl: holds no rows"):
        read_jsonl(empty, check_training_row)
    with pytest.raises(DataError, match="missing.jsonl: no such file"):
        read_jsonl(tmp_path / "missing.jsonl", check_training_row)


def test_pool_rows_need_a_text(tmp_path):
    path = tmp_path / "pool.jsonl"
    path.write_text('{"text": "a"}\n{"txt": "b"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"pool.jsonl:2: field 'text': is missing"):
        read_jsonl(path, check_pool_row)


def test_need_neg(tmp_path):
    path = bad_file(tmp_path, '{"query": "q", "pos": ["p"], "neg": []}')
    with pytest.raises(DataError, match=r":1: field 'neg': is missing"):
        read_jsonl(path, lambda row: check_training_row(row, need_neg=True))


def test_write_is_atomic_and_refuses_to_overwrite(tmp_path):
    target = tmp_path / "out" / "rows.jsonl"
    assert write_jsonl(target, [{"a": "é"}, {"b": 2}]) == 2
    assert target.read_text(encoding="utf-8") == '{"a": "é"}\n{"b": 2}\n'
    with pytest.raises(OutputExistsError, match="overwrite=true"):
        write_jsonl(target, [{"c": 3}])
    assert target.read_text(encoding="utf-8") == '{"a": "é"}\n{"b": 2}\n'

    def failing_rows():
        yield {"c": 3}
        raise RuntimeError("crash in the middle")

    with pytest.raises(RuntimeError):
        write_jsonl(target, failing_rows(), overwrite=True)
    assert target.read_text(encoding="utf-8") == '{"a": "é"}\n{"b": 2}\n'
    assert sorted(p.name for p in target.parent.iterdir()) == ["rows.jsonl"]
    write_jsonl(target, [{"c": 3}], overwrite=True)
    assert target.read_text(encoding="utf-8") == '{"c": 3}\n'


def test_atomic_file_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "new.json"
    with pytest.raises(ValueError), atomic_file(target) as handle:
        handle.write("half")
        raise ValueError("stop")
    assert list(tmp_path.iterdir()) == []
