"""step=mine by shards of rows, and step=merge: the joined parts are the single run's output, byte for byte."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prep import contract
from prep.errors import OutputExistsError, UsageError
from prep.io.jsonl import read_jsonl
from prep.io.paths import SAMPLE_POOL, SAMPLE_TRAIN
from prep.io.rowstore import SourceRows
from prep.steps import merge, mine
from prep.steps.mine import query_blocks, row_block
from tests.conftest import compose_config, write_jsonl

# Every rule that reads other rows or draws random numbers: cross-row exclusion with near duplicates (claims by
# rows of other shards), kept input negatives, a narrow window (random fills, seeded per row), rejected rows.
TRICKY = ["miner.exclude_other_positives=true", "miner.other_positive_threshold=0.9", "miner.keep_input_negatives=true",
          "miner.range_for_sampling=2-30", "miner.similarity_range=[0.3,0.6]", "miner.negative_number=6",
          "miner.max_positive_rank=2", "seed=5", "hardware.use_bf16=false"]


def test_blocks_are_contiguous_and_as_even_as_can_be():
    assert [row_block(10, i, 3) for i in range(3)] == [range(0, 4), range(4, 7), range(7, 10)]
    assert [row_block(2, i, 3) for i in range(3)] == [range(0, 1), range(1, 2), range(2, 2)]


@given(rows=st.integers(0, 300), count=st.integers(1, 40))
def test_blocks_in_shard_order_are_the_rows_in_order(rows, count):
    blocks = [row_block(rows, index, count) for index in range(count)]
    assert [i for block in blocks for i in block] == list(range(rows))
    assert max(map(len, blocks)) - min(map(len, blocks)) <= 1


def training_file(folder: Path, rows: int | None = None) -> Path:
    """The sample (its first ``rows``), every third row with a negative of its own (for keep_input_negatives)."""
    pool = [row["text"] for row in read_jsonl(SAMPLE_POOL)]
    rows = [{**row, "neg": [pool[(7 * index) % len(pool)]]} if index % 3 == 0 else row
            for index, row in enumerate(read_jsonl(SAMPLE_TRAIN)[:rows])]
    return write_jsonl(folder / "train.jsonl", rows)


@pytest.fixture(scope="module")
def single_and_parts(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shards")
    data = f"input={training_file(tmp)}"
    single = mine.run(compose_config([f"run_dir={tmp / 'single'}", f"cache_dir={tmp / 'cache'}", data, *TRICKY]))
    parts = [mine.run(compose_config([f"run_dir={tmp / 'sweep' / str(index)}", f"cache_dir={tmp / 'cache'}", data,
                                      f"shard.index={index}", "shard.count=3", *TRICKY]))
             for index in range(3)]
    return tmp, single, parts


def _merge(folder: Path, tmp_path: Path, *overrides: str) -> dict:
    return merge.run(compose_config(["step=merge", f"input={folder}", f"output={tmp_path / 'all.jsonl'}",
                                     f"run_dir={tmp_path / 'merge'}", *overrides]))


def _damaged(data: bytes, how: str) -> bytes:
    lines = data.splitlines(keepends=True)
    return {"truncated": data[:-7], "appended": data + bytes(range(256)) * 4,
            "a line deleted": b"".join(lines[1:])}[how]


@pytest.mark.parametrize("how", ["truncated", "appended", "a line deleted"])
@pytest.mark.parametrize("which", ["mined.jsonl", "mined.rejected.jsonl"])
def test_a_part_changed_since_its_shard_wrote_it_is_refused(single_and_parts, tmp_path, how, which):
    """Issue 32, defects 7 and 8: each shard's summary holds its part's digest; merge reads the parts in the folder
    it is given (a copy), checks them, and writes nothing when one differs."""
    import shutil

    tmp, _, _ = single_and_parts
    copy = tmp_path / "copy"
    shutil.copytree(tmp / "sweep", copy)
    job = max(("0", "1", "2"), key=lambda name: (copy / name / which).stat().st_size)  # one with rows in it
    part = copy / job / which
    part.write_bytes(_damaged(part.read_bytes(), how))
    with pytest.raises(UsageError, match=f"{part} is not what shard {job} wrote"):
        _merge(copy, tmp_path)
    assert not (tmp_path / "all.jsonl").exists() and not (tmp_path / "all.rejected.jsonl").exists()


def test_a_copied_sweep_folder_merges_its_own_parts(single_and_parts, tmp_path):
    import shutil

    tmp, single, _ = single_and_parts
    copy = tmp_path / "copy"
    shutil.copytree(tmp / "sweep", copy)
    summary = _merge(copy, tmp_path)
    # the copy's parts were joined, not the files its summaries name (the originals, still there)
    assert [Path(part["output"]).parent.parent for part in summary["parts"]] == [copy] * 3
    assert summary["rejected"] == str(tmp_path / "all.rejected.jsonl")
    assert (tmp_path / "all.jsonl").read_bytes() == open(single["output"], "rb").read()


def test_an_output_that_is_a_part_is_refused(single_and_parts, tmp_path):
    import shutil

    tmp, _, _ = single_and_parts
    copy = tmp_path / "copy"
    shutil.copytree(tmp / "sweep", copy)
    before = (copy / "0" / "mined.jsonl").read_bytes()
    with pytest.raises(UsageError, match="that is one of the parts being merged"):
        merge.run(compose_config(["step=merge", f"input={copy}", f"output={copy / '0' / 'mined.jsonl'}",
                                  "overwrite=true", f"run_dir={tmp_path / 'merge'}"]))
    assert (copy / "0" / "mined.jsonl").read_bytes() == before


def test_merged_parts_are_the_single_run_byte_for_byte(single_and_parts, tmp_path):
    tmp, single, parts = single_and_parts
    assert [part["shard"]["first_row"] for part in parts] == [0, 57, 114]  # 170 rows: 57, 57, 56
    assert sum(part["rows"] for part in parts) == single["rows"] == 170
    # The rules that reach across rows did act, in the single run and in the parts alike.
    assert single["candidates"]["removed"]["other_positive"] > 0 and single["negatives"]["filled_random"] > 0
    assert single["rows_rejected"] > 0 and single["input_negatives_kept"] > 0
    assert sum(p["candidates"]["removed"]["other_positive"] for p in parts) == \
        single["candidates"]["removed"]["other_positive"]
    summary = merge.run(compose_config(["step=merge", f"input={tmp / 'sweep'}", f"output={tmp_path / 'all.jsonl'}",
                                        f"run_dir={tmp_path / 'merge'}"]))
    assert (tmp_path / "all.jsonl").read_bytes() == open(single["output"], "rb").read()
    assert (tmp_path / "all.rejected.jsonl").read_bytes() == open(single["rejected"], "rb").read()
    assert summary["rows"] == 170 and summary["rows_out"] == 170 - single["rows_rejected"]
    assert [p["shard"] for p in summary["parts"]] == [0, 1, 2]
    # every summary holds its step's record of prep/contract.py, key for key, the shards' with rejected digests too
    assert all("rejected_digest" in part["shard"] for part in parts)
    assert [contract.summary_mismatches(s) for s in (single, *parts, summary)] == [[]] * 5


def test_a_finished_shard_is_skipped_on_a_rerun_and_other_settings_are_not(single_and_parts, caplog):
    tmp, _, parts = single_and_parts
    caplog.set_level(logging.INFO, logger="prep.steps.mine")
    output = tmp / "sweep" / "1" / "mined.jsonl"
    before = output.stat().st_mtime_ns
    data = f"input={tmp / 'train.jsonl'}"
    again = mine.run(compose_config([f"run_dir={tmp / 'sweep' / '1'}", f"cache_dir={tmp / 'cache'}", data,
                                     "shard.index=1", "shard.count=3", *TRICKY]))
    assert again == parts[1] and output.stat().st_mtime_ns == before
    assert "shard 1 of 3 already mined with these settings" in caplog.text
    with pytest.raises(OutputExistsError, match="mined.jsonl: output exists"):
        mine.run(compose_config([f"run_dir={tmp / 'sweep' / '1'}", f"cache_dir={tmp / 'cache'}", data,
                                 "shard.index=1", "shard.count=3", *TRICKY, "miner.negative_number=5"]))


def test_merge_names_a_missing_shard_and_a_part_mined_otherwise(single_and_parts, tmp_path):
    tmp, _, _ = single_and_parts
    sweep = tmp_path / "sweep"
    for index in (0, 2):
        job = sweep / str(index)
        job.mkdir(parents=True)
        (job / "summary.json").write_bytes((tmp / "sweep" / str(index) / "summary.json").read_bytes())
    with pytest.raises(UsageError, match=r"shard 1 of 3 is missing \(1 missing in all\): rerun the multirun"):
        merge.run(compose_config(["step=merge", f"input={sweep}", f"run_dir={tmp_path / 'm1'}"]))
    odd = json.loads((tmp / "sweep" / "1" / "summary.json").read_text())
    odd["config"]["miner"]["negative_number"] = 9
    (sweep / "1").mkdir()
    (sweep / "1" / "summary.json").write_text(json.dumps(odd))
    with pytest.raises(UsageError, match=r"1: mined with other settings than .*0: miner.negative_number=9 against 6"):
        merge.run(compose_config(["step=merge", f"input={sweep}", f"run_dir={tmp_path / 'm2'}"]))
    with pytest.raises(UsageError, match=r"no finished part of a sharded step=mine there"):
        merge.run(compose_config(["step=merge", f"input={tmp_path}", f"run_dir={tmp_path / 'm3'}"]))
    assert not list(tmp_path.glob("m*/merged.jsonl"))


def test_shards_are_refused_by_the_steps_that_do_not_take_them():
    from prep.config.settings import settings_of

    with pytest.raises(UsageError, match=r"^shard.count=2 with step=probe: shards split step=encode"):
        settings_of(compose_config(["step=probe", "shard.count=2"]))


def test_parquet_parts_join_into_the_single_runs_table(tmp_path):
    import pyarrow.parquet as pq

    extra = ["output_format=n-tuple"]
    single = mine.run(compose_config([f"run_dir={tmp_path / 'single'}", f"cache_dir={tmp_path / 'cache'}", *TRICKY,
                                      *extra, f"output={tmp_path / 'single.parquet'}"]))
    for index in range(2):
        mine.run(compose_config([f"run_dir={tmp_path / 'sweep' / str(index)}", f"cache_dir={tmp_path / 'cache'}",
                                 f"shard.index={index}", "shard.count=2", *TRICKY, *extra,
                                 f"output={tmp_path / 'sweep' / str(index) / 'part.parquet'}"]))
    merge.run(compose_config(["step=merge", f"input={tmp_path / 'sweep'}", f"run_dir={tmp_path / 'merge'}"]))
    merged = pq.read_table(tmp_path / "merge" / "merged.parquet")
    assert merged.equals(pq.read_table(single["output"])) and merged.num_rows > 100


@pytest.mark.slow
def test_a_sharded_multirun_on_joblib_resumes_and_merges_into_the_single_run(tmp_path):
    """Three shards on the joblib launcher; one part lost (as if its job was killed); the rerun with the same sweep
    folder mines only that shard; the merge equals a single run."""
    from tests.conftest import run_cli

    data = training_file(tmp_path)
    common = [f"input={data}", f"cache_dir={tmp_path / 'cache'}", *TRICKY]
    mine.run(compose_config([*common, f"run_dir={tmp_path / 'single'}"]))  # here: the launcher is what is tested
    sharded = ["-m", "step=mine", "shard.index=0,1,2", "shard.count=3", *common, "hydra/launcher=joblib",
               "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={tmp_path / 'parts'}"]
    first = run_cli(*sharded, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    outputs = [tmp_path / "parts" / str(index) / "mined.jsonl" for index in range(3)]
    written = [output.stat().st_mtime_ns for output in outputs]
    outputs[1].unlink()  # mined.rejected.jsonl stays, as a job killed between its two files would leave it
    (tmp_path / "parts" / "1" / "summary.json").unlink()
    again = run_cli(*sharded, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [outputs[0].stat().st_mtime_ns, outputs[2].stat().st_mtime_ns] == [written[0], written[2]]  # skipped
    assert outputs[1].is_file()
    merge.run(compose_config(["step=merge", f"input={tmp_path / 'parts'}", f"output={tmp_path / 'merged.jsonl'}",
                              f"run_dir={tmp_path / 'merge'}"]))
    assert (tmp_path / "merged.jsonl").read_bytes() == (tmp_path / "single" / "mined.jsonl").read_bytes()


# Summary entries that say how the run went, not what it mined.
RUN_FIGURES = ("seconds", "cache", "encoded", "peak_memory_gb", "config", "overrides", "output", "summary",
               "rejected")


@pytest.mark.parametrize("teacher", [False, True])
def test_any_query_block_gives_the_same_bytes_and_figures(tmp_path, teacher, monkeypatch):
    data = f"input={training_file(tmp_path, 60 if teacher else None)}"  # the teacher scores: fewer rows
    reads: list[range] = []  # the spans of rows read again from the input file (the rows are not held)
    original = SourceRows.rows
    monkeypatch.setattr(SourceRows, "rows", lambda store, span: reads.append(span) or original(store, span))
    extra = ["miner.teacher_filter=true", "miner.teacher_relative_margin=0.5",
             f"miner.candidate_pool={SAMPLE_POOL}"] if teacher else []
    runs = {block: mine.run(compose_config([f"run_dir={tmp_path / str(block)}", f"cache_dir={tmp_path / 'cache'}",
                                            data, *TRICKY, *extra, f"miner.query_block={block}"]))
            for block in (4096, 7)}  # 170 rows: one block, then 25 (the last of 2 rows)
    outputs = {block: open(summary["output"], "rb").read() for block, summary in runs.items()}
    assert outputs[7] == outputs[4096]
    rows = runs[7]["rows"]
    assert [span for span in reads if len(span) < rows] == query_blocks(range(rows), 7)  # the 7-row run's blocks
    assert open(runs[7]["rejected"], "rb").read() == open(runs[4096]["rejected"], "rb").read()
    # The block size is not part of the embeddings' cache key: the later runs encode no passage.
    assert runs[7]["encoded"]["passages"] == 0 and runs[7]["cache"]["misses"] > 0  # (its blocks' queries)
    figures = {block: {k: v for k, v in summary.items() if k not in RUN_FIGURES} for block, summary in runs.items()}
    for figure in figures.values():  # pairs scored now rather than read from the cache: how the run went
        figure["teacher_filter"] = figure["teacher_filter"] and {
            k: v for k, v in figure["teacher_filter"].items() if k != "pairs_scored"}
    assert figures[7] == figures[4096]
    if teacher:
        assert figures[7]["teacher_filter"]["pairs"] > 0 and figures[7]["candidates"]["removed"]["teacher"] > 0


DAMAGE = st.sampled_from(["flip", "insert", "truncate", "delete a line", "duplicate a line", "swap lines"])


def _damage(data: bytes, how: str, position: int, byte: int) -> bytes:
    """``data`` changed in one way at ``position`` (a fraction of its length, in ten-thousandths), never equal to it."""
    at = position * max(len(data) - 1, 0) // 10_000
    lines = data.splitlines(keepends=True)
    line = position * max(len(lines) - 1, 0) // 10_000
    if how == "flip":
        return data[:at] + bytes([data[at] ^ (byte or 1)]) + data[at + 1:]
    if how == "insert":
        return data[:at] + bytes([byte]) + data[at:]
    if how == "truncate":
        return data[:at]
    if how == "delete a line":
        return b"".join(lines[:line] + lines[line + 1:])
    if how == "duplicate a line":
        return b"".join(lines[:line + 1] + lines[line:])
    following = (line + 1) % len(lines)
    lines[line], lines[following] = lines[following], lines[line]
    return b"".join(lines)


@given(how=DAMAGE, job=st.sampled_from(["0", "1", "2"]), which=st.sampled_from(["mined.jsonl", "mined.rejected.jsonl"]),
       position=st.integers(0, 10_000), byte=st.integers(0, 255))
@settings(max_examples=40, deadline=None)
def test_a_part_damaged_anywhere_is_refused_never_merged(single_and_parts, how, job, which, position, byte):
    """Issue 32's suites: whatever one byte or line of a part becomes, merge refuses with one clear error and
    writes nothing; a damage that leaves the part's bytes as they were merges into the single run's output."""
    import shutil
    import tempfile

    from prep.errors import PrepError

    tmp, single, _ = single_and_parts
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "copy"
        shutil.copytree(tmp / "sweep", copy)
        part = copy / job / which
        original = part.read_bytes()
        if not original:
            return  # an empty part (no rejected row in this shard) has no byte to damage
        damaged = _damage(original, how, position, byte)
        part.write_bytes(damaged)
        if damaged == original:  # swapping two equal lines, say
            _merge(copy, Path(scratch))
            assert (Path(scratch) / "all.jsonl").read_bytes() == Path(single["output"]).read_bytes()
            return
        with pytest.raises(PrepError):
            _merge(copy, Path(scratch))
        assert not (Path(scratch) / "all.jsonl").exists() and not (Path(scratch) / "all.rejected.jsonl").exists()
