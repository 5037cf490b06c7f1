"""Property test of the Python API (issue 32's suites): whatever keyword arguments a caller passes, ``prep.mine``
gives a result or raises ``UsageError`` before it writes anything (or, for a setting the data does not meet, a
``DataError`` naming the input); never another exception."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import prep
from prep.errors import DataError, UsageError
from prep.io.paths import SAMPLE_TRAIN

pytestmark = pytest.mark.slow

KEYS = ["seed", "miner.negative_number", "miner.range_for_sampling", "miner.similarity_range", "miner.query_block",
        "miner.absolute_margin", "miner.retriever", "miner.fusion", "miner.max_positive_rank", "output_format",
        "miner", "sampling", "hardware", "reranker", "tracking", "splitter", "overwrite", "cache", "columns.query",
        "miner.negtive_number", "nope", "probe.steps", "shard.count", "hardware.devices", "input_split"]
VALUES = (st.none() | st.booleans() | st.integers(-3, 300) | st.floats(allow_subnormal=False) | st.text(max_size=8)
          | st.sampled_from(["2-200", "0-0", "top_k", "flagembedding", "cpu", "gpu", "hybrid", "union", "n-tuple",
                             "[0.2,0.8]", "bm25", "cross_encoder", "mlflow", "none"])
          | st.lists(st.integers(-1, 300), max_size=3) | st.dictionaries(st.sampled_from(["negative_number", "x"]),
                                                                          st.integers(-1, 20), max_size=2))
ROWS = "".join(SAMPLE_TRAIN.read_text(encoding="utf-8").splitlines(True)[:6])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arguments=st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=3))
def test_any_keyword_arguments_give_a_result_or_a_usage_error(arguments):
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "train.jsonl"
        data.write_text(ROWS, encoding="utf-8")
        run = Path(scratch) / "run"
        fixed = {"run_dir": str(run), "cache_dir": str(Path(scratch) / "cache")}
        try:
            result = prep.mine(str(data), **{**arguments, **fixed})
        except UsageError:
            assert not run.exists()
            return
        except DataError as exc:  # a setting the data does not meet (columns.query names no column): the file named
            assert str(exc).startswith(str(data)), str(exc)
            assert not run.exists()
            return
        assert result.summary["rows"] == 6 and not run.joinpath("input").exists()
        output = Path(result.summary["output"])
        if output.suffix == ".jsonl":  # the rows written, all of them read back (none, when every row was short)
            assert len(result.dataset) == len(output.read_text(encoding="utf-8").splitlines())
