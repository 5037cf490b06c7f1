"""JSON-lines rows: reading them, checking each (errors name the file, line and field), writing them.

Files are read as bytes and each line decoded as strict UTF-8, so a bad byte is an error naming its
line, not a traceback. Rows are parsed by ``rawjson.parse_object``: keys we do not change are written
back exactly as they came.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from prep.errors import DataError
from prep.io.rawjson import dump_row, parse_object

__all__ = ["FieldError", "check_pool_row", "check_row_and_scores", "check_scores", "check_training_row", "check_text",
           "dump_row", "iter_jsonl",
           "iter_line_offsets", "iter_lines", "parse_line", "read_line_at", "read_jsonl"]

_SURROGATE = re.compile("[\ud800-\udfff]")

RowCheck = Callable[[dict[str, Any]], None]


class FieldError(ValueError):
    """Raised by a row check; the reader adds the file and line."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def check_text(value: Any, field: str) -> None:
    """A text we encode or tokenize: a string, not empty or only whitespace (either encodes as the empty text),
    without a NUL character (a sign of binary data; C-string tools cut the text there), and valid Unicode (a JSON
    escape such as ``\\ud800`` alone is a lone surrogate, which no model or file can take)."""
    if not isinstance(value, str):
        raise FieldError(field, f"must be a string, got {type(value).__name__}")
    if not value:
        raise FieldError(field, "is an empty string")
    if value.isspace():
        raise FieldError(field, "holds only whitespace")
    if "\x00" in value:
        raise FieldError(field, f"holds a NUL character (\\u0000) at character {value.index(chr(0))}")
    found = _SURROGATE.search(value)
    if found:
        raise FieldError(field, f"holds a lone surrogate \\u{ord(found.group()):04x} at character {found.start()}, "
                                "which is not valid Unicode text")


def _string_list(row: dict[str, Any], key: str, *, allow_empty: bool) -> None:
    value = row[key]
    if isinstance(value, str):
        raise FieldError(key, "must be a list of strings, got a string (wrap it in a list: [\"...\"])")
    if not isinstance(value, list):
        raise FieldError(key, f"must be a list of strings, got {type(value).__name__}")
    if not value and not allow_empty:
        raise FieldError(key, "is empty; every row needs at least one passage")
    for index, item in enumerate(value):
        check_text(item, f"{key}[{index}]")


def check_training_row(row: dict[str, Any], *, need_neg: bool = False) -> None:
    """FlagEmbedding's training row: a non-empty ``query``, a non-empty ``pos`` list, lists of non-empty strings."""
    if "query" not in row:
        raise FieldError("query", "is missing")
    check_text(row["query"], "query")
    if "pos" not in row:
        raise FieldError("pos", "is missing")
    _string_list(row, "pos", allow_empty=False)
    if "neg" in row:
        _string_list(row, "neg", allow_empty=True)
    elif need_neg:
        raise FieldError("neg", "is missing; mine negatives first (step=mine)")


def check_scores(row: dict[str, Any]) -> None:
    """The teacher scores a row carries (``pos_scores``, ``neg_scores``): each a list of finite numbers, one per
    passage of its side. Every step that reads scores checks them so: ``step=score``, and ``step=split`` into a
    sentence-transformers format (its ``scores`` column)."""
    for side in ("pos", "neg"):
        key = f"{side}_scores"
        if key not in row:
            continue
        scores = row[key]
        if not isinstance(scores, list) or not all(
            isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) for s in scores
        ):
            raise FieldError(key, "must be a list of numbers, each finite")
        passages = row.get(side, [])
        if len(scores) != len(passages):
            raise FieldError(key, f"has {len(scores)} scores for {len(passages)} passages in '{side}'")


def check_row_and_scores(row: dict[str, Any]) -> None:
    """A training row (``check_training_row``) and the scores it carries (``check_scores``)."""
    check_training_row(row)
    check_scores(row)


def check_json_values(row: dict[str, Any]) -> None:
    """Every value of a row read from a table is one JSON can hold, so that no output fails after the work: a
    table's NaN or infinity, bytes, a timestamp or a date would (JSON lines give none of these)."""
    for key, value in row.items():
        problem = _not_json(value)
        if problem is not None:
            raise FieldError(key, f"{problem} is not JSON, so no output can carry it; drop or convert the column")


