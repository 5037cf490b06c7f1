"""Every length key defaults to the model's own (prep/models/lengths.py), and a length past the positions fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prep.errors import UsageError
from prep.io.jsonl import read_jsonl
from prep.io.paths import SAMPLE_TRAIN
from prep.models import lengths
from prep.steps import encode, mine, probe, score
from tests.conftest import run_cli, write_jsonl


def model_folder(folder: Path, **files: dict) -> str:
    folder.mkdir(parents=True)
    for name, content in files.items():
        (folder / f"{name}.json").write_text(json.dumps(content), encoding="utf-8")
    return str(folder)


BERT = {"model_type": "bert", "max_position_embeddings": 512}


@pytest.mark.parametrize("files, tokens, source, positions", [
    ({"sentence_bert_config": {"max_seq_length": 256}, "tokenizer_config": {"model_max_length": 512}, "config": BERT},
     256, "sentence_bert_config.json max_seq_length", 512),
    # a sentence-transformers model saved with no length: the tokenizer's, as sentence-transformers reads it
    ({"sentence_bert_config": {"max_seq_length": None}, "tokenizer_config": {"model_max_length": 384},
      "config": BERT}, 384, "tokenizer_config.json model_max_length", 512),
    # the tokenizer's "no limit" placeholder is not a length: FlagEmbedding's 512
    ({"tokenizer_config": {"model_max_length": 1e30}, "config": {"model_type": "mistral",
                                                                  "max_position_embeddings": 32768}},
     512, "default (FlagEmbedding's 512; the model states no length)", 32768),
    # a tokenizer claiming more than the positions hold is capped at them, as sentence-transformers caps it
    ({"tokenizer_config": {"model_max_length": 1024}, "config": BERT}, 512, "config.json max_position_embeddings", 512),
    # RoBERTa's positions start after the padding id: 514 embeddings hold 512 tokens
    ({"tokenizer_config": {}, "config": {"model_type": "xlm-roberta", "max_position_embeddings": 8194,
                                          "pad_token_id": 1}}, 512, "default (FlagEmbedding's 512; the model states no "
     "length)", 8192),
    ({"config": {"model_type": "bert", "max_position_embeddings": 128}}, 128, "config.json max_position_embeddings",
     128),
    ({"config": {"model_type": "roberta", "max_position_embeddings": 514, "pad_token_id": None}}, 512,
     "default (FlagEmbedding's 512; the model states no length)", 512),
    ({}, 512, "default (FlagEmbedding's 512; the model states no length)", None),
])
def test_the_models_own_length_is_read_as_sentence_transformers_reads_it(tmp_path, files, tokens, source, positions):
    found = lengths.model_lengths(model_folder(tmp_path / "model", **files))
    assert found == lengths.ModelLengths(lengths.Length(tokens, source), positions)


def test_an_explicit_length_wins_unless_the_positions_cannot_hold_it(tmp_path):
    model = model_folder(tmp_path / "model", sentence_bert_config={"max_seq_length": 256}, config=BERT)
    assert lengths.resolve(None, "miner.passage_max_length", model) == lengths.Length(
        256, "sentence_bert_config.json max_seq_length")
    assert lengths.resolve(512, "miner.passage_max_length", model) == lengths.Length(512, "miner.passage_max_length")
    with pytest.raises(UsageError, match=r"^miner.passage_max_length=1024 is more tokens than the model .* has "
                                         r"positions for \(512, config.json max_position_embeddings\); pass "
                                         r"miner.passage_max_length=512 or less, or leave it unset for the model's "
                                         r"own 256$"):
        lengths.resolve(1024, "miner.passage_max_length", model)


def test_a_hub_models_length_comes_from_the_hugging_face_cache(tmp_path, monkeypatch):
    """Offline, a hub name is read from the cache's snapshot; a file the cache lacks is one the model lacks."""
    snapshot = tmp_path / "hub" / "models--org--tiny" / "snapshots" / ("0" * 40)
    model_folder(snapshot, sentence_bert_config={"max_seq_length": 128}, config=BERT)
    (tmp_path / "hub" / "models--org--tiny" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--tiny" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    found = lengths.model_lengths("org/tiny", str(tmp_path / "hub"))
    assert found == lengths.ModelLengths(lengths.Length(128, "sentence_bert_config.json max_seq_length"), 512)


def test_mine_says_its_lengths_and_a_length_of_512_is_not_served_from_256s_cache(make_config, tmp_path):
    own = mine.run(make_config(f"output={tmp_path / 'own.jsonl'}"))
    assert own["lengths"] == {side: {"tokens": 256, "from": "sentence_bert_config.json max_seq_length"}
                              for side in ("query", "passage")}
    # the same numbers set explicitly are the same embeddings: all from the cache
    explicit = mine.run(make_config(f"output={tmp_path / 'explicit.jsonl'}", "miner.query_max_length=256",
                                    "miner.passage_max_length=256"))
    assert explicit["encoded"] == {"queries": 0, "passages": 0}
    assert explicit["lengths"]["passage"] == {"tokens": 256, "from": "miner.passage_max_length"}
    assert (tmp_path / "own.jsonl").read_bytes() == (tmp_path / "explicit.jsonl").read_bytes()
    flag = mine.run(make_config(f"output={tmp_path / 'flag.jsonl'}", "miner.passage_max_length=512"))
    assert flag["encoded"]["passages"] == 234


def test_a_length_past_the_positions_stops_the_command_line_before_any_work(tmp_path):
    result = run_cli("step=mine", "miner.passage_max_length=1024", f"run_dir={tmp_path / 'run'}",
                     f"cache_dir={tmp_path / 'cache'}", cwd=tmp_path)
    assert result.returncode == 2
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and "miner.passage_max_length=1024 is more tokens than the model" in errors[0]
    assert "(512, config.json max_position_embeddings)" in errors[0] and "own 256" in errors[0]
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run" / "mined.jsonl").exists()


def test_encode_score_and_probe_say_their_lengths(make_config, tmp_path):
    rows = write_jsonl(tmp_path / "train.jsonl", read_jsonl(SAMPLE_TRAIN)[:40])
    own = {"tokens": 256, "from": "sentence_bert_config.json max_seq_length"}
    encoded = encode.run(make_config("step=encode", f"input={rows}"))
    assert encoded["lengths"] == {"query": own, "passage": own}
    mined = mine.run(make_config(f"input={rows}", f"output={tmp_path / 'mined.jsonl'}", "miner.negative_number=3",
                                 "miner.range_for_sampling=2-20"))
    scored = score.run(make_config("step=score", f"input={mined['output']}", f"output={tmp_path / 's.jsonl'}"))
    assert scored["lengths"] == {"teacher": own, "teacher_query": own}
    scored = score.run(make_config("step=score", f"input={mined['output']}", f"output={tmp_path / 's.jsonl'}",
                                   "overwrite=true", "reranker.max_length=128"))
    assert scored["lengths"]["teacher"] == {"tokens": 128, "from": "reranker.max_length"}
    probed = probe.run(make_config("step=probe", f"input={rows}", "probe.steps=1", "probe.batch_size=4",
                                   "probe.negatives=1", "probe.dev_distractors=10", "miner.negative_number=2",
                                   "miner.range_for_sampling=2-20"))
    assert probed["lengths"] == {"student": own, "query": own, "passage": own}
