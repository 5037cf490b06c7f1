"""Where rows come from: a JSON-lines file, a table file, a ``save_to_disk`` folder, a folder of files, or a
Hugging Face dataset id, and which of their columns hold the query, positives, negatives and pool texts.

JSON lines (``.jsonl``, and ``.json`` holding one object per line) go through our strict reader
(``io.jsonl``: errors name the line; keys we do not change are written back byte for byte). Everything
else is read through 🤗 ``datasets``: memory-mapped Arrow files, read in batches, never a Python list of
the whole table. Parquet, CSV and JSON-array files are converted to Arrow once, under the run's
``datasets`` cache folder (``<cache_dir>/datasets``), and reused while the file is unchanged.

Columns are found by name unless ``columns.*`` names them: FlagEmbedding's ``query``/``pos``/``neg``
(``text`` in a pool), then sentence-transformers' ``anchor``/``positive``/``negative`` and
``negative_1..n``. A sentence-transformers column holds one passage per row, so there (and only there) a
string becomes a one-item list; FlagEmbedding's ``pos`` given as a string stays an error.

``datasets`` and ``huggingface_hub`` are imported inside the functions that use them: only table files and hub
datasets need them.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prep.errors import DataError
from prep.io.conversions import Conversions, first_line, release_arrow_memory
from prep.io.jsonl import FieldError, check_pool_row, check_text, iter_jsonl, iter_lines, parse_line
from prep.io.saved import is_saved_dataset, quiet_datasets

if TYPE_CHECKING:
    from datasets import Dataset

    from prep.config.schema import ColumnsConfig

log = logging.getLogger(__name__)

JSON_LINES = (".jsonl",)
TABLE_SUFFIXES = {".parquet": "parquet", ".csv": "csv", ".json": "json"}
QUERY_NAMES = ("query", "anchor")
POS_NAMES = ("pos", "positive")
NEG_NAMES = ("neg", "negative")
TEXT_NAMES = ("text",)
FLAG_NAMES = {"query", "pos", "neg"}  # FlagEmbedding's own: a string in pos or neg is an error, never wrapped
NUMBERED_NEGATIVE = re.compile(r"negative_(\d+)")
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
BATCH_ROWS = 1000


@dataclass(frozen=True)
class Part:
    """One readable piece of a source: a JSON-lines file, a table file, a saved dataset, or a hub dataset."""

    kind: str  # "jsonl", "parquet", "csv", "json", "saved", "hub"
    location: str
    label: str  # what an error names


@dataclass(frozen=True)
class Source:
    """A user's ``input`` (or pool): its parts, read in order."""

    label: str
    parts: tuple[Part, ...]
    split: str = "train"

    @property
    def is_json_lines(self) -> bool:
        return all(part.kind == "jsonl" for part in self.parts)


def _sniff_json(path: Path) -> str:
    """``jsonl`` when a ``.json`` file starts with an object (one per line, as FlagEmbedding writes them), else
    ``json`` (an array, read by ``datasets``)."""
    with open(path, "rb") as handle:
        start = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return "json" if start.startswith(b"[") else "jsonl"


def _file_part(path: Path) -> Part | None:
    suffix = path.suffix.lower()
    if suffix in JSON_LINES:
        return Part("jsonl", str(path), str(path))
    if suffix == ".json":
        return Part(_sniff_json(path), str(path), str(path))
    if suffix in TABLE_SUFFIXES:
        return Part(TABLE_SUFFIXES[suffix], str(path), str(path))
    return None


def resolve(value: str | os.PathLike, split: str = "train") -> Source:
    """The source ``value`` names; a DataError when it names nothing readable."""
    text = str(value)
    path = Path(text).expanduser().absolute()  # relative to the launch folder (Hydra does not change it)
    if path.is_file():
        part = _file_part(path)
        if part is None:
            raise DataError(path, None, f"cannot read '{path.suffix or path.name}' files: use .jsonl, .json, "
                                        ".parquet, .csv or a save_to_disk folder")
        return Source(str(path), (part,), split)
    if path.is_dir():
        if is_saved_dataset(path):
            return Source(f"{path}[{split}]", (Part("saved", str(path), f"{path}[{split}]"),), split)
        parts = []
        for entry in sorted(path.iterdir()):
            part = _file_part(entry) if entry.is_file() else None
            if part is not None:
                parts.append(part)
            elif not entry.name.startswith("."):
                log.info("skipping %s: not a .jsonl, .json, .parquet or .csv file", entry)
        if not parts:
            raise DataError(path, None, "holds no .jsonl, .json, .parquet or .csv file")
        return Source(str(path), tuple(parts), split)
    if path.exists():
        raise DataError(path, None, "is not a file or a folder (a device, a pipe or a socket): pass a file, or a "
                                    "folder of files")
    if not path.suffix and HUB_ID.fullmatch(text) and not text.startswith("."):
        return Source(f"{text}[{split}]", (Part("hub", text, f"{text}[{split}]"),), split)
    raise DataError(path, None, "no such file or folder")