def _not_json(value: Any) -> str | None:
    """What in ``value`` JSON cannot hold, or None."""
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else str(value).replace("nan", "NaN")
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
    if items is None:
        return f"a value of type {type(value).__name__} ({str(value)[:40]})"
    return next((problem for item in items if (problem := _not_json(item)) is not None), None)


def check_instruction(row: dict[str, Any], column: str) -> None:
    """A row's own query instruction (``*.query_instruction_from_row``): absent, null or "" takes the configured
    one; anything else must be text (a number or a list was silently no instruction once)."""
    value = row.get(column)
    if value is not None and value != "":
        check_text(value, column)


def both(first: RowCheck, second: RowCheck) -> RowCheck:
    """A row check that runs ``first``, then ``second``."""
    def checked(row: dict[str, Any]) -> None:
        first(row)
        second(row)

    return checked


def with_instruction_check(check: RowCheck, column: str | None) -> RowCheck:
    """``check`` and, when a per-row instruction ``column`` is configured, ``check_instruction`` on it."""
    return both(check, lambda row: check_instruction(row, column)) if column else check


def check_pool_row(row: dict[str, Any]) -> None:
    if "text" not in row:
        raise FieldError("text", "is missing")
    check_text(row["text"], "text")


def parse_line(path: str | os.PathLike, line_number: int, line: str, check: RowCheck | None = None) -> dict[str, Any]:
    """One JSON-lines row, checked; DataError names the file, the line and the field."""
    try:
        row = parse_object(line)
    except json.JSONDecodeError as exc:
        reason = exc.msg.removesuffix(" at")  # json's "Invalid control character at" names no character
        raise DataError(path, line_number, f"not valid JSON ({reason} at column {exc.colno})") from None
    except ValueError as exc:  # a repeated key, NaN or Infinity
        raise DataError(path, line_number, f"not valid JSON ({exc})") from None
    except RecursionError:  # json's decoder recurses once per level of nesting
        raise DataError(path, line_number, "nested too deeply to read (arrays or objects inside each other "
                                           "thousands of levels deep)") from None
    if not isinstance(row, dict):
        raise DataError(path, line_number, f"a row must be a JSON object, got {type(row).__name__}")
    if check is not None:
        try:
            check(row)
        except FieldError as exc:
            raise DataError(path, line_number, str(exc), field=exc.field) from None
    return row


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """(1-based line number, text) of each line, its line ending kept (``\\n`` or ``\\r\\n``, none on a last
    line without one); a UTF-8 byte-order mark at the start is dropped. A byte that is not UTF-8 is a
    DataError naming the line and the byte."""
    for line_number, _, text in iter_line_offsets(path):
        yield line_number, text


def iter_line_offsets(path: str | os.PathLike) -> Iterator[tuple[int, int, str]]:
    """``iter_lines`` with where each line's text starts in the file (a byte offset: ``read_line_at`` reads it
    again)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "no such file" if not path.exists() else "is not a file")
    offset = 0
    with open(path, "rb") as handle:
        for line_number, data in enumerate(handle, start=1):
            start, offset = offset, offset + len(data)
            if line_number == 1 and data.startswith(b"\xef\xbb\xbf"):
                data, start = data[3:], 3
            try:
                yield line_number, start, data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(path, line_number, f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at byte "
                                                   f"{exc.start + 1} of the line); save the file as UTF-8") from None


def read_line_at(handle: BinaryIO, offset: int) -> str:
    """The line that starts at byte ``offset`` of an open binary file (one ``iter_line_offsets`` read before)."""
    handle.seek(offset)
    return handle.readline().decode("utf-8")


def iter_jsonl(path: str | os.PathLike, check: RowCheck | None = None) -> Iterator[dict[str, Any]]:
    """Yield each row of a JSON-lines file, checked; blank lines are skipped.

    Raises DataError naming the file, the 1-based line and the field at the first bad row,
    and when the file is missing or holds no row at all.
    """
    rows = 0
    for line_number, line in iter_lines(path):
        if not line.strip():
            continue
        row = parse_line(path, line_number, line, check)
        rows += 1
        yield row
    if rows == 0:
        raise DataError(path, None, "holds no rows")


def read_jsonl(path: str | os.PathLike, check: RowCheck | None = None) -> list[dict[str, Any]]:
    return list(iter_jsonl(path, check))
