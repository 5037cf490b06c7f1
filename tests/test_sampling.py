import numpy as np
import pytest

from prep.sampling import (
    Candidate,
    RangeError,
    parse_rank_range,
    parse_similarity_range,
    qualifying_candidates,
    random_fill,
    row_rng,
    sample_candidates,
)


@pytest.mark.parametrize("value, expected", [("2-200", (2, 200)), ([2, 200], (2, 200)), (" 10 - 210 ", (10, 210)),
                                             ((0, 5), (0, 5))])
def test_rank_range_accepts_strings_and_lists(value, expected):
    assert parse_rank_range(value) == expected


@pytest.mark.parametrize("value", ["200-2", "5-5", "-1-5", "2.5-10", "abc", [1], [1, 2, 3], "2-", None, ["a", "b"]])
def test_rank_range_rejects_bad_values_naming_the_key(value):
    with pytest.raises(RangeError, match="miner.range_for_sampling"):
        parse_rank_range(value)


@pytest.mark.parametrize("value, expected", [("0.3-0.8", (0.3, 0.8)), ([0.3, 0.8], (0.3, 0.8)), (None, None),
                                             ("-0.2-0.5", (-0.2, 0.5)), ([0, 1], (0.0, 1.0))])
def test_similarity_range(value, expected):
    assert parse_similarity_range(value) == expected


def test_similarity_range_rejects_reversed():
    with pytest.raises(RangeError, match="miner.similarity_range"):
        parse_similarity_range("0.8-0.3")


IDS = [7, 3, 9, 1, 4, 8, 2, -1]
SIMS = [0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, -3.4e38]


def test_rank_window_is_half_open_and_zero_based():
    kept = qualifying_candidates(IDS, SIMS, (2, 5), None, set())
    assert [(c.rank, c.passage_id) for c in kept] == [(2, 9), (3, 1), (4, 4)]


def test_window_past_the_results_and_padding_ids_are_skipped():
    kept = qualifying_candidates(IDS, SIMS, (5, 100), None, set())
    assert [c.passage_id for c in kept] == [8, 2]


def test_excluded_ids_are_dropped():
    kept = qualifying_candidates(IDS, SIMS, (0, 7), None, {3, 4})
    assert [c.passage_id for c in kept] == [7, 9, 1, 8, 2]


def test_similarity_window_is_inclusive():
    kept = qualifying_candidates(IDS, SIMS, (0, 7), (0.5, 0.8), set())
    assert [(c.passage_id, c.similarity) for c in kept] == [(9, 0.8), (1, pytest.approx(0.7)), (4, 0.6), (8, 0.5)]


def test_sample_without_replacement_in_rank_order_and_seeded():
    candidates = [Candidate(rank, 100 + rank, 0.5) for rank in range(50)]
    first = sample_candidates(candidates, 10, row_rng(1, 0))
    again = sample_candidates(candidates, 10, row_rng(1, 0))
    other_row = sample_candidates(candidates, 10, row_rng(1, 1))
    assert first == again
    assert first != other_row
    assert len({c.passage_id for c in first}) == 10
    assert [c.rank for c in first] == sorted(c.rank for c in first)


def test_sample_takes_all_when_too_few():
    candidates = [Candidate(rank, rank, 0.5) for rank in range(3)]
    assert sample_candidates(candidates, 5, row_rng(0, 0)) == candidates


def test_sampling_is_uniform_over_the_window():
    candidates = [Candidate(rank, rank, 0.5) for rank in range(10)]
    counts = np.zeros(10)
    for row in range(4000):
        for c in sample_candidates(candidates, 3, row_rng(0, row)):
            counts[c.passage_id] += 1
    assert counts.sum() == 12000
    assert np.all(np.abs(counts / 1200 - 1) < 0.1)


@pytest.mark.parametrize("corpus_size, count", [(1000, 5), (12, 7), (12, 100)])
def test_random_fill_never_repeats_nor_takes_forbidden(corpus_size, count):
    forbidden = {0, 1, 2, 5}
    filled = random_fill(corpus_size, count, forbidden, row_rng(3, 4))
    assert len(filled) == len(set(filled)) == min(count, corpus_size - len(forbidden))
    assert not set(filled) & forbidden
    assert all(0 <= i < corpus_size for i in filled)
    assert filled == random_fill(corpus_size, count, forbidden, row_rng(3, 4))


def test_random_fill_with_nothing_allowed():
    assert random_fill(3, 2, {0, 1, 2}, row_rng(0, 0)) == []
