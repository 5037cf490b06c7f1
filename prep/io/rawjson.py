"""JSON objects that remember their own text, so keys we do not change leave exactly as they came.

``json.loads`` followed by ``json.dumps`` rewrites what it does not own: ``1.10`` becomes ``1.1``, ``1E5``
becomes ``100000.0``, ``1e400`` becomes the invalid ``Infinity``, ``"\\u00e9"`` becomes ``"é"``, and a
lone surrogate escape cannot be written back at all. ``parse_object`` reads a top-level object key by
key with the json module's own scanners and keeps each key's and value's source text; ``dump_row``
writes a value's source text unless the value was replaced (``Row.replaced``).

Stricter than ``json.loads`` where it would silently lose data: a repeated top-level key (``json.loads``
keeps the last) and the non-JSON constants ``NaN``, ``Infinity``, ``-Infinity`` are errors.
"""

from __future__ import annotations

import json
import re
from json.decoder import scanstring
from typing import Any

_WHITESPACE = re.compile(r"[ \t\n\r]*")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


class Row(dict):
    """A parsed row; ``texts`` maps each key to (its key's source text, its value's source text)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.texts: dict[str, tuple[str, str]] = {}

    def replaced(self, removed: tuple[str, ...] = (), **values: Any) -> Row:
        return replaced(self, removed, **values)


def replaced(row: dict[str, Any], removed: tuple[str, ...] = (), **values: Any) -> Row:
    """A copy of ``row`` with ``values`` set (a key already there keeps its place) and ``removed`` keys dropped;
    every other key keeps its source text when ``row`` came from ``parse_object`` (a plain dict has none)."""
    copy = Row({k: v for k, v in row.items() if k not in removed})
    copy.update(values)
    copy.texts = {k: t for k, t in getattr(row, "texts", {}).items() if k not in values and k not in removed}
    return copy


def _skip(text: str, index: int) -> int:
    return _WHITESPACE.match(text, index).end()


def _expect(text: str, index: int, char: str, what: str) -> None:
    if text[index:index + 1] != char:
        raise json.JSONDecodeError(f"Expecting {what}", text, index)


def parse_object(text: str) -> Any:
    """The JSON value of ``text``: a ``Row`` for an object (with its keys' texts), else the plain value.

    Raises ``json.JSONDecodeError`` for text that is not JSON and ``ValueError`` for a repeated key or a
    non-JSON constant.
    """
    index = _skip(text, 0)
    if text[index:index + 1] != "{":
        return _DECODER.decode(text)
    row = Row()
    index = _skip(text, index + 1)
    if text[index:index + 1] == "}":
        index += 1
    else:
        while True:
            _expect(text, index, '"', "property name enclosed in double quotes")
            key, key_end = scanstring(text, index + 1)
            key_text = text[index:key_end]
            index = _skip(text, key_end)
            _expect(text, index, ":", "':' delimiter")
            index = _skip(text, index + 1)
            value, value_end = _DECODER.raw_decode(text, index)
            if key in row:
                raise ValueError(f"key {key_text} appears twice (JSON readers disagree on which one counts)")
            row[key], row.texts[key] = value, (key_text, text[index:value_end])
            index = _skip(text, value_end)
            if text[index:index + 1] == "}":
                index += 1
                break
            _expect(text, index, ",", "',' delimiter")
            index = _skip(text, index + 1)
    if _skip(text, index) != len(text):
        raise json.JSONDecodeError("Extra data", text, _skip(text, index))
    return row


def dump_row(row: dict[str, Any]) -> str:
    """One JSON line: each key of a ``Row`` that was not replaced as it came, every other value written by
    ``json.dumps`` (UTF-8 as is, no NaN or infinity), with ``json.dumps``' own separators."""
    texts = getattr(row, "texts", {})
    parts = []
    for key, value in row.items():
        if key in texts:
            key_text, value_text = texts[key]
        else:
            key_text, value_text = json.dumps(key, ensure_ascii=False), json.dumps(value, ensure_ascii=False,
                                                                                  allow_nan=False)
        parts.append(f"{key_text}: {value_text}")
    return "{" + ", ".join(parts) + "}\n"
