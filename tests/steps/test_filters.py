"""Positive-aware filters, ``sampling_strategy`` and teacher denoising in the mine step, end to end."""

import numpy as np
import pytest

from prep.io import paths
from prep.io.jsonl import read_jsonl
from prep.models import embedder as embed
from prep.steps import mine
from tests.conftest import compose_config, write_jsonl

WINDOW = ["miner.range_for_sampling=2-30", "hardware.use_bf16=false"]
# The teacher in batches (its scores then move in the 7th digit with their batch): these tests compare within a
# run, or with a tolerance; tests/steps/test_kill.py and tests/cache/ hold the batch-invariant scores to bytes.
BATCHED = "reranker.batch_invariant=false"
# Every qualifying candidate becomes a negative, in rank order: the output lists what the filters kept.
ALL_QUALIFYING = ["miner.sampling_strategy=top", "miner.negative_number=28", "miner.fill_random=false"]


@pytest.fixture(scope="module")
def two_positive_rows(tmp_path_factory):
    """The bundled sample, with every third row given a second positive (the next row's)."""
    rows = read_jsonl(paths.SAMPLE_TRAIN)
    for index in range(0, len(rows) - 1, 3):
        rows[index] = {**rows[index], "pos": [*rows[index]["pos"], rows[index + 1]["pos"][0]]}
    return write_jsonl(tmp_path_factory.mktemp("rows") / "train.jsonl", rows)


@pytest.fixture(scope="module")
def similarity_of():
    """Similarities from the bundled MiniLM in fp32; each text is encoded once and remembered."""
    cfg = compose_config(["hardware.use_bf16=false"])
    embedder = embed.load_embedder(cfg.miner, cfg.hardware)
    known: dict[tuple[str, str], np.ndarray] = {}

    def encode(side: str, texts: list[str]) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if (side, t) not in known]
        if new:
            function = embed.encode_queries if side == "queries" else embed.encode_passages
            known.update(((side, t), v) for t, v in zip(new, function(embedder, cfg.miner, cfg.hardware, new)))
        return np.stack([known[(side, t)] for t in texts])

    def similarity(query: str, passages: list[str]) -> np.ndarray:
        return encode("passages", passages) @ encode("queries", [query])[0]

    pool = [r["text"] for r in read_jsonl(paths.SAMPLE_POOL)]
    rows = read_jsonl(paths.SAMPLE_TRAIN)
    encode("passages", pool + [p for r in rows for p in r["pos"]])
    encode("queries", [r["query"] for r in rows])
    return similarity


def test_relative_margin_uses_the_lowest_positive(make_config, two_positive_rows, similarity_of, tmp_path):
    summary = mine.run(make_config(f"input={two_positive_rows}", *WINDOW, *ALL_QUALIFYING,
                                   "miner.relative_margin=0.1", f"output={tmp_path / 'out.jsonl'}"))
    mined = read_jsonl(summary["output"])
    assert summary["candidates"]["removed"]["relative_margin"] > 0
    between = 0  # negatives under 0.9 x the higher positive but over 0.9 x the lower one: there must be none
    for row in mined:
        positives = similarity_of(row["query"], row["pos"])
        if row["neg"]:
            negatives = similarity_of(row["query"], row["neg"])
            assert negatives.max() <= 0.9 * positives.min() + 1e-5
            between += int(((negatives > 0.9 * positives.min() + 1e-5) & (negatives <= 0.9 * positives.max())).sum())
    assert between == 0
    counts = summary["candidates"]
    assert counts["in_window"] == sum(counts["removed"].values()) + counts["qualifying"]
    assert counts["qualifying"] == sum(len(r["neg"]) for r in mined)


def test_absolute_margin_and_similarity_window_counts(make_config, similarity_of, tmp_path):
    summary = mine.run(make_config(*WINDOW, *ALL_QUALIFYING, "miner.absolute_margin=0.1",
                                   "miner.similarity_range=[0.1,1.0]"))
    removed = summary["candidates"]["removed"]
    assert removed["absolute_margin"] > 0 and removed["similarity_range"] > 0
    assert removed["relative_margin"] == removed["teacher"] == 0
    for row in read_jsonl(summary["output"])[:40]:
        if row["neg"]:
            negatives = similarity_of(row["query"], row["neg"])
            assert negatives.max() <= similarity_of(row["query"], row["pos"]).min() - 0.1 + 1e-5
            assert negatives.min() >= 0.1 - 1e-5


def test_top_takes_the_highest_similarities(make_config, tmp_path):
    top = mine.run(make_config(*WINDOW, "miner.sampling_strategy=top", "miner.negative_number=3",
                               f"output={tmp_path / 'top.jsonl'}"))
    every = mine.run(make_config(*WINDOW, *ALL_QUALIFYING, f"output={tmp_path / 'all.jsonl'}"))
    for row_top, row_all in zip(read_jsonl(top["output"]), read_jsonl(every["output"])):
        assert row_top["neg"] == row_all["neg"][:3]
    assert top["negative_rank"]["p50"] < 6


