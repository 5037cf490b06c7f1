"""JSON-lines rows: reading them, checking each (errors name the file, line and field), writing them."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from prep.errors import DataError
from prep.io.atomic import atomic_file

RowCheck = Callable[[dict[str, Any]], None]


class FieldError(ValueError):
    """Raised by a row check; the reader adds the file and line."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _string_list(row: dict[str, Any], key: str, *, allow_empty: bool) -> None:
    value = row[key]
    if isinstance(value, str):
        raise FieldError(key, "must be a list of strings, got a string (wrap it in a list: [\"...\"])")
    if not isinstance(value, list):
        raise FieldError(key, f"must be a list of strings, got {type(value).__name__}")
    if not value and not allow_empty:
        raise FieldError(key, "is empty; every row needs at least one passage")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise FieldError(f"{key}[{index}]", f"must be a string, got {type(item).__name__}")


def check_training_row(row: dict[str, Any], *, need_neg: bool = False) -> None:
    """FlagEmbedding's training row: a string ``query``, a non-empty ``pos`` list, lists of strings."""
    if "query" not in row:
        raise FieldError("query", "is missing")
    if not isinstance(row["query"], str):
        raise FieldError("query", f"must be a string, got {type(row['query']).__name__}")
    if "pos" not in row:
        raise FieldError("pos", "is missing")
    _string_list(row, "pos", allow_empty=False)
    if "neg" in row:
        _string_list(row, "neg", allow_empty=True)
    elif need_neg:
        raise FieldError("neg", "is missing; mine negatives first (step=mine)")


def check_pool_row(row: dict[str, Any]) -> None:
    if "text" not in row:
        raise FieldError("text", "is missing")
    if not isinstance(row["text"], str):
        raise FieldError("text", f"must be a string, got {type(row['text']).__name__}")


def parse_line(path: str | os.PathLike, line_number: int, line: str, check: RowCheck | None = None) -> dict[str, Any]:
    """One JSON-lines row, checked; DataError names the file, the line and the field."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(path, line_number, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(row, dict):
        raise DataError(path, line_number, f"a row must be a JSON object, got {type(row).__name__}")
    if check is not None:
        try:
            check(row)
        except FieldError as exc:
            raise DataError(path, line_number, str(exc), field=exc.field) from None
    return row


def iter_jsonl(path: str | os.PathLike, check: RowCheck | None = None) -> Iterator[dict[str, Any]]:
    """Yield each row of a JSON-lines file, checked; blank lines are skipped.

    Raises DataError naming the file, the 1-based line and the field at the first bad row,
    and when the file is missing or holds no row at all.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "no such file" if not path.exists() else "is not a file")
    rows = 0
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            row = parse_line(path, line_number, line, check)
            rows += 1
            yield row
    if rows == 0:
        raise DataError(path, None, "holds no rows")


def read_jsonl(path: str | os.PathLike, check: RowCheck | None = None) -> list[dict[str, Any]]:
    return list(iter_jsonl(path, check))


def dump_row(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False) + "\n"


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]], overwrite: bool = False) -> int:
    """Write rows atomically; returns how many were written."""
    count = 0
    with atomic_file(path, overwrite) as handle:
        for row in rows:
            handle.write(dump_row(row))
            count += 1
    return count
