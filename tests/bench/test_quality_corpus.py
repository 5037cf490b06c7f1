"""bench/quality.py keeps one results folder to one build of its corpus: the Debian corpus is built from the
package lists of the day, so a rebuild can draw other test queries and its figures are not comparable."""

from __future__ import annotations

import pytest

from tests.bench import bench_script


def test_a_results_folder_refuses_figures_from_another_build_of_the_corpus(tmp_path):
    module = bench_script("quality")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("train.jsonl", "corpus.jsonl", "source.jsonl"):
        (corpus / name).write_text('{"text": "a"}\n')
    results_path = tmp_path / "quality" / "results.json"
    digest = module.corpus_digest(corpus)
    assert len(digest) == 16 and digest == module.corpus_digest(corpus)

    results = {"base": {}}  # a folder from before the digest was recorded takes the current one
    module.check_corpus(results, digest, results_path)
    assert results["corpus_digest"] == digest
    module.check_corpus(results, digest, results_path)  # the same build: nothing to say

    (corpus / "source.jsonl").write_text('{"text": "a", "source": "b"}\n')
    rebuilt = module.corpus_digest(corpus)
    assert rebuilt != digest
    with pytest.raises(SystemExit, match=rf"quality/results.json: its figures were measured on another build of the "
                                         rf"corpus \(digest {digest}, now {rebuilt}\); move .*quality aside or pass "
                                         r"another --dir$"):
        module.check_corpus(results, rebuilt, results_path)
    assert results["corpus_digest"] == digest


def test_a_results_folder_refuses_to_mix_figures_of_the_benchs_own_loop_with_the_probes_training(tmp_path):
    module = bench_script("quality")
    results_path = tmp_path / "quality" / "results.json"
    fresh: dict = {}
    module.check_training(fresh, results_path)
    assert fresh == {"training": "prep.evaluation"}
    module.check_training(fresh, results_path)  # the same way: nothing to say
    older = {"base": {"strict": {}}, "a": {"runs": {"0": {}}}}  # figures from before the record
    with pytest.raises(SystemExit, match=r"quality/results.json: its figures were trained and evaluated by the "
                                         r"bench's own loop, not by prep.evaluation as now; move .*quality aside "
                                         r"or pass another --dir$"):
        module.check_training(older, results_path)
