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

from prep.schema import register

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
