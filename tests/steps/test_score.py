"""The score step on tiny random rerankers that the tests build, against FlagEmbedding's own scores."""

import json

import numpy as np
import pytest

from prep import contract
from prep.errors import DataError, UsageError
from prep.io import paths
from prep.io.jsonl import read_jsonl
from prep.steps import score
from tests.conftest import run_cli, write_jsonl

ROWS = [
    {"query": "how do bees make honey", "pos": ["Bees turn nectar into honey."],
     "neg": ["Wasps build paper nests.", "Honey never spoils.", "Bees turn nectar into honey, slowly."],
     "prompt": "p1", "type": "normal"},
    {"query": "what is compound interest", "pos": ["Interest on interest.", "Growth on growth."],
     "neg": ["Wasps build paper nests.", "A bond pays a coupon."], "extra": [1, 2]},
    {"query": "how do bees make honey", "pos": ["Bees turn nectar into honey."],
     "neg": ["Honey never spoils.", "Flowers make nectar."]},
]


def _reference_scores(folder, model_class, rows, normalize=False):
    from FlagEmbedding import FlagAutoReranker

    model = FlagAutoReranker.from_finetuned(str(folder), model_class=model_class, use_fp16=False, devices="cpu",
                                            trust_remote_code=False, normalize=normalize, batch_size=8)
    out = []
    for row in rows:
        pairs = [[row["query"], p] for p in row["pos"] + row["neg"]]
        values = np.atleast_1d(np.asarray(model.compute_score(pairs), dtype=np.float64)).tolist()
        out.append((values[: len(row["pos"])], values[len(row["pos"]):]))
    return out


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_scores_equal_flagembedding_aligned_with_pos_and_neg(make_config, tmp_path, kind, request):
    folder = request.getfixturevalue("tiny_cross_encoder" if kind == "encoder" else "tiny_decoder_reranker")
    model_class = "encoder-only-base" if kind == "encoder" else "decoder-only-base"
    data = write_jsonl(tmp_path / "mined.jsonl", ROWS)
    summary = score.run(make_config("step=score", f"input={data}", "reranker=cross_encoder",
                                    f"reranker.model_name_or_path={folder}", f"reranker.model_class={model_class}",
                                    "hardware.use_bf16=false"))
    scored = read_jsonl(summary["output"])
    reference = _reference_scores(folder, model_class, ROWS)
    for row, original, (pos_ref, neg_ref) in zip(scored, ROWS, reference):
        assert {k: v for k, v in row.items() if not k.endswith("_scores")} == original
        assert len(row["pos_scores"]) == len(original["pos"]) and len(row["neg_scores"]) == len(original["neg"])
        np.testing.assert_allclose(row["pos_scores"], pos_ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(row["neg_scores"], neg_ref, rtol=1e-4, atol=1e-5)
    assert summary["pairs"] == 4 + 4 + 3
    assert summary["pairs_distinct"] == 9  # rows 1 and 3 share two pairs
    assert summary["pairs_scored"] == 9


def test_cache_second_run_scores_nothing_and_changed_negatives_only(make_config, tmp_path, tiny_cross_encoder):
    common = ["step=score", "reranker=cross_encoder", f"reranker.model_name_or_path={tiny_cross_encoder}"]
    first = score.run(make_config(*common, f"input={write_jsonl(tmp_path / 'a.jsonl', ROWS)}",
                                  f"output={tmp_path / 'a_out.jsonl'}"))
    again = score.run(make_config(*common, f"input={tmp_path / 'a.jsonl'}", f"output={tmp_path / 'b_out.jsonl'}"))
    assert first["pairs_scored"] == 9 and again["pairs_scored"] == 0 and again["pairs_cached"] == 9
    assert (tmp_path / "a_out.jsonl").read_bytes() == (tmp_path / "b_out.jsonl").read_bytes()

    changed = json.loads(json.dumps(ROWS))
    changed[0]["neg"][0] = "A brand new negative."
    changed[1]["neg"][1] = "Another new negative."
    third = score.run(make_config(*common, f"input={write_jsonl(tmp_path / 'c.jsonl', changed)}",
                                  f"output={tmp_path / 'c_out.jsonl'}"))
    assert third["pairs_scored"] == 2 and third["pairs_cached"] == 7

    # Another setting of the same model never gets these scores.
    normalized = score.run(make_config(*common, "reranker.normalize=true", f"input={tmp_path / 'a.jsonl'}",
                                       f"output={tmp_path / 'n_out.jsonl'}"))
    assert normalized["pairs_scored"] == 9
    values = [s for r in read_jsonl(tmp_path / "n_out.jsonl") for s in r["pos_scores"] + r["neg_scores"]]
    assert all(0 < v < 1 for v in values)


def test_offline_default_scores_with_the_bundled_embedder(make_config, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="prep.models.teacher"):
        summary = score.run(make_config("step=score", f"input={paths.SAMPLE_MINED}", "cache=false"))
    assert "stronger teacher" in caplog.text
    assert contract.summary_mismatches(summary) == []
    scored = read_jsonl(summary["output"])
    assert len(scored) == len(read_jsonl(paths.SAMPLE_MINED))
    for row in scored:
        assert all(-1.0001 <= s <= 1.0001 for s in row["pos_scores"] + row["neg_scores"])
    assert summary["scores"]["positive"]["mean"] > summary["scores"]["negative"]["mean"]


@pytest.mark.parametrize("row, field, message", [
    ({"query": "q", "pos": ["p"]}, "neg", "is missing"),
    ({"query": "q", "pos": ["p"], "neg": "n"}, "neg", "got a string"),
    ({"query": "q", "pos": ["p"], "neg": ["n"], "neg_scores": [0.1, 0.2]}, "neg_scores", "has 2 scores for 1"),
    ({"query": "q", "pos": ["p"], "neg": ["n"], "pos_scores": "high"}, "pos_scores", "list of numbers"),
])
def test_bad_rows(make_config, tmp_path, tiny_cross_encoder, row, field, message):
    data = write_jsonl(tmp_path / "mined.jsonl", [ROWS[0], row])
    out = tmp_path / "scored.jsonl"
    with pytest.raises(DataError) as caught:
        score.run(make_config("step=score", f"input={data}", f"output={out}", "reranker=cross_encoder",
                              f"reranker.model_name_or_path={tiny_cross_encoder}"))
    assert str(caught.value).startswith(f"{data}:2: field '{field}'") and message in str(caught.value)
    assert not out.exists()


def test_an_n_tuple_output_refuses_a_row_without_negatives_before_scoring(make_config, tmp_path, tiny_cross_encoder):
    data = write_jsonl(tmp_path / "mined.jsonl", [ROWS[0], {"query": "q", "pos": ["p"], "neg": []}])
    out = tmp_path / "scored.jsonl"
    with pytest.raises(DataError) as caught:
        score.run(make_config("step=score", f"input={data}", f"output={out}", "output_format=n-tuple",
                              "reranker=cross_encoder", f"reranker.model_name_or_path={tiny_cross_encoder}",
                              f"cache_dir={tmp_path / 'c'}"))
    assert str(caught.value).startswith(f"{data}:2: field 'neg': is empty or missing: output_format=n-tuple writes "
                                        "the fewest negatives any row has")
    assert not out.exists() and not (tmp_path / "c").exists()


def test_missing_reranker_fails_before_reading_data(make_config, tmp_path):
    missing_data = tmp_path / "not-there.jsonl"  # never read: the model check comes first
    with pytest.raises(UsageError, match="no such folder"):
        score.run(make_config("step=score", f"input={missing_data}", "reranker=cross_encoder",
                              f"reranker.model_name_or_path={tmp_path / 'no-model'}"))


def test_hub_name_offline_says_how_to_run_offline(tmp_path):
    data = write_jsonl(tmp_path / "mined.jsonl", ROWS)
    result = run_cli("step=score", f"input={data}", "reranker=bge_reranker_base", cwd=tmp_path,
                     env_extra={"HF_HOME": str(tmp_path / "hf")}, timeout=120)
    assert result.returncode == 2
    text = result.stdout + result.stderr
    assert "BAAI/bge-reranker-base" in text and "offline" in text and "reranker=embedder" in text
    assert not list(tmp_path.rglob("scored.jsonl"))


@pytest.mark.parametrize("bf16", ["false", "true"])
@pytest.mark.parametrize("teacher", ["embedder", "cross_encoder"])
def test_scores_do_not_depend_on_what_the_cache_held(make_config, tmp_path, tiny_cross_encoder, teacher, bf16):
    """In length-sorted batches a score moves with its neighbours in the last digits; in exact passes (the
    default) a file scores to the same bytes whether the cache was cold, held some of its pairs, or is off, in
    fp32 and in bf16."""
    rows = paths.SAMPLE_MINED.read_text(encoding="utf-8").splitlines()[:20]
    whole, part = tmp_path / "all.jsonl", tmp_path / "two.jsonl"
    whole.write_text("\n".join(rows) + "\n", encoding="utf-8")
    part.write_text("\n".join(rows[5:7]) + "\n", encoding="utf-8")
    chosen = ["reranker=cross_encoder", f"reranker.model_name_or_path={tiny_cross_encoder}"] \
        if teacher == "cross_encoder" else []

    def scored(name, data, *extra):
        summary = score.run(make_config("step=score", f"input={data}", f"output={tmp_path / name}",
                                        f"hardware.use_bf16={bf16}", f"run_dir={tmp_path / ('run-' + name)}",
                                        *chosen, *extra))
        assert summary["reproducible"]["across_batches"] is True
        return (tmp_path / name).read_bytes()

    cold = scored("cold.jsonl", whole, f"cache_dir={tmp_path / 'cold'}")
    scored("part.jsonl", part)
    after_part = scored("after.jsonl", whole)
    uncached = scored("off.jsonl", whole, "cache=false")
    assert cold == after_part == uncached


@pytest.mark.parametrize("bf16", ["false", "true"])
def test_a_pairs_score_depends_on_the_pair_alone(tiny_cross_encoder, bf16, monkeypatch):
    """Pairs of mixed lengths scored all together and one by one: the same float bytes, in fp32 and bf16; in
    length-sorted batches (reranker.batch_invariant=false) they differ, so the comparison can tell."""
    from FlagEmbedding import FlagAutoReranker

    from prep.models import teacher
    from tests.conftest import compose_config

    rows = read_jsonl(paths.SAMPLE_MINED)[:6]
    pairs = [[row["query"], passage] for row in rows for passage in (*row["pos"], *row["neg"])]
    hardware = compose_config([f"hardware.use_bf16={bf16}"]).hardware
    reranker = FlagAutoReranker.from_finetuned(str(tiny_cross_encoder), model_class="encoder-only-base",
                                               use_fp16=False, devices="cpu", batch_size=16)

    def scored(exact):
        together = teacher.score_encoder_only(reranker, pairs, hardware, exact)
        alone = [s for pair in pairs for s in teacher.score_encoder_only(reranker, [pair], hardware, exact)]
        return np.asarray(together).tobytes(), np.asarray(alone).tobytes()

    together, alone = scored(True)
    assert together == alone
    together, alone = scored(False)
    assert together != alone
