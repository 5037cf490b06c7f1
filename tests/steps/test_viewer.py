"""The rows a mine keeps for report.html's row viewer (issue 34, item 5): a seeded sample, true to the output."""

import json

from prep import contract
from prep.io.jsonl import read_jsonl
from prep.io.paths import SAMPLE_TRAIN
from prep.report.html import write_run_report
from prep.report.rows import sample_rows
from prep.steps import mine
from tests.conftest import write_jsonl


def test_the_sample_is_seeded_and_takes_every_row_of_a_short_span():
    assert sample_rows(range(10, 20), 20, seed=1) == frozenset(range(10, 20))
    drawn = sample_rows(range(100, 300), 5, seed=1)
    assert len(drawn) == 5 and drawn <= set(range(100, 300)) and drawn == sample_rows(range(100, 300), 5, seed=1)
    assert drawn != sample_rows(range(100, 300), 5, seed=2)


def test_viewed_rows_are_the_mined_rows_with_their_ranks_similarities_and_flags(make_config, tmp_path):
    rows = read_jsonl(SAMPLE_TRAIN)
    summary = mine.run(make_config("report.rows=6", "miner.negative_number=4", "miner.range_for_sampling=2-40",
                                   "sampling=top_k", f"output={tmp_path / 'mined.jsonl'}"))
    viewed = read_jsonl(tmp_path / "run" / contract.REPORT_ROWS)
    mined = read_jsonl(tmp_path / "mined.jsonl")
    assert len(viewed) == 6 and [v["row"] for v in viewed] == sorted(v["row"] for v in viewed)
    positives = {text: number for number, row in enumerate(rows) for text in row["pos"]}
    for record in viewed:
        number = record["row"]
        assert record["query"] == rows[number]["query"] and record["pos"] == rows[number]["pos"]
        assert [n["text"] for n in record["neg"]] == mined[number]["neg"]
        ranks = [n["rank"] for n in record["neg"]]
        assert ranks == sorted(ranks) and all(2 <= r < 40 for r in ranks)  # top-k of the window, in rank order
        similarities = [n["similarity"] for n in record["neg"]]
        assert similarities == sorted(similarities, reverse=True) and record["pos_similarity"][0] > similarities[0]
        for negative in record["neg"]:
            assert negative["source"] == "dense"
            assert negative["other_positive"] == (negative["text"] in positives)
    # The same seed, the same rows; the report shows them, and report.rows=0 keeps none.
    page = write_run_report(tmp_path / "run", summary).read_text()
    assert page.count("<details class=row") == 6 and "<script>" in page
    mine.run(make_config("report.rows=0", "run_dir=" + str(tmp_path / "none"), f"output={tmp_path / 'none.jsonl'}"))
    assert not (tmp_path / "none" / contract.REPORT_ROWS).exists()
    assert "<script>" not in write_run_report(tmp_path / "none").read_text()


def test_texts_are_escaped_and_a_scored_runs_teacher_column_is_filled(tmp_path):
    record = {"row": 3, "query": "q <b>", "pos": ["p & <i>"], "pos_similarity": [0.9],
              "neg": [{"text": "<script>alert(1)</script>", "rank": 4, "similarity": 0.5, "source": "bm25",
                       "other_positive": True, "near_duplicate": False},
                      {"text": "plain", "rank": None, "similarity": 0.1, "source": "random",
                       "other_positive": False, "near_duplicate": False}]}
    write_jsonl(tmp_path / contract.REPORT_ROWS, [record])
    scored = {"query": "q <b>", "pos": ["p & <i>"], "pos_scores": [2.5], "neg": ["<script>alert(1)</script>", "plain"],
              "neg_scores": [1.25, -3.0]}
    write_jsonl(tmp_path / contract.SCORED, [scored])
    (tmp_path / contract.SUMMARY).write_text(json.dumps({"step": "pipeline", "overrides": []}))
    page = write_run_report(tmp_path).read_text()
    assert "<b>q &lt;b&gt;</b>" in page and "p &amp; &lt;i&gt;" in page
    assert "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>" in page and "<script>alert(1)" not in page
    assert "<th>teacher</th>" in page and "<td>1.25</td>" in page and "<td>-3.0</td>" in page
    assert "<td class=flag>another row&#x27;s positive</td>" in page and "data-flagged=1" in page
    assert "http://" not in page and "https://" not in page


def test_a_score_run_shows_its_rows_with_their_teacher_scores(make_config, tmp_path):
    from prep.steps import score

    summary = score.run(make_config("step=score", "report.rows=4", f"output={tmp_path / 'scored.jsonl'}"))
    viewed = read_jsonl(tmp_path / "run" / contract.REPORT_ROWS)
    scored = read_jsonl(tmp_path / "scored.jsonl")
    assert len(viewed) == 4
    for record in viewed:
        row = scored[record["row"]]
        assert [(n["text"], n["teacher"]) for n in record["neg"]] == list(zip(row["neg"], row["neg_scores"]))
    page = write_run_report(tmp_path / "run", summary).read_text()
    assert page.count("<details class=row") == 4 and "<th>teacher</th>" in page
