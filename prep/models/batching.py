"""How tokenized texts (or pairs) are cut into forward passes.

``exact_passes`` makes a text's result depend on that text alone. Three things can move a row's result in the last
bits of a float (docs/reproducibility.md, and the figures under "Benchmarks"): the length it
is padded to (on an AMX CPU, 3 of 16 rows changed between 128 and 160 tokens), the number of rows in its pass and
its place there (a matrix product's kernel treats the rows past a multiple of its unrolling otherwise: in fp32 a
cross-encoder's head scored a row of a 7- or 42-row pass otherwise at another place), and whether the pass has an
attention mask at all (transformers drops one that is all ones, and on a GPU attention then runs another kernel).
So each text is padded to a length decided by its own token count (``padded_length``: above it, so every row has a
padding position, except texts cut at the maximum length, which make passes of their own), texts share a pass only
with texts padded to the same length, and a pass has a multiple of 8 rows: on a GPU every pass of one length has
the same number (a short last pass is filled with copies of its first row, whose results are dropped); on a CPU,
where passes of any multiple of 8 rows gave the same rows, the last pass of a length only as many as it needs.

``sorted_passes`` is FlagEmbedding's way, longest first, each pass padded to its longest text: a little less
padding, and a result that moves with its neighbours (``reranker.batch_invariant=false``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prep.config.schema import HardwareConfig


@dataclass(frozen=True)
class PassShape:
    """The settings that shape passes: ``batch_size`` rows, fewer for long texts so that a pass holds about
    ``max_tokens`` padded tokens (``rows_per_pass``), lengths by ``pad_to_multiple_of`` (``padded_length``) capped
    at ``max_length`` (the truncation length, so a padded length never exceeds what the model takes)."""

    batch_size: int
    max_tokens: int
    pad_to_multiple_of: int
    max_length: int
    # true (a GPU): every pass of one length has rows_per_pass rows; false (a CPU): the last pass of a length only
    # as many as its texts need, a multiple of ROW_MULTIPLE (measured invariant, see exact_passes)
    fixed_rows: bool = True

    @classmethod
    def on(cls, device: Any, batch_size: int, hardware: HardwareConfig, max_length: int) -> PassShape:
        """The shape of passes on ``device`` (fixed rows anywhere but on the CPU) from the hardware settings."""
        return cls(batch_size, hardware.max_batch_tokens, hardware.pad_to_multiple_of, max_length,
                   fixed_rows=str(device) != "cpu")


@dataclass
class Pass:
    """One forward pass: ``items`` (token ids or tokenized pairs) at ``positions`` in the caller's list, each padded
    to ``length`` tokens; ``rows`` is the pass's row count, of which the rows after the items are copies of the
    first item (an exact pass's fixed shape) and are dropped."""

    length: int
    rows: int
    positions: list[int] = field(default_factory=list)
    items: list[Any] = field(default_factory=list)

    @property
    def filler(self) -> int:
        return self.rows - len(self.items)

    def filled(self) -> list[Any]:
        """The pass's rows as the model takes them: its items, then copies of the first up to ``rows``."""
        return self.items + [self.items[0]] * self.filler


def padded_length(tokens: int, shape: PassShape) -> int:
    """The length a text of ``tokens`` tokens is padded to, a function of its own count alone: the next multiple of
    a step above ``tokens`` (never equal: see ``exact_passes``), at most ``max_length``. The step is
    ``pad_to_multiple_of`` below 64 tokens and doubles at 64, 128, 256, ...: padding stays a similar share of a
    text, and long texts, which are few, fall into few lengths (each length costs a last pass with filler rows)."""
    step = shape.pad_to_multiple_of << max(0, tokens.bit_length() - 6)
    return min((tokens // step + 1) * step, max(shape.max_length, tokens))


# Rows of an exact pass come in multiples of this. A small matrix product over the rows (a cross-encoder's pooler
# and classifier) rounds its last rows otherwise when their count is not a multiple of its kernel's unrolling:
# in fp32 on an AVX512 CPU, rows of passes of 3, 5, 7 or 42 rows scored otherwise at another place in the same
# pass, none of passes of 4, 8, 12, 16 or 48 rows did.
ROW_MULTIPLE = 8


def rows_per_pass(length: int, shape: PassShape) -> int:
    """Rows of a full exact pass of padded ``length``: ``batch_size``, fewer for long texts so that a pass holds
    about ``max_tokens`` padded tokens, rounded up to a multiple of ``ROW_MULTIPLE`` (so a pass may hold up to 7
    rows more than fit, and a ``batch_size`` below 8 means 8)."""
    return whole_rows(max(1, min(shape.batch_size, shape.max_tokens // max(length, 1))))


def whole_rows(count: int) -> int:
    """``count`` rounded up to a multiple of ``ROW_MULTIPLE``: the row count of a fixed-shape batch of ``count``."""
    return -(-count // ROW_MULTIPLE) * ROW_MULTIPLE


def exact_passes(items: Iterable[tuple[int, Any, int]], shape: PassShape) -> Iterator[Pass]:
    """Passes over ``(position, item, token count)``: a pass is yielded as soon as its length has ``rows`` items,
    so items may come chunk by chunk; the short passes left at the end are yielded longest first, their rows
    completed with copies (``Pass.filler``).

    Every row has a padding position, except texts cut at ``max_length``, which go in passes of their own: where
    no row of a pass is padded, transformers drops the attention mask, and a pass must not change its attention
    kernel by chance of its neighbours.
    """
    pending: dict[tuple[int, bool], Pass] = {}
    for position, item, tokens in items:
        length = padded_length(tokens, shape)
        key = (length, tokens >= length)
        waiting = pending.get(key)
        if waiting is None:
            waiting = pending[key] = Pass(length, rows_per_pass(length, shape))
        waiting.positions.append(position)
        waiting.items.append(item)
        if len(waiting.items) == waiting.rows:
            yield pending.pop(key)
    for key in sorted(pending, reverse=True):
        last = pending[key]
        if not shape.fixed_rows:
            last.rows = whole_rows(len(last.items))
        yield last


def sorted_passes(items: list[tuple[int, Any, int]], shape: PassShape) -> Iterator[Pass]:
    """FlagEmbedding's batching: longest first, each pass as many rows as fit (at most ``batch_size``, and
    ``max_tokens`` padded tokens at its longest text's length), padded to its longest text; no filler rows."""
    ordered = sorted(items, key=lambda item: -item[2])  # stable: equal lengths keep their order
    start = 0
    while start < len(ordered):
        longest = max(ordered[start][2], 1)
        chosen = ordered[start:start + max(1, min(shape.batch_size, shape.max_tokens // longest))]
        yield Pass(longest, len(chosen), [c[0] for c in chosen], [c[1] for c in chosen])
        start += len(chosen)


def padded_tokens(passes: Iterable[Pass]) -> int:
    """Tokens the passes run (filler rows and padding included): the cost side of ``exact_passes``."""
    return sum(p.rows * p.length for p in passes)


# Bumped when the way passes are cut changes, so cache entries made another way are not reused.
PASSES_VERSION = 1


def passes_identity(hardware: HardwareConfig) -> dict[str, Any]:
    """The hardware settings that shape passes (the padded length's rule, the tokens a pass holds), for the cache
    keys of embeddings and scores; the row cap (``batch_size``) is the model's own setting and counts there."""
    return {"version": PASSES_VERSION, "pad_to_multiple_of": hardware.pad_to_multiple_of,
            "max_batch_tokens": hardware.max_batch_tokens}
