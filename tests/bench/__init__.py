"""Tests of the benchmark scripts in bench/ (scripts, not part of the package: loaded by path)."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from tests.conftest import ROOT


def bench_script(name: str) -> ModuleType:
    """``bench/<name>.py`` as a module, registered in ``sys.modules`` (its dataclasses look their module up there)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
