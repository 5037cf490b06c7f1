"""``step=split``: training rows into length buckets, FlagEmbedding's ``split_data_by_length.py`` in one pass.

A row's length is the longest tokenized text among its ``query``, ``pos`` and ``neg`` (token ids with
special tokens, no truncation). With ``length_list`` ``[l0, l1, ..., ln]`` (sorted), a row of length L
goes to ``[l_i, l_i+1)`` and the last bucket is open (``[ln, inf)``). Input ``NAME.jsonl`` gives
``DIR/NAME_len-L-R.jsonl``. Rows are streamed in chunks, and each row's original line is written
unchanged, so every key survives byte for byte and memory stays bounded whatever the file size.
Tokenization runs in the tokenizer's Rust backend, batched, on ``num_proc`` threads of our own (the
backend's own thread pool is sized once per process, so it could not honour ``num_proc`` after mining
had used it, as in ``step=pipeline``).
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from prep import contract
from prep.cache import tables
from prep.config.settings import settings_of
from prep.config.values import parse_length_list
from prep.errors import DataError, UsageError
from prep.io import paths
from prep.io.atomic import file_mode
from prep.io.formats import with_tuple_check, write_rows
from prep.io.jsonl import check_row_and_scores, check_training_row, iter_lines
from prep.io.reader import Reader
from prep.io.sources import LineRows, Source
from prep.models.tokens import TextLengths, load_tokenizer
from prep.steps.frame import StepRun

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from prep.config.schema import ColumnsConfig, Config

log = logging.getLogger(__name__)

CHUNK_ROWS = 2000


def bucket_names(stem: str, bounds: list[int], suffix: str = ".jsonl") -> list[str]:
    """File names of the buckets of one input, the last one open-ended (``inf``)."""
    edges = [*bounds[1:], "inf"]
    return [f"{stem}_len-{low}-{high}{suffix}" for low, high in zip(bounds, edges)]


def bucket_of(length: int, bounds: list[int]) -> int | None:
    """Index of the bucket ``[l_i, l_i+1)`` holding ``length``; None below the first boundary."""
    index = bisect.bisect_right(bounds, length) - 1
    return index if index >= 0 else None


def _chunks(path: Path) -> Iterator[tuple[list[int], list[str]]]:
    """(line numbers, lines) of up to CHUNK_ROWS non-blank lines, each with its own line ending (``\\r\\n``
    stays ``\\r\\n``; a last line without one gets ``\\n``)."""
    numbers: list[int] = []
    lines: list[str] = []
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        numbers.append(number)
        lines.append(line if line.endswith("\n") else line + "\n")
        if len(lines) == CHUNK_ROWS:
            yield numbers, lines
            numbers, lines = [], []
    if lines:
        yield numbers, lines


def _parse(path: Path, numbers: list[int], lines: list[str], columns: ColumnsConfig) -> list[list[str]]:
    """Each row's texts (query, pos..., neg...), checked; errors name the file, line and field (rows in
    sentence-transformers' column names are read as ``io.sources`` reads them)."""
    reader = LineRows(str(path), columns, check_training_row)
    return [row_texts(reader.row(number, line)) for number, line in zip(numbers, lines)]


def row_texts(row: dict[str, Any]) -> list[str]:
    return [row["query"], *row["pos"], *row.get("neg", [])]


@dataclass
class FileResult:
    path: Path
    rows: int = 0
    texts: int = 0
    length_sum: int = 0
    below_first: int = 0
    bucket_rows: list[int] = field(default_factory=list)
    temp_paths: list[Path | None] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0


def assign_buckets(result: FileResult, texts: list[list[str]], lengths: TextLengths, bounds: list[int]
                   ) -> list[int | None]:
    """The bucket of each row of a chunk (None: below the first boundary), by the longest of its ``texts``;
    ``result``'s counts are updated."""
    text_lengths = lengths.of([t for row in texts for t in row])
    indexes: list[int | None] = []
    position = 0
    for row in texts:
        length = max(text_lengths[position:position + len(row)])
        position += len(row)
        result.rows += 1
        result.texts += len(row)
        result.length_sum += length
        index = bucket_of(length, bounds)
        if index is None:
            result.below_first += 1
        else:
            result.bucket_rows[index] += 1
        indexes.append(index)
    return indexes


