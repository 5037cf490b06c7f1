"""The probe's hold-out: no dev positive is ever a training positive; seeded; the asked-for share."""

from hypothesis import given, settings
from hypothesis import strategies as st

from prep.evaluation.holdout import hold_out, linked_groups


def test_rows_sharing_a_positive_stay_together():
    positives = [["a"], ["b"], ["a", "c"], ["d"], ["c"], ["e"]]
    assert linked_groups(positives) == [[0, 2, 4], [1], [3], [5]]


@settings(max_examples=200, deadline=None)
@given(positives=st.lists(st.lists(st.sampled_from("abcdefghijklmnopqrstuvwxyz"), min_size=1, max_size=3),
                          min_size=2, max_size=40),
       fraction=st.floats(0.05, 0.9), seed=st.integers(0, 2**31))
def test_no_dev_positive_is_a_training_positive(positives, fraction, seed):
    training, dev = hold_out(positives, fraction, seed)
    assert sorted(training + dev) == list(range(len(positives))) and training
    assert not {p for i in dev for p in positives[i]} & {p for i in training for p in positives[i]}
    assert (training, dev) == hold_out(positives, fraction, seed)


def test_the_share_is_met_when_rows_do_not_share_positives():
    positives = [[f"p{i}"] for i in range(100)]
    training, dev = hold_out(positives, 0.2, seed=3)
    assert len(dev) == 20 and len(training) == 80
    assert hold_out(positives, 0.2, seed=4)[1] != dev
