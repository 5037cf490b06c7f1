"""kill -9 at each phase of a mine run (encode, search, teacher, write), then the same command again: the
output is the uninterrupted run's, byte for byte, and the cache serves what the killed run finished."""

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT, compose_config, write_jsonl

# Runs a mine and kills its own process (SIGKILL, as kill -9) the Nth time a phase's function is called.
DRIVER = textwrap.dedent("""
    import importlib, os, signal, sys
    sys.path.insert(0, {root!r})
    from prep.config.schema import register
    register()
    from tests.conftest import compose_config
    from prep.steps import mine

    module, attribute, calls_before_kill = {target!r}
    owner = importlib.import_module(module)
    *parents, name = attribute.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    real, seen = getattr(owner, name), []

    def dying(*args, **kwargs):
        seen.append(1)
        if len(seen) > calls_before_kill:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)

    setattr(owner, name, dying)
    mine.run(compose_config({overrides!r}))
""")

PHASES = {
    "encode": ("prep.models.embedder", "encode_passages", 2),  # chunks 1 and 2 of 4 cached, then killed
    "search": ("prep.retrieval.search", "canonical_topk", 3),  # in the middle of the exact search
    "teacher": ("prep.cache.store", "ScoreEntries.add", 1),  # one chunk of scores stored, then killed
    "write": ("prep.io.formats", "dump_row", 60),  # 60 rows of 80 written to the temporary file
}
SETTINGS = ["encode_chunk=20", "miner.range_for_sampling=2-40", "miner.negative_number=6", "hardware.use_bf16=false",
            "miner.sampling_strategy=top", "miner.teacher_filter=true", "miner.teacher_absolute_margin=0.02",
            "miner.search_batch_size=16"]


ROWS = 80  # of the bundled sample: the write is killed after 60 of them


@pytest.fixture(scope="module")
def training(tmp_path_factory):
    from prep.io import paths
    from prep.io.jsonl import read_jsonl

    return write_jsonl(tmp_path_factory.mktemp("rows") / "train.jsonl", read_jsonl(paths.SAMPLE_TRAIN)[:ROWS])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, training):
    from prep.steps import mine

    folder = tmp_path_factory.mktemp("uninterrupted")
    mine.run(compose_config([*SETTINGS, f"input={training}", f"run_dir={folder}", f"cache_dir={folder / 'cache'}"]))
    return (folder / "mined.jsonl").read_bytes()


def killed_at(phase: str, overrides: list[str]) -> None:
    """Run the mine in a fresh process that kills itself (SIGKILL) at ``phase``; it leaves no output."""
    script = DRIVER.format(root=str(ROOT), target=PHASES[phase], overrides=overrides)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                            env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert killed.returncode == -9, killed.stderr[-2000:]


@pytest.mark.slow
def test_kill_9_while_encoding_then_the_same_command_reuses_the_stored_chunks(tmp_path, training, uninterrupted):
    overrides = [*SETTINGS, f"input={training}", f"run_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}"]
    killed_at("encode", overrides)
    assert not (tmp_path / "run" / "mined.jsonl").exists()
    from prep.steps import mine

    again = mine.run(compose_config(overrides))
    assert (tmp_path / "run" / "mined.jsonl").read_bytes() == uninterrupted
    # the two chunks stored before the kill are reused
    assert again["corpus_size"] == ROWS and again["encoded"]["passages"] == ROWS - 40
    json.loads((tmp_path / "run" / "summary.json").read_text())


@pytest.mark.slow
def test_kill_9_at_each_later_phase_in_turn_then_the_same_command_gives_the_uninterrupted_bytes(
        tmp_path, training, uninterrupted):
    """The same command killed in the search, then (the search run again) in the teacher's scoring, then in the
    write; the fourth run finishes from what the three left, and writes the uninterrupted run's bytes."""
    overrides = [*SETTINGS, f"input={training}", f"run_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}"]
    for phase in ("search", "teacher", "write"):
        killed_at(phase, overrides)
        assert not (tmp_path / "run" / "mined.jsonl").exists(), phase
    from prep.steps import mine

    again = mine.run(compose_config(overrides))
    assert (tmp_path / "run" / "mined.jsonl").read_bytes() == uninterrupted
    # The killed runs stored every embedding, the search and (the write's, one block of rows) every score.
    assert again["encoded"] == {"queries": 0, "passages": 0}
    assert again["teacher_filter"]["pairs_scored"] == 0 < again["teacher_filter"]["pairs"]
    json.loads((tmp_path / "run" / "summary.json").read_text())
