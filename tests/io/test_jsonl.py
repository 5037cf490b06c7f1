import json
from pathlib import Path

import pytest

from prep.errors import DataError, OutputExistsError
from prep.io.atomic import atomic_file
from prep.io.formats import write_jsonl
from prep.io.jsonl import check_pool_row, check_training_row, read_jsonl


def bad_file(tmp_path: Path, second_line: str) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"query": "q", "pos": ["p"]}) + "\n" + second_line + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "line, field, message",
    [
        ('{"query": "q", "pos": ["p"]', None, "not valid JSON"),
        ('{"query": "a\tb", "pos": ["p"]}', None, "not valid JSON (Invalid control character at column 13)"),
        ('["query", "pos"]', None, "must be a JSON object"),
        ('{"pos": ["p"]}', "query", "is missing"),
        ('{"query": 3, "pos": ["p"]}', "query", "must be a string"),
        ('{"query": "q", "pos": "a passage"}', "pos", "got a string"),
        ('{"query": "q", "pos": []}', "pos", "is empty"),
        ('{"query": "q"}', "pos", "is missing"),
        ('{"query": "q", "pos": ["p", 4]}', "pos[1]", "must be a string"),
        ('{"query": "q", "pos": ["p"], "neg": "n"}', "neg", "got a string"),
        ('{"query": "q", "pos": ["p"], "neg": [null]}', "neg[0]", "must be a string"),
        # text no model can take, and data a reader would lose
        ('{"query": "a \\ud800 b", "pos": ["p"]}', "query", "lone surrogate \\ud800 at character 2"),
        ('{"query": "q", "pos": ["p", "\\udfff"]}', "pos[1]", "lone surrogate \\udfff"),
        ('{"query": "q", "pos": ["p"], "neg": ["\\ud83d"]}', "neg[0]", "lone surrogate"),
        ('{"query": "", "pos": ["p"]}', "query", "is an empty string"),
        ('{"query": "q", "pos": [""]}', "pos[0]", "is an empty string"),
        ('{"query": " \\t\\n", "pos": ["p"]}', "query", "holds only whitespace"),
        ('{"query": "q", "pos": ["p"], "neg": ["\\u3000"]}', "neg[0]", "holds only whitespace"),
        ('{"query": "a\\u0000b", "pos": ["p"]}', "query", "holds a NUL character (\\u0000) at character 1"),
        ('{"query": "q", "query": "r", "pos": ["p"]}', None, 'key "query" appears twice'),
        ('{"query": "q", "pos": ["p"], "meta": NaN}', None, "NaN is not a JSON value"),
        ('{"query": "q", "pos": ["p"], "meta": -Infinity}', None, "-Infinity is not a JSON value"),
        # issue 32, defect 6: a RecursionError traceback before
        ('{"query": "q", "pos": ["p"], "deep": ' + "[" * 100_000 + "]" * 100_000 + "}", None, "nested too deeply"),
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


@pytest.mark.parametrize("data, line, message", [
    (b'{"query": "bad \xff byte", "pos": ["p"]}\n', 2, "not valid UTF-8 (byte 0xff at byte 16 of the line)"),
    (b'{"query": "q", "pos": ["p"]}\n{"query": "q", "pos": ["\xc3"]}\n', 3, "not valid UTF-8 (byte 0xc3"),
])
def test_bytes_that_are_not_utf8_name_their_line(tmp_path, data, line, message):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"query": "fine", "pos": ["fine"]}\n' + data)
    with pytest.raises(DataError) as caught:
        read_jsonl(path, check_training_row)
    assert str(caught.value).startswith(f"{path}:{line}: ") and message in str(caught.value)


def test_carried_keys_leave_exactly_as_they_came(tmp_path):
    from prep.io.jsonl import dump_row

    line = ('{"query": "q", "pos": ["p"], "meta": 1e400, "ratio": 1.10, "big": 1E5, "name": "\\u00e9\\ud800", '
            '"nested": {"a": [1, 2.50], "a": 3}, "\\ud800key": [ true ,null ]}')
    path = tmp_path / "train.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    row = read_jsonl(path, check_training_row)[0]
    assert dump_row(row) == line + "\n"
    changed = dump_row(row.replaced(neg=["n é"]))
    assert changed == line[:-1] + ', "neg": ["n é"]}\n'
    assert dump_row(row.replaced(removed=("meta",), query="new")) == line.replace(' "meta": 1e400,', "").replace(
        '"query": "q"', '"query": "new"') + "\n"


def test_a_byte_order_mark_is_read_and_crlf_lines_parse(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"query": "q", "pos": ["p"]}\r\n{"query": "r", "pos": ["s"]}\r\n')
    assert [r["query"] for r in read_jsonl(path, check_training_row)] == ["q", "r"]


def test_outputs_follow_the_umask_and_never_replace_a_folder_or_a_link(tmp_path):
    import os

    old = os.umask(0o027)
    try:
        from prep.io.atomic import file_mode

        file_mode.cache_clear()
        write_jsonl(tmp_path / "out.jsonl", [{"a": 1}])
        assert (tmp_path / "out.jsonl").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)
        file_mode.cache_clear()
    (tmp_path / "folder.jsonl").mkdir()
    with pytest.raises(OutputExistsError, match="is a folder"):
        write_jsonl(tmp_path / "folder.jsonl", [{"a": 1}], overwrite=True)
    (tmp_path / "dangling.jsonl").symlink_to(tmp_path / "gone.jsonl")
    with pytest.raises(OutputExistsError, match="overwrite=true"):
        write_jsonl(tmp_path / "dangling.jsonl", [{"a": 1}])
    assert not (tmp_path / "gone.jsonl").exists()