def load_table(part: Part, split: str, conversions: Conversions) -> Dataset:
    """A ``datasets.Dataset`` (memory-mapped) for a part that is not JSON lines."""
    import datasets

    if part.kind == "saved":
        loaded = datasets.load_from_disk(part.location)
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise DataError(part.location, None, f"has no split '{split}' (it has {', '.join(loaded)}): "
                                                     "pass input_split=NAME")
            loaded = loaded[split]
        return loaded
    if part.kind == "hub":
        return _load_hub(part.location, split)
    return conversions.table(part.kind, part.location)


def _load_hub(name: str, split: str) -> Dataset:
    import datasets
    from huggingface_hub import constants

    try:
        with quiet_datasets():
            return datasets.load_dataset(name, split=split)
    except Exception as exc:
        offline = constants.HF_HUB_OFFLINE
        hint = ("it is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading it; run once "
                "with network access (or copy the dataset to a folder and pass its path)") if offline else \
            first_line(exc)
        raise DataError(f"{name}[{split}]", None, f"cannot load this dataset: {hint}") from None


def table_rows(table: Dataset, nulls: frozenset[str] = frozenset()) -> Iterator[dict[str, Any]]:
    """A dataset's rows as dicts, read a batch at a time. A null is a key the row does not have: a table holds
    every column in every row, null where the row (a JSON object, say) had no such key; except in the columns
    ``nulls`` names (``kept_nulls``), where it is the row's value."""
    names = table.column_names
    for batch in table.iter(batch_size=BATCH_ROWS):
        columns = [batch[name] for name in names]
        for values in zip(*columns):
            yield {name: value for name, value in zip(names, values) if value is not None or name in nulls}


OWNED_KEYS = frozenset({"query", "pos", "neg", "pos_scores", "neg_scores"})


def kept_nulls(kind: str, names: list[str], mapping: Columns) -> frozenset[str]:
    """The columns whose nulls are values: a CSV file's carried columns (a CSV row has every column, so an empty
    cell is what the row holds there, never a key it lacks); none in other tables."""
    if kind != "csv":
        return frozenset()
    return frozenset(names) - OWNED_KEYS - {mapping.query, mapping.pos, *mapping.negatives}


@dataclass
class Columns:
    """Which columns of a source hold the query, the positives and the negatives (``negatives`` may be several
    numbered columns), and how to make a FlagEmbedding row of them."""

    query: str
    pos: str
    negatives: list[str] = field(default_factory=list)

    @property
    def is_identity(self) -> bool:
        return self.query == "query" and self.pos == "pos" and self.negatives in ([], ["neg"])

    def field_name(self, field_path: str) -> str:
        """The source's name for a field of the FlagEmbedding row (``neg[2]`` of numbered columns: ``negative_3``)."""
        key, bracket, rest = field_path.partition("[")
        index = f"[{rest}" if bracket else ""
        if key == "query":
            return self.query
        if key == "pos":
            return self.pos + index
        if key == "neg" and len(self.negatives) == 1:
            return self.negatives[0] + index
        if key == "neg" and self.negatives and bracket and rest.rstrip("]").isdigit():
            position = int(rest.rstrip("]"))
            return self.negatives[position] if position < len(self.negatives) else field_path
        return field_path

    def convert(self, row: dict[str, Any]) -> dict[str, Any]:
        """The FlagEmbedding row: ``query``, ``pos``, ``neg`` (when the source has negatives), then every other
        column as it came. Rows already in FlagEmbedding's names are returned as they are."""
        if self.is_identity:
            return row
        mapped = {self.query, self.pos, *self.negatives}
        result: dict[str, Any] = {}
        if self.query in row:
            result["query"] = row[self.query]
        if self.pos in row:
            result["pos"] = _passages(row, self.pos)
        if self.negatives:
            if len(self.negatives) == 1:
                if self.negatives[0] in row:
                    result["neg"] = _passages(row, self.negatives[0])
            else:
                result["neg"] = [row[name] for name in self.negatives if row.get(name) is not None]
        result.update({key: value for key, value in row.items() if key not in mapped and key not in result})
        return result


def _passages(row: dict[str, Any], column: str) -> Any:
    """A passage column's value as FlagEmbedding's list: a string wrapped, outside FlagEmbedding's own names."""
    value = row.get(column)
    if isinstance(value, str) and column not in FLAG_NAMES:
        return [value]
    return value


def _pick(names: list[str] | set[str], given: str | None, candidates: tuple[str, ...], what: str, label: str,
          required: bool = True) -> str | None:
    if given:
        if given not in names:
            raise DataError(label, None, f"has no column '{given}' ({what}); its columns: {', '.join(sorted(names))}")
        return given
    for name in candidates:
        if name in names:
            return name
    if required:
        raise DataError(label, None, f"has no {what} column (looked for {', '.join(candidates)}; "
                                     f"its columns: {', '.join(sorted(names)) or 'none'}): name it with columns.{what}")
    return None


