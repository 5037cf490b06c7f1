"""A second retrieval corpus, of another domain: code search over pinned pure-Python wheels.

    python bench/code_corpus.py OUT_DIR [--queries 2000] [--corpus 0] [--seed 0]

Each documented function or method of the wheels below (downloaded once with ``pip download --no-deps``, pinned by
version, so every machine builds the same corpus) gives one query, the first line of its docstring, and one
passage, its source without the docstring. Why it is a fair second test: the queries are short natural language and
the passages code, unlike the Debian descriptions (prose to prose); and it has the false negatives real code search
has: pip vendors its own copies of requests, urllib3, idna, packaging, rich, pygments, platformdirs and tomli (and
setuptools of packaging, more-itertools and others), so many functions appear twice with the same docstring and
(nearly) the same body, and overloads and siblings share summaries ("Return the ...").

writes OUT_DIR/train.jsonl   {"query": summary line, "pos": [source without the docstring]}
       OUT_DIR/corpus.jsonl  {"text": source}   (every function, deduplicated)
       OUT_DIR/source.jsonl  {"text": source, "source": the function's name without the vendoring prefix}
                             (the quality benchmark's sibling-tolerant metric groups passages by it: a vendored copy
                             of the query's function is not a wrong answer)

The same layout as ../shared/bench/debian_corpus.py, so bench/quality.py reads either (``--corpus-dir``).
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import subprocess
import sys
import zipfile
from pathlib import Path

# Pure-Python wheels, pinned. pip vendors copies of several of the others (the near-duplicates).
WHEELS = ["pip==24.2", "requests==2.32.3", "urllib3==2.2.3", "idna==3.10", "packaging==24.1", "rich==13.8.1",
          "pygments==2.18.0", "platformdirs==4.3.6", "tomli==2.0.2", "click==8.1.7", "attrs==24.2.0",
          "more-itertools==10.5.0", "toolz==1.0.0", "boltons==24.0.0", "pyparsing==3.1.4", "jinja2==3.1.4",
          "markdown==3.7", "docutils==0.21.2", "setuptools==75.1.0", "networkx==3.3", "sphinx==8.0.2"]
VENDOR_PREFIXES = ("pip._vendor.", "setuptools._vendor.", "pkg_resources._vendor.", "setuptools._distutils.")
MIN_QUERY_WORDS = 3
MAX_PASSAGE_CHARS = 4000  # longer functions are skipped: a passage is one function a reader can take in


def download(folder: Path) -> list[Path]:
    """The pinned wheels in ``folder`` (downloaded when missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    missing = [spec for spec in WHEELS if not list(folder.glob(spec.split("==")[0].replace("-", "_") + "-*.whl"))
               and not list(folder.glob(spec.split("==")[0] + "-*.whl"))]
    if missing:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d",
                        str(folder), *missing], check=True)
    return sorted(folder.glob("*.whl"))


def functions(source: str, module: str):
    """(qualified name, summary line, source without the docstring) of each documented function in ``source``."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return
    lines = source.splitlines(keepends=True)

    def walk(node: ast.AST, prefix: str):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                docstring = ast.get_docstring(child)
                if docstring and child.body and isinstance(child.body[0], ast.Expr):
                    summary = docstring.strip().splitlines()[0].strip()
                    doc = child.body[0]
                    start = (child.decorator_list[0].lineno if child.decorator_list else child.lineno) - 1
                    body = lines[start:doc.lineno - 1] + lines[doc.end_lineno:child.end_lineno]
                    code = "".join(body).strip("\n")
                    if len(summary.split()) >= MIN_QUERY_WORDS and code.count("\n") >= 2 and \
                            len(code) <= MAX_PASSAGE_CHARS:
                        yield name, summary, code
                yield from walk(child, f"{name}.")

    yield from walk(tree, f"{module}.")


def group_of(qualified: str) -> str:
    """The function's name without a vendoring prefix: a vendored copy and its original share a group
    (``setuptools._distutils.x`` is distutils' ``x``)."""
    for prefix in VENDOR_PREFIXES:
        if qualified.startswith(prefix):
            rest = qualified[len(prefix):]
            return f"distutils.{rest}" if prefix == "setuptools._distutils." else rest
    return qualified


def collect(wheels: list[Path]) -> list[tuple[str, str, str]]:
    """(group, summary, code) of every documented function of the wheels, in wheel and file order."""
    found = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for name in sorted(archive.namelist()):
                if not name.endswith(".py") or ".dist-info/" in name:
                    continue
                module = name[:-3].replace("/", ".").removesuffix(".__init__")
                source = archive.read(name).decode("utf-8", errors="replace")
                for qualified, summary, code in functions(source, module):
                    found.append((group_of(qualified), summary, code))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--queries", type=int, default=2000, help="training queries to sample (0: all)")
    parser.add_argument("--corpus", type=int, default=0, help="passages in corpus.jsonl (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    found = collect(download(args.out_dir / "wheels"))
    passages = list(dict.fromkeys(code for _, _, code in found))
    source_of = {}
    for group, _, code in found:
        source_of.setdefault(code, group)
    pairs = list(dict.fromkeys((summary, code) for _, summary, code in found))
    rng = random.Random(args.seed)
    rng.shuffle(pairs)
    chosen = pairs if args.queries == 0 else pairs[:args.queries]
    if args.corpus:
        keep = {code for _, code in chosen}
        others = [p for p in passages if p not in keep]
        rng.shuffle(others)
        passages = [p for p in passages if p in keep or p in set(others[:max(0, args.corpus - len(keep))])]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with open(args.out_dir / "train.jsonl", "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"query": q, "pos": [c]}, ensure_ascii=False) + "\n" for q, c in chosen)
    with open(args.out_dir / "corpus.jsonl", "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"text": p}, ensure_ascii=False) + "\n" for p in passages)
    with open(args.out_dir / "source.jsonl", "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"text": p, "source": source_of[p]}, ensure_ascii=False) + "\n"
                          for p in passages)
    groups = {}
    for p in passages:
        groups.setdefault(source_of[p], 0)
        groups[source_of[p]] += 1
    print(f"{len(chosen)} queries, {len(passages)} passages in {len(groups)} groups "
          f"({sum(1 for n in groups.values() if n > 1)} groups with more than one passage) -> {args.out_dir}")


if __name__ == "__main__":
    main()
