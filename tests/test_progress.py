"""Progress where output is not a terminal: log lines every few seconds, never carriage returns or escapes."""

import itertools
import logging

import pytest

from prep import progress
from tests.conftest import run_cli


def test_a_bar_in_a_log_is_a_line_at_most_every_interval_and_one_at_the_end(caplog):
    caplog.set_level(logging.INFO, logger="prep.progress")
    with progress.progress(total=100, desc="encode passages", unit="text") as bar:  # stderr is captured: no tty
        assert isinstance(bar, progress.LoggedProgress)
        clock = itertools.count(bar.start_t + 1)  # each reading of the clock one second after the one before
        bar._time = lambda: next(clock)
        for _ in range(100):
            bar.update(1)
    lines = [record.getMessage() for record in caplog.records]
    # 100 updates about a second apart: a line every 10 s at most (tqdm reads the clock every few updates), the end
    elapsed = [int(line.split(" in 00:")[1][:2]) for line in lines]
    assert 3 <= len(lines) <= 11 and lines[-1].startswith("encode passages: 100% (100/100) in ")
    assert all(later - earlier >= progress.INTERVAL for earlier, later in zip(elapsed, elapsed[1:-1]))
    assert lines[0].startswith("encode passages:  ") and "% (" in lines[0] and "text/s, about " in lines[0]
    assert not any("\r" in line or "\x1b" in line for line in lines)


def test_an_empty_bar_logs_nothing(caplog):
    caplog.set_level(logging.INFO, logger="prep.progress")
    with progress.LoggedProgress(total=0, desc="score pairs", unit="pair"):
        pass
    assert caplog.records == []


@pytest.mark.slow
def test_the_demo_written_to_a_file_is_a_short_readable_log(tmp_path):
    """Issue 34, item 6: `make demo > log 2>&1` (the pipeline on the bundled sample, a cold cache) gives a log under
    100 lines with no carriage return or escape sequence."""
    result = run_cli("step=pipeline", f"cache_dir={tmp_path / 'cache'}", f"outputs_dir={tmp_path / 'outputs'}",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "\r" not in log and "\x1b" not in log
    assert len(log.splitlines()) < 100
    assert "prep.progress][INFO] - encode passages: 100% (234/234) in " in log
