"""Exact passes: a text's padded length and its pass's shape follow from its own token count alone."""

import pytest

from prep.models import batching
from prep.models.batching import PassShape

SHAPE = PassShape(batch_size=16, max_tokens=256, pad_to_multiple_of=8, max_length=30)


@pytest.mark.parametrize("tokens, expected", [(1, 8), (7, 8), (8, 16), (9, 16), (23, 24), (24, 30), (29, 30),
                                              (30, 30)])
def test_padded_length_is_the_next_multiple_above_the_count_and_never_past_the_max_length(tokens, expected):
    assert batching.padded_length(tokens, SHAPE) == expected


@pytest.mark.parametrize("tokens, expected", [(63, 64), (64, 80), (130, 160), (300, 320), (511, 512), (512, 512)])
def test_the_step_doubles_at_64_128_256_tokens(tokens, expected):
    assert batching.padded_length(tokens, PassShape(16, 256, 8, 512)) == expected


@pytest.mark.parametrize("length, expected", [(8, 16), (16, 16), (24, 16), (30, 8), (100, 8), (4000, 8)])
def test_rows_per_pass_are_what_fits_rounded_up_to_a_multiple_of_eight(length, expected):
    assert batching.rows_per_pass(length, SHAPE) == expected
    assert batching.rows_per_pass(8, PassShape(3, 256, 8, 30)) == 8  # never below eight rows


def test_exact_passes_group_by_padded_length_with_a_fixed_row_count():
    # token counts: 16 texts padded to 8 (a full pass), then texts padded to 24, 30 (some cut at 30), 16
    lengths = [3] * 10 + [20, 9, 30, 12, 29] + [5] * 6 + [30] * 7 + [2, 26]
    passes = list(batching.exact_passes(((i, f"t{i}", n) for i, n in enumerate(lengths)), SHAPE))
    assert [(p.length, p.rows, p.positions) for p in passes] == [
        (8, 16, list(range(10)) + list(range(15, 21))),  # full as soon as its 16th text came
        (30, 8, [12, *range(21, 28)]),  # texts cut at max_length: no padding, a pass of their own
        (30, 8, [14, 29]),  # then the short passes, longest first, completed with filler rows
        (24, 16, [10]),
        (16, 16, [11, 13]),
        (8, 16, [28]),
    ]
    assert [p.filler for p in passes] == [0, 0, 6, 15, 14, 15]
    assert sorted(i for p in passes for i in p.positions) == list(range(len(lengths)))
    assert all(p.items == [f"t{i}" for i in p.positions] for p in passes)


def test_a_full_pass_comes_before_the_texts_run_out():
    """Texts arrive chunk by chunk; a pass does not wait for the end of the input."""
    seen = []

    def texts():
        for i in range(20):
            seen.append(i)
            yield i, i, 26

    first = next(batching.exact_passes(texts(), SHAPE))
    assert first.positions == list(range(8)) and seen == list(range(8))


def test_sorted_passes_are_flagembeddings_longest_first_batches():
    lengths = [512, 500, 300, 100, 100, 100, 10, 10, 10, 10]
    shape = PassShape(batch_size=4, max_tokens=1024, pad_to_multiple_of=8, max_length=512)
    passes = list(batching.sorted_passes([(i, i, n) for i, n in enumerate(lengths)], shape))
    assert [p.positions for p in passes] == [[0, 1], [2, 3, 4], [5, 6, 7, 8], [9]]
    assert [p.length for p in passes] == [512, 300, 100, 10] and all(p.filler == 0 for p in passes)
    assert list(batching.sorted_passes([(0, 0, 4000)], shape))[0].rows == 1  # one text never splits
    assert list(batching.sorted_passes([], shape)) == []


def test_on_a_cpu_the_last_pass_of_a_length_holds_only_the_rows_its_texts_need():
    """fixed_rows=false (a CPU, where passes of any multiple of 8 rows gave the same rows): a short last pass is cut
    to a multiple of 8 rows; a full pass keeps its rows."""
    shape = PassShape(batch_size=16, max_tokens=256, pad_to_multiple_of=8, max_length=30, fixed_rows=False)
    passes = list(batching.exact_passes(((i, i, 3) for i in range(16 + 3)), shape))
    assert [(len(p.items), p.rows, p.filler) for p in passes] == [(16, 16, 0), (3, 8, 5)]