def split_file(path: Path, out_dir: Path, bounds: list[int], lengths: TextLengths, columns: ColumnsConfig
               ) -> FileResult:
    """Stream one file into temporary bucket files beside their targets (renamed later)."""
    result = FileResult(path, bucket_rows=[0] * len(bounds), temp_paths=[None] * len(bounds), started=time.time())
    handles: list[TextIO | None] = [None] * len(bounds)
    try:
        for numbers, lines in _chunks(path):
            indexes = assign_buckets(result, _parse(path, numbers, lines, columns), lengths, bounds)
            for line, index in zip(lines, indexes):
                if index is None:
                    continue
                if handles[index] is None:
                    handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", newline="", dir=out_dir,
                                                         prefix=".split.", suffix=".tmp", delete=False)
                    handles[index], result.temp_paths[index] = handle, Path(handle.name)
                handles[index].write(line)
        if result.rows == 0:
            raise DataError(path, None, "holds no rows")
    except BaseException:
        for handle, temp in zip(handles, result.temp_paths):
            if handle is not None:
                handle.close()
                temp.unlink(missing_ok=True)
        raise
    for handle in handles:
        if handle is not None:
            handle.flush()
            os.fchmod(handle.fileno(), file_mode())
            os.fsync(handle.fileno())
            handle.close()
    result.ended = time.time()
    return result


def _discard(results: list[FileResult]) -> None:
    for result in results:
        for temp in result.temp_paths:
            if temp is not None:
                temp.unlink(missing_ok=True)


def run(cfg: DictConfig | Config) -> dict[str, Any]:
    settings = settings_of(cfg)
    splitter = settings.splitter
    bounds = parse_length_list(splitter.length_list)
    if bounds != list(splitter.length_list):
        log.info("splitter.length_list %s sorted to %s", list(splitter.length_list), bounds)
    step = StepRun(settings, "split")
    reader = tables.reader(settings)
    source = reader.source(settings.input if settings.input is not None else paths.SAMPLE_MINED)
    input_path = source.label
    out_dir = paths.user_path(settings.output) or step.run_dir / "split"
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"output: {out_dir} is a file; step=split writes a folder")
    with step.phase("load"):
        lengths = TextLengths(load_tokenizer(splitter), threads=splitter.num_proc)
    if not (source.is_json_lines and settings.output_format == "flagembedding"):
        return split_tables(step, reader, source, out_dir, bounds, lengths)
    files = [Path(part.location) for part in source.parts]
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        with step.phase("split"):
            results = split_files(files, out_dir, bounds, lengths, settings.columns)
    except BaseException:
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()  # a rejected input leaves no trace
        raise
    with step.phase("write"):
        report = [place_buckets(result, out_dir, bounds, bool(splitter.overwrite or settings.overwrite))
                  for result in results]
        record(out_dir / splitter.log_name, report)
    texts = sum(r.texts for r in results)
    return step.finish(contract.SplitSummary(
        rows=sum(r.rows for r in results), texts=texts, texts_tokenized=lengths.tokenized,
        texts_per_second=texts_per_second(texts, step), length_list=bounds, files=report, input=str(input_path),
        output=str(out_dir)), ("load", "split", "write"))


def texts_per_second(texts: int, step: StepRun) -> float | None:
    """How fast the split phase counted tokens (None: it took no measurable time)."""
    seconds = step.timer.seconds()
    return round(texts / seconds["split"], 1) if seconds.get("split") else None


def split_files(files: list[Path], out_dir: Path, bounds: list[int], lengths: TextLengths, columns: ColumnsConfig
                ) -> list[FileResult]:
    """Every file into temporary bucket files; one bad file and nothing of any file is kept."""
    results: list[FileResult] = []
    try:
        for path in files:
            results.append(split_file(path, out_dir, bounds, lengths, columns))
            log.info("%s: %d rows", path, results[-1].rows)
    except BaseException:
        _discard(results)
        raise
    return results


def place_buckets(result: FileResult, out_dir: Path, bounds: list[int], overwrite: bool) -> dict[str, Any]:
    """Rename one file's temporary buckets onto their names (an existing bucket is skipped unless
    ``overwrite``); returns the file's line for ``.split_log``."""
    names = bucket_names(result.path.stem, bounds)
    written, skipped = {}, []
    for name, rows, temp in zip(names, result.bucket_rows, result.temp_paths):
        if temp is None:
            continue
        target = out_dir / name
        if target.exists() and not overwrite:
            log.warning("%s exists: skipped (splitter.overwrite=true replaces it)", target)
            temp.unlink()
            skipped.append(name)
            continue
        os.replace(temp, target)
        written[name] = rows
    return file_entry(result, names, written, skipped, size_bytes=result.path.stat().st_size)


