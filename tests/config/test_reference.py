"""The configuration reference is made from the schema: every key there has a one-line meaning, and every key
appears in the reference once, with its type and default."""

from __future__ import annotations

import dataclasses
import re

from prep.config import reference, schema


def test_every_key_of_the_schema_has_a_meaning():
    assert reference.missing_meanings() == []


def test_a_key_without_a_comment_is_reported():
    source = "class ShardConfig:\n    index: int = 0  # this job's shard\n    count: int = 1\n"
    assert reference.missing_meanings(source)[:3] == ["step", "input", "input_split"]
    assert "shard.count" in reference.missing_meanings(source)
    assert "shard.index" not in reference.missing_meanings(source)


def test_a_meaning_is_the_comment_beside_a_key_else_the_lines_right_above_it():
    source = (
        "class A:\n"
        "    beside: int = 1  # the comment beside\n"
        "    # first line above\n"
        "    # second line above\n"
        "    above: str = 'x'\n"
        "    # a comment ended by a blank line\n"
        "\n"
        "    bare: bool = True\n"
        "    text: str = '# not a comment'\n"
        "    member = 'value'  # an enum member's meaning\n"
    )
    assert reference.key_meanings(source) == {
        ("A", "beside"): "the comment beside", ("A", "above"): "first line above second line above",
        ("A", "bare"): "", ("A", "text"): "", ("A", "member"): "an enum member's meaning"}


def test_types_and_defaults_read_as_a_user_types_them():
    assert reference.type_text("Strategy | None") == "`random`, `top` or null"
    assert reference.type_text("list[int] | None") == "`list[int]` or null"
    assert reference.type_text("Any") == "see the meaning"
    fields = {key.name: key for key in dataclasses.fields(schema.MinerConfig)}
    assert reference.default_text(fields["sampling_strategy"]) == "`random`"
    assert reference.default_text(fields["fill_random"]) == "`true`"
    assert reference.default_text(fields["relative_margin"]) == "null"
    assert reference.default_text(fields["model_name_or_path"]) == "from the group's option"
    splitter = {key.name: key for key in dataclasses.fields(schema.SplitterConfig)}
    assert reference.default_text(splitter["length_list"]) == "`[0, 500, 1000, 2000, 3000, 4000, 5000, 6000, 7000]`"


def test_an_options_meaning_is_its_files_opening_comment(tmp_path):
    (tmp_path / "sampling").mkdir()
    (tmp_path / "sampling" / "mine.yaml").write_text(
        "# @package miner\n# python run.py sampling=mine   (what it is,\n# on two lines)\n"
        "negative_number: 3\n# later\n")
    (tmp_path / "sampling" / "base_sampling.yaml").write_text("# the schema\n")
    assert reference.option_meanings("sampling", tmp_path) == {
        "base_sampling": "the schema", "mine": "python run.py sampling=mine   (what it is, on two lines)"}


def test_the_reference_has_every_key_once_and_every_option():
    text = reference.reference_markdown()
    rows = re.findall(r"^\| `([\w.]+)` \|", text, re.M)
    expected = [key.name for key in dataclasses.fields(schema.Config)
                if key.name not in reference.NESTED and key.name not in schema.GROUPS]
    for prefix, settings in {**reference.NESTED, **schema.GROUPS}.items():
        expected += [f"{prefix}.{key.name}" for key in dataclasses.fields(settings)]
    assert sorted(rows) == sorted(expected) and len(rows) == len(set(rows))
    assert "| `miner.negative_number` | `int` | `15` | negatives per row |" in text
    for group in schema.OPTION_GROUPS:
        assert f"## `{group}`" in text
    assert "- `sampling=topk_percpos`: python run.py step=mine sampling=topk_percpos" in text
    assert "base_miner" not in text
