"""The run's plots are drawn from whatever a run found, warning-free: no negatives, one value, nothing at all."""

from __future__ import annotations

import warnings

import pytest

from prep.report.plots import similarity_histogram

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("positives, negatives", [
    ([0.8, 0.9], []),  # miner.negative_number=0: a numpy RuntimeWarning (a density of nothing) before
    ([0.5], [0.5]),  # every value the same: bins of no width
    ([], []),
])
def test_the_similarity_histogram_of_an_edge_case_is_drawn_without_a_warning(tmp_path, positives, negatives):
    path = tmp_path / "similarity.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        similarity_histogram(path, positives, negatives, "edge")
    assert path.read_bytes()[:8] == PNG_SIGNATURE