def file_entry(result: FileResult, names: list[str], written: dict[str, int], skipped: list[str],
               size_bytes: int | None = None) -> dict[str, Any]:
    """One input's line for ``.split_log`` and the summary's ``files``."""
    entry: dict[str, Any] = {"file": result.path.name, "path": str(result.path)}
    if size_bytes is not None:
        entry["size_bytes"] = size_bytes
    entry.update({
        "rows": result.rows,
        "average_length": round(result.length_sum / result.rows, 2),
        "start": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(result.started)),
        "end": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(result.ended)),
        "buckets": {name: rows for name, rows in zip(names, result.bucket_rows) if rows},
        "written": written,
        "skipped_existing": skipped,
        "below_first_boundary": result.below_first,
    })
    return entry


def record(log_path: Path, report: list[dict[str, Any]]) -> None:
    """Append each input's line to the split log, and log its buckets."""
    with open(log_path, "a", encoding="utf-8") as log_file:
        log_file.writelines(json.dumps(entry, ensure_ascii=False) + "\n" for entry in report)
    for entry in report:
        log.info("%s: %s", entry["file"], ", ".join(f"{k}: {v}" for k, v in entry["buckets"].items()) or "no rows")


# The buckets' container follows the input's: JSON lines stay JSON lines, table files become parquet, a saved or
# hub dataset gives saved-dataset folders.
BUCKET_SUFFIX = {"jsonl": ".jsonl", "parquet": ".parquet", "csv": ".parquet", "json": ".parquet", "saved": "",
                 "hub": ""}


def split_tables(step: StepRun, reader: Reader, source: Source, out_dir: Path, bounds: list[int],
                 lengths: TextLengths) -> dict[str, Any]:
    """Buckets of rows read through ``io.sources`` (table files, saved or hub datasets, or JSON lines written in a
    sentence-transformers format), written by ``io.formats``. Every part is read and checked before any bucket is
    written, so a bad row leaves nothing behind."""
    settings = step.settings
    parts = []
    with step.phase("split"):
        for part in source.parts:
            result = FileResult(Path(part.location), bucket_rows=[0] * len(bounds), started=time.time())
            rows = reader.training_rows(Source(part.label, (part,), source.split),
                                        with_tuple_check(check_row_and_scores, settings.output_format))
            buckets: list[list[dict[str, Any]]] = [[] for _ in bounds]
            for start in range(0, len(rows), CHUNK_ROWS):
                chunk = rows[start:start + CHUNK_ROWS]
                for row, index in zip(chunk, assign_buckets(result, [row_texts(r) for r in chunk], lengths, bounds)):
                    if index is not None:
                        buckets[index].append(row)
            result.ended = time.time()
            parts.append((part, result, buckets))
    out_dir.mkdir(parents=True, exist_ok=True)
    overwrite = bool(settings.splitter.overwrite or settings.overwrite)
    report = []
    with step.phase("write"):
        for part, result, buckets in parts:
            stem = Path(part.location).stem if part.kind != "hub" else part.location.replace("/", "__")
            names = bucket_names(stem, bounds, BUCKET_SUFFIX[part.kind])
            written, skipped = {}, []
            for name, bucket in zip(names, buckets):
                if not bucket:
                    continue
                target = out_dir / name
                if os.path.lexists(target) and not overwrite:
                    log.warning("%s exists: skipped (splitter.overwrite=true replaces it)", target)
                    skipped.append(name)
                    continue
                written[name] = write_rows(target, bucket, settings.output_format, overwrite,
                                           negatives=min(len(row.get("neg", [])) for row in bucket)).rows_out
            report.append(file_entry(result, names, written, skipped))
        record(out_dir / settings.splitter.log_name, report)
    texts = sum(result.texts for _, result, _ in parts)
    return step.finish(contract.SplitSummary(
        rows=sum(result.rows for _, result, _ in parts), texts=texts, texts_tokenized=lengths.tokenized,
        texts_per_second=texts_per_second(texts, step), length_list=bounds, files=report, input=source.label,
        output=str(out_dir), output_format=str(settings.output_format)), ("load", "split", "write"))
