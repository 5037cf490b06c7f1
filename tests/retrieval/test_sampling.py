import numpy as np
import pytest

from prep.config.values import RangeError, check_margin, parse_rank_range, parse_similarity_range
from prep.errors import UsageError
from prep.retrieval.sampling import (
    Candidate,
    Window,
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
    kept, _ = qualifying_candidates(IDS, SIMS, Window((2, 5)), set())
    assert [(c.rank, c.passage_id) for c in kept] == [(2, 9), (3, 1), (4, 4)]


def test_window_past_the_results_and_padding_ids_are_skipped():
    kept, _ = qualifying_candidates(IDS, SIMS, Window((5, 100)), set())
    assert [c.passage_id for c in kept] == [8, 2]


def test_excluded_ids_are_dropped():
    kept, _ = qualifying_candidates(IDS, SIMS, Window((0, 7)), {3, 4})
    assert [c.passage_id for c in kept] == [7, 9, 1, 8, 2]


def test_similarity_window_is_inclusive():
    kept, _ = qualifying_candidates(IDS, SIMS, Window((0, 7), (0.5, 0.8)), set())
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


# Scores chosen to be exact in binary floating point, so the boundaries are tested exactly.
MARGIN_IDS = [10, 11, 12, 13, 14, 15]
MARGIN_SIMS = [0.875, 0.75, 0.625, 0.5, 0.375, 0.25]


def _kept(**filters):
    window, excluded = filters.pop("window", None), filters.pop("excluded", set())
    margins = Window((0, 6), window, filters.pop("relative_margin", None), filters.pop("absolute_margin", None))
    kept, removed = qualifying_candidates(MARGIN_IDS, MARGIN_SIMS, margins, excluded, **filters)
    return [c.passage_id for c in kept], dict(removed)


def test_relative_margin_keeps_scores_at_the_ceiling():
    # positive 0.75, relative margin 0.5: ceiling (1 - 0.5) * 0.75 = 0.375, kept (inclusive)
    assert _kept(positive_similarity=0.75, relative_margin=0.5) == ([14, 15], {"relative_margin": 4})
    # TopK-PercPos 95% with a positive of 0.875: ceiling 0.83125
    assert _kept(positive_similarity=0.875, relative_margin=0.05)[0] == [11, 12, 13, 14, 15]


def test_absolute_margin_keeps_scores_at_the_ceiling():
    assert _kept(positive_similarity=0.75, absolute_margin=0.125) == ([12, 13, 14, 15], {"absolute_margin": 2})
    assert _kept(positive_similarity=0.75, absolute_margin=0.0)[0] == [11, 12, 13, 14, 15]


def test_both_margins_and_the_similarity_window_combine_and_each_removal_is_counted_once():
    ids, removed = _kept(window=(0.3, 0.8), excluded={13}, positive_similarity=0.875, relative_margin=0.5,
                         absolute_margin=0.25)
    # 10 (0.875) out of the window; 13 excluded; ceilings 0.4375 (relative) and 0.625 (absolute);
    # 11 (0.75) and 12 (0.625) over the relative one; 15 (0.25) out of the window
    assert ids == [14]
    assert removed == {"similarity_range": 2, "positive_or_query": 1, "relative_margin": 2}


def test_no_margin_without_a_positive_score():
    assert _kept(relative_margin=0.5)[0] == MARGIN_IDS


@pytest.mark.parametrize("key, value", [("miner.relative_margin", 1.0), ("miner.relative_margin", -0.1),
                                        ("miner.absolute_margin", -0.5)])
def test_bad_margins_name_the_key(key, value):
    with pytest.raises(RangeError, match=key):
        check_margin(value, key)


def test_teacher_filter_on_fixed_scores():
    from prep.retrieval.sampling import teacher_filter

    candidates = [Candidate(r, 20 + r, 0.5) for r in range(5)]
    teacher = [3.0, 2.0, 1.5, -1.0, 2.5]
    # positive's teacher score 2.0, absolute margin 0.5: ceiling 1.5 (inclusive)
    kept, removed = teacher_filter(candidates, teacher, 2.0, None, 0.5)
    assert [c.passage_id for c in kept] == [22, 23] and removed == 3
    # relative margin 0.25 from 2.0: ceiling 1.5 too; both margins: the lower ceiling wins
    assert [c.passage_id for c in teacher_filter(candidates, teacher, 2.0, 0.25, None)[0]] == [22, 23]
    assert [c.passage_id for c in teacher_filter(candidates, teacher, 2.0, 0.25, 2.0)[0]] == [23]
    assert teacher_filter(candidates, teacher, 2.0, None, None) == (candidates, 0)


def test_top_takes_the_best_ranked_and_random_draws_from_all():
    from prep.retrieval.sampling import select_candidates

    candidates = [Candidate(r, 100 + r, 1 - r / 100) for r in range(2, 40)]
    assert [c.rank for c in select_candidates(candidates, 5, "top", row_rng(0, 0))] == [2, 3, 4, 5, 6]
    drawn = select_candidates(candidates, 5, "random", row_rng(0, 0))
    assert drawn == sample_candidates(candidates, 5, row_rng(0, 0))
    assert [c.rank for c in drawn] != [2, 3, 4, 5, 6]
    with pytest.raises(UsageError, match="sampling_strategy"):
        select_candidates(candidates, 5, "best", row_rng(0, 0))