def training_columns(names: list[str] | set[str], columns: ColumnsConfig, label: str) -> Columns:
    """The training columns among ``names``."""
    query = _pick(names, columns.query, QUERY_NAMES, "query", label)
    pos = _pick(names, columns.pos, POS_NAMES, "pos", label)
    neg = _pick(names, columns.neg, NEG_NAMES, "neg", label, required=False)
    if neg is not None:
        return Columns(query, pos, [neg])
    numbered = sorted((int(m.group(1)), name) for name in names if (m := NUMBERED_NEGATIVE.fullmatch(name)))
    return Columns(query, pos, [name for _, name in numbered])


def pool_column(names: list[str], columns: ColumnsConfig, label: str) -> str:
    return _pick(names, columns.text, TEXT_NAMES, "text", label)


RowCheck = Callable[[dict[str, Any]], None]
IDENTITY = Columns("query", "pos", ["neg"])


class LineRows:
    """JSON lines of one file into checked FlagEmbedding rows; each line's columns are found by name (the last
    line's mapping is reused while its columns are there)."""

    def __init__(self, path: str, columns: ColumnsConfig, check: RowCheck | None):
        self.path, self.columns, self.check = path, columns, check
        self.mapping = IDENTITY

    def row(self, line_number: int, line: str) -> dict[str, Any]:
        raw = parse_line(self.path, line_number, line)
        if not _needs_mapping(raw, self.columns):
            self.mapping = IDENTITY
        elif self.mapping is IDENTITY or not _same_keys(self.mapping, raw):
            self.mapping = training_columns(set(raw), self.columns, f"{self.path}:{line_number}")
        row = self.mapping.convert(raw)
        check_row(self.check, row, self.mapping, self.path, line_number)
        return row


def _needs_mapping(raw: dict[str, Any], columns: ColumnsConfig) -> bool:
    """Whether a JSON-lines row needs its columns mapped: not when it is in FlagEmbedding's names (the usual case,
    then taken byte for byte) or in nobody's (then the row check names the missing field, as ever)."""
    if any((columns.query, columns.pos, columns.neg)):
        return True
    if "query" in raw and "pos" in raw:
        return False
    return any(name in raw for name in ("anchor", "positive", "negative")) or any(
        NUMBERED_NEGATIVE.fullmatch(name) for name in raw)


def _same_keys(mapping: Columns, raw: dict[str, Any]) -> bool:
    return mapping.query in raw and mapping.pos in raw and all(name in raw for name in mapping.negatives)


def check_row(check: RowCheck | None, row: dict[str, Any], mapping: Columns, label: str, number: int,
              unit: str = "line") -> None:
    """Run ``check`` on a mapped row; a FieldError becomes a DataError naming the part, the line or row, and the
    source's own column."""
    if check is None:
        return
    try:
        check(row)
    except FieldError as exc:
        raise DataError(label, number, str(exc), field=mapping.field_name(exc.field), unit=unit) from None


def iter_pool_texts(source: Source, columns: ColumnsConfig, conversions: Conversions) -> Iterator[str]:
    """Each pool passage's text, checked; a DataError names the part, its line (JSON lines) or row, and the column.
    The tables it converted are kept in the cache only once every text passed."""
    with conversions.checked():
        yield from _pool_texts(source, columns, conversions)


def _pool_texts(source: Source, columns: ColumnsConfig, conversions: Conversions) -> Iterator[str]:
    count = 0
    for part in source.parts:
        if part.kind == "jsonl" and not columns.text:  # FlagEmbedding's pool: {"text": ...} per line
            for row in iter_jsonl(part.location, check_pool_row):
                count += 1
                yield row["text"]
            continue
        if part.kind == "jsonl":
            name, unit, values = columns.text, "line", _line_values(part.location, columns.text)
        else:
            table = load_table(part, source.split, conversions)
            name, unit = pool_column(table.column_names, columns, part.label), "row"
            values = enumerate(_column_values(table, name), start=1)
        for number, value in values:
            if value is _ABSENT:
                raise DataError(part.label, number, "is missing", field=name, unit=unit)
            try:
                check_text(value, name)
            except FieldError as exc:
                raise DataError(part.label, number, str(exc), field=name, unit=unit) from None
            count += 1
            yield value
        if part.kind != "jsonl":
            release_arrow_memory()
    if count == 0:
        raise DataError(source.label, None, "holds no rows")


_ABSENT = object()


def _line_values(path: str, name: str) -> Iterator[tuple[int, Any]]:
    """(line number, the value of ``name``) of each JSON line (``_ABSENT`` where the key is not there)."""
    for number, line in iter_lines(path):
        if line.strip():
            yield number, parse_line(path, number, line).get(name, _ABSENT)


def _column_values(table: Dataset, name: str) -> Iterator[Any]:
    """One column's values, a batch at a time (only that column is read from the Arrow file)."""
    for batch in table.select_columns([name]).iter(batch_size=BATCH_ROWS * 8):
        yield from batch[name]
