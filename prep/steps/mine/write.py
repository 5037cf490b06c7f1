"""``step=mine``'s writing: each mined block's rows into the output as the block is done, its rejected rows into
``NAME.rejected.jsonl``; both files appear whole when the run ends, or not at all."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prep.io.formats import RowSink, Written, open_rows
from prep.io.paths import rejected_beside
from prep.io.rawjson import replaced
from prep.steps.frame import StepRun
from prep.steps.mine.records import Block, Mining
from prep.steps.mine.retrieve import negative_sources


@dataclass
class Outputs:
    """The open output and, with ``miner.max_positive_rank``, the open file of rejected rows."""

    mined: RowSink
    rejected: RowSink | None

    @property
    def written(self) -> Written:
        return self.mined.written


def rejected_path(step: StepRun) -> Path:
    """``NAME.rejected.jsonl`` beside the output ``NAME.jsonl`` (or ``NAME.parquet``, or the folder ``NAME``): the
    rows ``miner.max_positive_rank`` rejects, each with its reason. Named after the output, so that it can never be
    the output, nor another run's output or rejected file in the same folder."""
    return rejected_beside(step.output)


@contextmanager
def open_outputs(mining: Mining) -> Iterator[Outputs]:
    """The output (and the rejected rows' file), written when the ``with`` block ends: the output first."""
    step, rules = mining.step, mining.rules
    with ExitStack() as files:  # closed last-opened first: the output before its rejected rows
        rejected = None
        if rules.max_positive_rank is not None:
            rejected = files.enter_context(open_rows(rejected_path(step), overwrite=step.settings.overwrite))
        mined = files.enter_context(open_rows(step.output, step.settings.output_format, step.settings.overwrite,
                                              rules.negative_number))
        yield Outputs(mined, rejected)


def write_block(mining: Mining, outputs: Outputs, block: Block) -> None:
    """A mined block's rows with their new ``neg`` (after their own kept ones), their texts read from the pool;
    its rejected rows as they came, with the reason.

    A row's ``neg_scores`` scored its old negatives: FlagEmbedding's distillation would read them as the
    new ones' teacher scores, so they are dropped (``step=score`` fills them again); ``pos_scores`` stays,
    as ``pos`` does."""
    rejected: list[dict[str, Any]] = []
    with mining.step.phase("write"):
        outputs.mined.add(mined_rows(mining, block, rejected))  # one row's negative texts held at a time
        if outputs.rejected is not None:
            outputs.rejected.add(rejected)


def mined_rows(mining: Mining, block: Block, rejected: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The block's rows not rejected, mined, one at a time; the rejected ones, with the reason, go to
    ``rejected``."""
    rows, selected = block.rows, block.selected
    with_sources = mining.step.settings.miner.write_sources
    for index, row in enumerate(rows.rows):
        if index in block.ranked.rejected:
            rejected.append(replaced(row, rejected=block.ranked.rejected[index]))
            continue
        kept = selected.kept_inputs[index]
        sources = None
        if with_sources:
            sources = ["input"] * len(kept) + negative_sources(block.searched, index, selected.results[index])
        yield mined_row(row, kept + rows.pool.take(selected.results[index].negative_ids), sources)


def mined_row(row: dict[str, Any], negatives: list[str], sources: list[str] | None = None) -> dict[str, Any]:
    """``row`` with ``neg`` replaced (and ``neg_sources`` with ``miner.write_sources``) and its stale ``neg_scores``
    dropped; every other key as it came."""
    extra = {} if sources is None else {"neg_sources": sources}
    return replaced(row, removed=("neg_scores",), neg=negatives, **extra)
