"""Rows out: FlagEmbedding's JSON lines, or sentence-transformers' training formats, as ``.jsonl``, ``.parquet``
or a ``save_to_disk`` folder (the output's suffix decides; no suffix: a folder).

The sentence-transformers formats are those of its ``mine_hard_negatives`` (``util/hard_negatives.py``), with
its column names and orders, one row per (query, positive):

- ``triplet``: ``anchor``, ``positive``, ``negative``: one row per negative;
- ``n-tuple``: ``anchor``, ``positive``, ``negative_1`` .. ``negative_n`` (``n``: the run's
  ``miner.negative_number``); a row with fewer negatives is left out, as sentence-transformers does,
  and counted;
- ``labeled-pair``: ``anchor``, ``positive`` (the passage), ``label`` (1 positive, 0 negative): the
  query's positives, then its negatives;
- ``labeled-list``: ``anchor``, ``positive`` (the positive, then the negatives), ``labels``.

With teacher scores (``pos_scores`` and ``neg_scores``) a ``scores`` column ([positive, negatives...],
what ``MarginMSELoss`` and ``DistillKLDivLoss`` take) is added to ``triplet`` and ``n-tuple``, and replaces
the labels of the labeled formats (``score``, ``scores``), as ``mine_hard_negatives(output_scores=True)``
writes them. A trainer takes every column but the label as an input, so the row's other keys are not
written in these formats; ``flagembedding`` keeps them all, byte for byte in JSON lines.

``datasets`` and ``pyarrow`` are imported inside the functions that use them: only table outputs need them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prep.contract import OutputCounts
from prep.errors import OutputExistsError, UsageError
from prep.io.atomic import atomic_file, ensure_writable
from prep.io.jsonl import FieldError, RowCheck, both
from prep.io.rawjson import dump_row
from prep.io.saved import is_saved_dataset, quiet_datasets

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet", "": "folder"}
BATCH_ROWS = 2000


def container_of(path: str | os.PathLike) -> str:
    """``jsonl``, ``parquet`` or ``folder`` (a ``save_to_disk`` dataset) by the output's suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise UsageError(f"output: cannot write '{suffix}' files; name a .jsonl or .parquet file, or a folder "
                         f"(no suffix) for a save_to_disk dataset (got {path})")
    return SUFFIXES[suffix]


def check_output(path: str | os.PathLike, overwrite: bool) -> None:
    """Before any work: the output may be written (a folder output only replaces a saved dataset)."""
    if container_of(path) != "folder":
        ensure_writable(path, overwrite)
        return
    if os.path.lexists(path):
        if not overwrite:
            raise OutputExistsError(f"{path}: output exists; pass overwrite=true to replace it")
        if not os.path.isdir(path):
            raise OutputExistsError(f"{path}: output is a file; a folder output (no suffix) is a saved dataset")
        if not is_saved_dataset(Path(path)):
            raise OutputExistsError(f"{path}: output is a folder that is not a saved dataset; it is never replaced "
                                    "(name a .jsonl or .parquet file, or another folder)")


@dataclass
class Written:
    rows_in: int = 0
    rows_out: int = 0
    rows_short: int = 0  # n-tuple: rows (query, positive) left out for having fewer than n negatives


def _scores(row: dict[str, Any]) -> tuple[list[float], list[float]] | None:
    if "pos_scores" in row and "neg_scores" in row:
        return row["pos_scores"], row["neg_scores"]
    return None


CHECKED_TEXTS = frozenset({"query", "pos", "neg"})  # valid text, or text lists, in every row (the row check's)


class TableFit:
    """A row check for a parquet or saved-dataset output of FlagEmbedding rows, run as rows are read: each carried
    value must be one an Arrow column can hold (no lone surrogate, no integer past int64, no list mixing types) and
    each key keep one type across rows (ints and floats mix as floats; a null fits any), so that the output,
    written after the work, cannot fail. JSON lines hold all of these and need no such check."""

    def __init__(self) -> None:
        self.types: dict[str, Any] = {}

    def __call__(self, row: dict[str, Any]) -> None:
        import pyarrow as pa

        for key, value in row.items():
            if key in CHECKED_TEXTS:
                continue
            found = arrow_type(key, value)
            known = self.types.get(key)
            if known is None or pa.types.is_null(known):
                self.types[key] = found
                continue
            try:
                self.types[key] = pa.unify_schemas([pa.schema([(key, known)]), pa.schema([(key, found)])],
                                                   promote_options="permissive").field(key).type
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                raise FieldError(key, f"is {found} here but {known} in an earlier row: a parquet or dataset output "
                                      "holds one type per column (write JSON lines, or make the column one type)"
                                 ) from None


