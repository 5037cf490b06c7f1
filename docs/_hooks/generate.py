"""mkdocs hook: the pages made from the code when the docs build, so they never fall behind it.

- reference/configuration.md: every key and option (prep/config/reference.py reads the schema and conf/);
- benchmarks/figures.md: bench/README.md as it is, the figures and how to rerun each one.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]


def on_files(files, config):
    from prep.config.reference import reference_markdown

    files.append(File.generated(config, "reference/configuration.md", content=reference_markdown()))
    figures = (ROOT / "bench" / "README.md").read_text(encoding="utf-8")
    files.append(File.generated(config, "benchmarks/figures.md", content=figures))
    return files