def test_teacher_denoising_drops_what_the_teacher_scores_above_the_positive(make_config, tiny_cross_encoder,
                                                                          tmp_path):
    from FlagEmbedding import FlagAutoReranker

    teacher = [f"reranker.model_name_or_path={tiny_cross_encoder}", "reranker=cross_encoder",
               "reranker.model_class=encoder-only-base", BATCHED]
    before = mine.run(make_config(*WINDOW, *ALL_QUALIFYING, f"output={tmp_path / 'before.jsonl'}"))
    after = mine.run(make_config(*WINDOW, *ALL_QUALIFYING, *teacher, "miner.teacher_filter=true",
                                 "miner.teacher_absolute_margin=0.0", f"output={tmp_path / 'after.jsonl'}"))
    reference = FlagAutoReranker.from_finetuned(str(tiny_cross_encoder), model_class="encoder-only-base",
                                                use_fp16=False, devices="cpu", batch_size=64)
    rows_before = read_jsonl(before["output"])
    pairs = [[row["query"], p] for row in rows_before for p in row["pos"] + row["neg"]]
    all_scores = np.asarray(reference.compute_score(pairs))
    expected_removed, offset = 0, 0
    for row_before, row_after in zip(rows_before, read_jsonl(after["output"])):
        count = len(row_before["pos"]) + len(row_before["neg"])
        scores, offset = all_scores[offset:offset + count], offset + count
        positive = scores[: len(row_before["pos"])].min()
        negatives = scores[len(row_before["pos"]):]
        # kept: the candidates at or under the positive's teacher score, in the same order
        assert row_after["neg"] == [p for p, s in zip(row_before["neg"], negatives) if s <= positive + 1e-5]
        expected_removed += int((negatives > positive + 1e-5).sum())
    assert after["candidates"]["removed"]["teacher"] == expected_removed > 0
    info = after["teacher_filter"]
    assert info["pairs_scored"] == info["pairs"] > 0
    # a second run reads every teacher score from the cache and gives the same file
    again = mine.run(make_config(*WINDOW, *ALL_QUALIFYING, *teacher, "miner.teacher_filter=true",
                                 "miner.teacher_absolute_margin=0.0", f"output={tmp_path / 'again.jsonl'}"))
    assert again["teacher_filter"]["pairs_scored"] == 0
    assert (tmp_path / "again.jsonl").read_bytes() == (tmp_path / "after.jsonl").read_bytes()


@pytest.mark.slow
def test_top_with_the_teacher_scores_only_what_it_needs(make_config, tiny_cross_encoder, tmp_path):
    teacher = ["reranker=cross_encoder", f"reranker.model_name_or_path={tiny_cross_encoder}",
               "miner.teacher_filter=true", BATCHED]
    every = mine.run(make_config(*WINDOW, *ALL_QUALIFYING, *teacher, f"output={tmp_path / 'all.jsonl'}",
                                 f"cache_dir={tmp_path / 'cache-all'}"))
    three = mine.run(make_config(*WINDOW, "miner.sampling_strategy=top", "miner.negative_number=3",
                                 "miner.fill_random=false", *teacher, f"output={tmp_path / 'three.jsonl'}",
                                 f"cache_dir={tmp_path / 'cache-three'}"))
    for row_all, row_three in zip(read_jsonl(every["output"]), read_jsonl(three["output"])):
        assert row_three["neg"] == row_all["neg"][:3]
    assert three["teacher_filter"]["pairs_scored"] < every["teacher_filter"]["pairs_scored"] / 2
    counts = three["candidates"]
    assert counts["not_needed"] > 0
    assert counts["in_window"] == every["candidates"]["in_window"]
    assert counts["in_window"] == sum(counts["removed"].values()) + counts["qualifying"] + counts["not_needed"]


@pytest.mark.slow
def test_denoised_rows_stay_full(make_config, tiny_cross_encoder):
    summary = mine.run(make_config(*WINDOW, "miner.negative_number=8", "reranker=cross_encoder",
                                   f"reranker.model_name_or_path={tiny_cross_encoder}", "miner.teacher_filter=true",
                                   BATCHED))
    assert summary["candidates"]["removed"]["teacher"] > 0
    assert summary["negatives"]["min"] == 8 and summary["negatives"]["rows_short"] == 0


def test_missing_teacher_fails_before_any_encoding(make_config, tmp_path):
    from prep.errors import UsageError

    with pytest.raises(UsageError, match="reranker.model_name_or_path"):
        mine.run(make_config("miner.teacher_filter=true", "reranker=cross_encoder",
                             f"reranker.model_name_or_path={tmp_path / 'no-such-model'}"))
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("override, key", [("miner.relative_margin=1.5", "relative_margin"),
                                           ("miner.teacher_absolute_margin=-1", "teacher_absolute_margin")])
def test_bad_filter_settings_fail_before_any_work(make_config, override, key):
    from prep.errors import UsageError

    with pytest.raises(UsageError, match=key):
        mine.run(make_config(override))