def arrow_type(key: str, value: Any) -> Any:
    """The Arrow type of one value, or a FieldError saying why a table cannot hold it."""
    import pyarrow as pa

    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise FieldError(key, "holds a lone surrogate, which a parquet or dataset output cannot hold (JSON lines "
                                  "can)") from None
        return pa.string()
    if isinstance(value, int) and not isinstance(value, bool) and not -2**63 <= value < 2**63:
        raise FieldError(key, f"{value} is past a 64-bit integer, which a parquet or dataset output cannot hold "
                              "(JSON lines can)")
    try:
        return pa.array([value]).type
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, UnicodeEncodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FieldError(key, f"a parquet or dataset output cannot hold this value ({first})") from None


def with_table_fit(check: RowCheck, path: str | os.PathLike, output_format: str) -> RowCheck:
    """``check``, and for a parquet or saved-dataset output of FlagEmbedding rows at ``path`` a ``TableFit`` (JSON
    lines hold any row; a sentence-transformers format carries no other key)."""
    if container_of(path) == "jsonl" or str(output_format) != "flagembedding":
        return check
    return both(check, TableFit())


def with_tuple_check(check: RowCheck, output_format: str) -> RowCheck:
    """``check``, and for ``n-tuple`` output of rows whose ``n`` is the fewest negatives any row has (``step=score``,
    ``step=split``) that every row has a negative: one row without would make ``n`` 0 for every row."""
    return both(check, has_negatives) if str(output_format) == "n-tuple" else check


def has_negatives(row: dict[str, Any]) -> None:
    if not row.get("neg"):
        raise FieldError("neg", "is empty or missing: output_format=n-tuple writes the fewest negatives any row has, "
                                "so this row would leave every row without negatives (drop it, or use labeled-list)")


def triplet(row: dict[str, Any]) -> Iterator[dict[str, Any]]:
    scores = _scores(row)
    for i, positive in enumerate(row["pos"]):
        for j, negative in enumerate(row.get("neg", [])):
            out = {"anchor": row["query"], "positive": positive, "negative": negative}
            if scores:
                out["scores"] = [scores[0][i], scores[1][j]]
            yield out


def n_tuple(row: dict[str, Any], n: int) -> Iterator[dict[str, Any] | None]:
    """One row per positive; None for a positive whose row has fewer than ``n`` negatives (left out)."""
    scores = _scores(row)
    negatives = row.get("neg", [])
    for i, positive in enumerate(row["pos"]):
        if len(negatives) < n:
            yield None
            continue
        out = {"anchor": row["query"], "positive": positive,
               **{f"negative_{k}": negatives[k - 1] for k in range(1, n + 1)}}
        if scores:
            out["scores"] = [scores[0][i], *scores[1][:n]]
        yield out


def labeled_pair(row: dict[str, Any]) -> Iterator[dict[str, Any]]:
    scores = _scores(row)
    passages = [(p, 1, scores[0][i] if scores else None) for i, p in enumerate(row["pos"])]
    passages += [(p, 0, scores[1][j] if scores else None) for j, p in enumerate(row.get("neg", []))]
    for passage, label, score in passages:
        yield {"anchor": row["query"], "positive": passage, **({"score": score} if scores else {"label": label})}


def labeled_list(row: dict[str, Any]) -> Iterator[dict[str, Any]]:
    scores = _scores(row)
    negatives = row.get("neg", [])
    for i, positive in enumerate(row["pos"]):
        out = {"anchor": row["query"], "positive": [positive, *negatives]}
        if scores:
            out["scores"] = [scores[0][i], *scores[1]]
        else:
            out["labels"] = [1] + [0] * len(negatives)
        yield out


def converted(rows: Iterable[dict[str, Any]], output_format: str, negatives: int, written: Written
              ) -> Iterator[dict[str, Any]]:
    """The rows in ``output_format`` (FlagEmbedding rows pass as they are); counts go to ``written``."""
    for row in rows:
        written.rows_in += 1
        if output_format == "flagembedding":
            out: Iterable[dict[str, Any] | None] = (row,)
        elif output_format == "triplet":
            out = triplet(row)
        elif output_format == "n-tuple":
            out = n_tuple(row, negatives)
        elif output_format == "labeled-pair":
            out = labeled_pair(row)
        elif output_format == "labeled-list":
            out = labeled_list(row)
        else:
            raise UsageError(f"output_format: unknown format '{output_format}'")
        for item in out:
            if item is None:
                written.rows_short += 1
                continue
            written.rows_out += 1
            yield item


