"""Training rows left where they are: read and checked once, then read again a block at a time.

``step=mine`` holds one block of rows (``miner.query_block``) at a time, so that its memory does not grow with
the number of rows (docs/scaling.md, "Large training sets"). A ``RowStore`` remembers where each row is, a few bytes per
row: the byte offset and line number of a JSON line, or the row number of a memory-mapped ``datasets`` table,
and reads any span of rows again on demand, mapped to FlagEmbedding's names and checked as the first read was.
Rows that a caller already holds (``step=probe``'s training rows, the Python API's dataset) are a ``ListRows``.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prep.errors import DataError
from prep.io.conversions import Conversions
from prep.io.jsonl import check_json_values, iter_line_offsets, read_line_at
from prep.io.sources import (
    Columns,
    LineRows,
    RowCheck,
    Source,
    check_row,
    kept_nulls,
    load_table,
    table_rows,
    training_columns,
)

if TYPE_CHECKING:
    from datasets import Dataset

    from prep.config.schema import ColumnsConfig


class RowStore:
    """Every input row: how many, any span of them (positions in input order), and all of them in order."""

    def __len__(self) -> int:
        raise NotImplementedError

    def rows(self, span: range) -> list[dict[str, Any]]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[dict[str, Any]]:
        block = 4096
        for start in range(0, len(self), block):
            yield from self.rows(range(start, min(start + block, len(self))))


class ListRows(RowStore):
    """Rows already in memory."""

    def __init__(self, rows: list[dict[str, Any]]):
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self, span: range) -> list[dict[str, Any]]:
        return self._rows[span.start:span.stop]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._rows)


@dataclass
class _LinePart:
    """A JSON-lines file's rows: where each starts (bytes) and its line number (for errors)."""

    path: str
    offsets: np.ndarray
    line_numbers: np.ndarray
    stamp: tuple[int, int]  # size and modification time when read: a file changed since is not read again


@dataclass
class _TablePart:
    """A memory-mapped ``datasets`` table's rows, and how its columns map to FlagEmbedding's names."""

    label: str
    table: Dataset
    mapping: Columns
    nulls: frozenset[str]  # columns whose nulls are values (``sources.kept_nulls``)


class SourceRows(RowStore):
    """The rows of a ``Source``, read again from its files. ``scan`` reads (and checks) every row once, yielding
    them as it goes and remembering where each is; only then are ``len``, ``rows`` and iteration available."""

    def __init__(self, source: Source, columns: ColumnsConfig, check: RowCheck | None, conversions: Conversions):
        self.source, self.columns, self.check, self.conversions = source, columns, check, conversions
        self._parts: list[_LinePart | _TablePart] = []
        self._starts = np.zeros(1, dtype=np.int64)  # row number of each part's first row, then the total

    def table_check(self, row: dict[str, Any]) -> None:
        """A table's row: the row check, and every value one that JSON (any output) can hold."""
        if self.check is not None:
            self.check(row)
        check_json_values(row)

    def scan(self) -> Iterator[dict[str, Any]]:
        """Every row, read and checked (a DataError names the part, its line or row, and the column). The tables
        it converted are kept in the cache only once every row passed."""
        with self.conversions.checked():
            yield from self._scan()

    def _scan(self) -> Iterator[dict[str, Any]]:
        starts = [0]
        for part in self.source.parts:
            if part.kind == "jsonl":
                offsets, numbers = array("q"), array("q")
                lines = LineRows(part.location, self.columns, self.check)
                for line_number, offset, line in iter_line_offsets(part.location):
                    if line.strip():
                        row = lines.row(line_number, line)
                        offsets.append(offset)
                        numbers.append(line_number)
                        yield row
                self._parts.append(_LinePart(part.location, np.frombuffer(offsets, np.int64),
                                             np.frombuffer(numbers, np.int64), _stamp(part.location)))
                starts.append(starts[-1] + len(offsets))
                continue
            table = load_table(part, self.source.split, self.conversions)
            mapping = training_columns(table.column_names, self.columns, part.label)
            nulls = kept_nulls(part.kind, table.column_names, mapping)
            for number, raw in enumerate(table_rows(table, nulls), start=1):
                row = mapping.convert(raw)
                check_row(self.table_check, row, mapping, part.label, number, unit="row")
                yield row
            self._parts.append(_TablePart(part.label, table, mapping, nulls))
            starts.append(starts[-1] + len(table))
        self._starts = np.asarray(starts, dtype=np.int64)
        if len(self) == 0:
            raise DataError(self.source.label, None, "holds no rows")

    def __len__(self) -> int:
        return int(self._starts[-1])

    def rows(self, span: range) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = []
        for index, part in enumerate(self._parts):
            first, stop = int(self._starts[index]), int(self._starts[index + 1])
            low, high = max(span.start, first) - first, min(span.stop, stop) - first
            if low < high:
                result.extend(self._read(part, low, high))
        return result

    def _read(self, part: _LinePart | _TablePart, low: int, high: int) -> list[dict[str, Any]]:
        """Rows ``low:high`` of a part, mapped; not checked again (the scan did, and the rows are as they were: a
        table is memory-mapped, a JSON-lines file is refused if it changed)."""
        if isinstance(part, _TablePart):
            return [part.mapping.convert(raw) for raw in table_rows(part.table.select(range(low, high)), part.nulls)]
        if _stamp(part.path) != part.stamp:
            raise DataError(part.path, None, "changed while its rows were being mined: run again on a file that "
                                             "stays as it is")
        lines = LineRows(part.path, self.columns, None)
        with open(Path(part.path), "rb") as handle:
            return [lines.row(int(number), read_line_at(handle, int(offset)))
                    for offset, number in zip(part.offsets[low:high], part.line_numbers[low:high])]


def _stamp(path: str) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_size, status.st_mtime_ns
