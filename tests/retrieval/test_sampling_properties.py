"""Property tests of the mining rules (Hypothesis): on any search results, windows and margins, every negative
obeys every rule, counts add up, nothing repeats, and the same seed gives the same negatives."""

from hypothesis import given, settings
from hypothesis import strategies as st

from prep.retrieval.sampling import Fill, MiningRules, Window, mine_row, qualifying_candidates, random_fill, row_rng

SIMILARITY = st.floats(min_value=-1, max_value=1, allow_nan=False, width=32)
RULES = settings(max_examples=300, deadline=None)


@st.composite
def search_results(draw):
    """One query's results: distinct ids (padding -1 at the end, as faiss pads), similarities best first."""
    size = draw(st.integers(0, 40))
    ids = draw(st.lists(st.integers(0, 60), min_size=size, max_size=size, unique=True))
    similarities = sorted(draw(st.lists(SIMILARITY, min_size=size, max_size=size)), reverse=True)
    padding = draw(st.integers(0, 3))
    return ids + [-1] * padding, similarities + [-3.4e38] * padding


@RULES
@given(results=search_results(), low=st.integers(0, 10), width=st.integers(1, 50),
       window=st.none() | st.tuples(SIMILARITY, SIMILARITY).map(sorted),
       excluded=st.sets(st.integers(0, 60), max_size=5), positive=st.none() | SIMILARITY,
       relative=st.none() | st.floats(0, 0.9), absolute=st.none() | st.floats(0, 1))
def test_qualifying_candidates_obey_every_rule_and_every_removal_is_counted_once(results, low, width, window,
                                                                                 excluded, positive, relative,
                                                                                 absolute):
    ids, similarities = results
    kept, removed = qualifying_candidates(ids, similarities, Window((low, low + width), window, relative, absolute),
                                          excluded, positive_similarity=positive)
    in_window = [r for r in range(low, min(low + width, len(ids))) if ids[r] >= 0]
    assert len(kept) + sum(removed.values()) == len(in_window)
    assert [c.rank for c in kept] == sorted(c.rank for c in kept)
    for candidate in kept:
        assert low <= candidate.rank < low + width and candidate.passage_id not in excluded
        assert window is None or window[0] <= candidate.similarity <= window[1]
        if positive is not None and relative is not None:
            assert candidate.similarity <= (1 - relative) * positive
        if positive is not None and absolute is not None:
            assert candidate.similarity <= positive - absolute


@RULES
@given(corpus=st.integers(1, 80), count=st.integers(0, 30), forbidden=st.sets(st.integers(0, 90), max_size=40),
       seed=st.integers(0, 2**32 - 1))
def test_random_fill_gives_distinct_allowed_ids_as_many_as_the_corpus_allows(corpus, count, forbidden, seed):
    chosen = random_fill(corpus, count, forbidden, row_rng(seed, 0))
    allowed = corpus - len([i for i in forbidden if i < corpus])
    assert len(chosen) == len(set(chosen)) == min(count, allowed)
    assert all(0 <= i < corpus and i not in forbidden for i in chosen)
    assert chosen == random_fill(corpus, count, forbidden, row_rng(seed, 0))


@RULES
@given(results=search_results(), number=st.integers(0, 20), fill=st.booleans(),
       strategy=st.sampled_from(["random", "top"]), excluded=st.sets(st.integers(0, 60), max_size=4),
       seed=st.integers(0, 1000), row=st.integers(0, 10**6))
def test_a_row_s_negatives_are_distinct_allowed_and_seeded(results, number, fill, strategy, excluded, seed, row):
    ids, similarities = results
    rules = MiningRules((0, 50), None, number, fill, seed, sampling_strategy=strategy)
    qualifying, _ = qualifying_candidates(ids, similarities, Window((0, 50)), excluded)
    result = mine_row(row, qualifying, rules, Fill(61, excluded))
    assert result == mine_row(row, qualifying, rules, Fill(61, excluded))
    assert len(result.negative_ids) == len(set(result.negative_ids))
    assert not set(result.negative_ids) & excluded
    window = result.negative_ids[:result.window_count]
    assert set(window) <= {c.passage_id for c in qualifying}
    expected = min(number, len(qualifying)) if not fill else min(number, 61 - len(excluded))
    assert len(result.negative_ids) == expected
    if strategy == "top":
        assert window == [c.passage_id for c in qualifying[:number]]