class RowSink:
    """Rows added as they are made, converted into the output's format as they come (counts in ``written``):
    ``write_item`` takes each converted row."""

    def __init__(self, output_format: str, negatives: int, write_item: Callable[[dict[str, Any]], Any]):
        self.output_format, self.negatives, self.write_item = str(output_format), negatives, write_item
        self.written = Written()

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        for item in converted(rows, self.output_format, self.negatives, self.written):
            self.write_item(item)


@contextmanager
def open_rows(path: str | os.PathLike, output_format: str = "flagembedding", overwrite: bool = False,
              negatives: int = 0) -> Iterator[RowSink]:
    """A sink for FlagEmbedding rows, written in ``output_format`` to ``path`` when the ``with`` block ends, whole
    or not at all (an exception in the block leaves no output): JSON lines stream into a temporary file beside
    ``path``; tables gather in Arrow batches and are written at the end."""
    container = container_of(path)
    if container == "jsonl":
        flag = str(output_format) == "flagembedding"
        with atomic_file(path, overwrite) as handle:
            def write_line(item: dict[str, Any]) -> None:
                handle.write(dump_row(item) if flag else json.dumps(item, ensure_ascii=False, allow_nan=False) + "\n")

            yield RowSink(output_format, negatives, write_line)
        return
    batches = ArrowBatches()
    yield RowSink(output_format, negatives, batches.append)
    table = batches.table()
    if container == "parquet":
        import pyarrow.parquet as pq

        with atomic_file(path, overwrite, binary=True) as handle:
            pq.write_table(table, handle)
    else:
        write_saved_dataset(Path(path), table, overwrite)


def write_rows(path: str | os.PathLike, rows: Iterable[dict[str, Any]], output_format: str = "flagembedding",
               overwrite: bool = False, negatives: int = 0) -> Written:
    """Write ``rows`` (FlagEmbedding rows) in ``output_format`` to ``path``, atomically: whole or not at all."""
    with open_rows(path, output_format, overwrite, negatives) as sink:
        sink.add(rows)
    return sink.written


class ArrowBatches:
    """Rows gathered into Arrow tables ``BATCH_ROWS`` at a time; ``table()`` unifies the batches (a key missing
    from a row is null there)."""

    def __init__(self) -> None:
        self.tables: list[Any] = []
        self.batch: list[dict[str, Any]] = []

    def append(self, item: dict[str, Any]) -> None:
        self.batch.append(item)
        if len(self.batch) == BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        self.tables.append(pa.Table.from_pylist(self.batch))
        self.batch = []

    def table(self) -> pa.Table:
        import pyarrow as pa

        if self.batch or not self.tables:
            self.flush()
        return pa.concat_tables(self.tables, promote_options="permissive") if len(self.tables) > 1 else self.tables[0]


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]], overwrite: bool = False) -> int:
    """Write FlagEmbedding rows as JSON lines, atomically (``write_rows``); returns how many."""
    return write_rows(path, rows, "flagembedding", overwrite).rows_out


def write_saved_dataset(path: Path, table: pa.Table, overwrite: bool) -> None:
    """``Dataset.save_to_disk`` into a temporary folder beside ``path``, then renamed onto it (an old saved
    dataset there is replaced only with ``overwrite``, after the new one is complete)."""
    import datasets

    check_output(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        with quiet_datasets():
            datasets.Dataset(table).save_to_disk(str(temporary))
        check_output(path, overwrite)
        if path.exists():
            old = path.parent / f".{path.name}.old-{uuid.uuid4().hex}"
            os.replace(path, old)
            os.replace(temporary, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def output_counts(output_format: str, written: Written) -> OutputCounts:
    """The summary's ``output_format`` entry: the format and the rows in and out."""
    return OutputCounts(str(output_format), written.rows_in, written.rows_out, written.rows_short)


def log_written(written: Written, output_format: str) -> None:
    if str(output_format) != "flagembedding":
        log.info("%d rows written as %s rows: %d", written.rows_in, output_format, written.rows_out)
    if written.rows_short:
        log.warning("%d (query, positive) rows left out of the n-tuple output: fewer negatives than the format's "
                    "columns (as sentence-transformers' mine_hard_negatives does)", written.rows_short)
