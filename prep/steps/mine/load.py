"""``step=mine``'s load phase: the training rows checked (then left on disk), the deduplicated pool, where each
row's positives and query sit in it, and the rows this run mines."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prep.cache import tables
from prep.io.formats import with_table_fit
from prep.io.jsonl import check_training_row, with_instruction_check
from prep.io.paths import input_sources
from prep.io.pool import PassagePool, corpus_texts, open_pool
from prep.io.rowstore import ListRows, RowStore
from prep.steps.mine.records import Input, Mining, Placement
from prep.steps.mine.shards import row_block

if TYPE_CHECKING:
    from prep.config.schema import Config

log = logging.getLogger(__name__)


def load(mining: Mining, work_dir: Path, rows: list[dict[str, Any]] | None) -> Input:
    """The training rows (read and checked, then left on disk, unless given), the deduplicated pool (an Arrow file
    in ``work_dir``: the pool file's texts, or every row's ``pos`` and ``neg`` read as the rows are checked), where
    each row's positives and query sit in it, and the rows this run mines (a shard's with ``shard.count > 1``)."""
    settings = mining.step.settings
    source, pool_source = input_sources(settings)
    reader = tables.reader(settings, mining.cache)
    with mining.step.phase("load"):
        if rows is None:
            store: RowStore = reader.store(source, row_check(settings, mining.step.output), work_dir)
            scanned = store.scan()
        else:
            store = ListRows(rows)
            scanned = iter(rows)
        if pool_source is None:
            pool = PassagePool.build(corpus_texts(scanned, None), work_dir)
        else:
            for _ in scanned:  # every row checked before the pool is read
                pass
            pool = open_pool([], pool_source, work_dir, reader)
        placement = Placement.of(store, pool)
    log.info("%d rows from %s; corpus of %d distinct passages%s", len(store), source.label, len(pool),
             f" from {pool_source.label}" if pool_source else " (pos and neg of the input)")
    span = range(len(store))
    shard = settings.shard
    if shard.count > 1:
        span = row_block(len(store), shard.index, shard.count)
        log.info("shard %d of %d: rows %d to %d of %d", shard.index, shard.count, span.start, span.stop - 1,
                 len(store))
    return Input(store, pool, placement,
                 {"input": source.label, "candidate_pool": pool_source.label if pool_source else None}, span)


def row_check(settings: Config, output: Path) -> Callable[[dict[str, Any]], None]:
    """A training row's check, with the per-row instruction columns the run reads (the miner's, and the teacher's
    when ``miner.teacher_filter`` scores), and for a table output whether the row fits it (``formats.TableFit``)."""
    check = with_instruction_check(check_training_row, settings.miner.query_instruction_from_row)
    if settings.miner.teacher_filter:
        check = with_instruction_check(check, settings.reranker.query_instruction_from_row)
    return with_table_fit(check, output, settings.output_format)


def query_blocks(rows: range, size: int) -> list[range]:
    """The rows (a span of input row numbers) in blocks of ``size`` (``miner.query_block``), mined one after the
    other (one empty block for no rows)."""
    return [range(start, min(start + size, rows.stop)) for start in range(rows.start, rows.stop, size)] or [
        range(rows.start, rows.start)]
