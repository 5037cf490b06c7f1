"""The package's shape (issue 33): subpackages in layers with no import cycle, small files and functions, and
settings whose defaults are stated once, in the schema."""

import ast
import dataclasses
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "prep"
# Each subpackage (or top-level module) may import those before it, never one after it.
LAYERS = ["prep.errors", "prep.contract", "prep.seeds", "prep.timing", "prep.progress", "prep.config", "prep.io",
          "prep.models", "prep.retrieval", "prep.cache", "prep.evaluation", "prep.report", "prep.steps", "prep.api",
          "prep"]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def runtime_imports(tree: ast.AST):
    """Every import statement, at the top or inside a function, but those under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from runtime_imports(node)


def imported_modules(name: str) -> set[str]:
    """prep's own modules that module ``name`` imports."""
    found = set()
    for node in runtime_imports(ast.parse(MODULES[name].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            assert node.level == 0, f"{name}: relative import"
            targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                       for a in node.names]
        for target in targets:
            while target not in MODULES and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in MODULES and target != name:
                found.add(target)
    return found


GRAPH = {name: imported_modules(name) for name in MODULES}


def layer(name: str) -> str:
    return ".".join(name.split(".")[:2])


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_another_that_imports_it_back():
    assert cycles(GRAPH) == []


def test_each_subpackage_imports_only_those_below_it():
    upward = [f"{name} imports {other}" for name, others in GRAPH.items() for other in others
              if LAYERS.index(layer(other)) > LAYERS.index(layer(name))]
    assert upward == []


def test_the_checker_finds_a_cycle_and_an_upward_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert LAYERS.index(layer("prep.steps.mine.step")) > LAYERS.index(layer("prep.config.settings"))


def functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def parameters(node: ast.FunctionDef) -> list[str]:
    args = node.args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs if a.arg not in ("self", "cls")]
    return names + ["*"] * bool(args.vararg) + ["**"] * bool(args.kwarg)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_files_and_functions_stay_small(name):
    path = MODULES[name]
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= 400, f"{path}: {lines} lines"
    for node in functions(path):
        length = node.end_lineno - node.lineno + 1
        assert length <= 50, f"{path}:{node.lineno} {node.name}: {length} lines"
        assert len(parameters(node)) <= 6, f"{path}:{node.lineno} {node.name}: {parameters(node)}"


def test_the_mining_rules_defaults_are_the_schema_s():
    from prep.config.schema import MinerConfig
    from prep.retrieval.sampling import MiningRules

    schema = {f.name: f.default for f in dataclasses.fields(MinerConfig)}
    shared = [f for f in dataclasses.fields(MiningRules) if f.name in schema and f.default is not dataclasses.MISSING]
    assert len(shared) >= 10
    assert {f.name: f.default for f in shared} == {f.name: schema[f.name] for f in shared}


def test_prep_s_own_modules_are_imported_at_the_top_of_a_module():
    """Function-level imports are for heavy libraries (torch, FlagEmbedding, matplotlib, mlflow: each module says
    why once); prep's own modules are light and, with no cycle, imported at the top. ``import prep`` stays light by
    reaching the API on first use."""
    inside = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inside += [f"{name}: {item.module}" for item in ast.walk(node)
                           if isinstance(item, ast.ImportFrom) and (item.module or "").startswith("prep")]
    assert inside == ["prep: prep"]


# Libraries slow to import (about 0.3 s to several seconds each on a 2-core machine) or optional: imported inside the
# functions that use them, so that `python run.py --help` and a config error answer in about a second.
HEAVY = {"torch", "transformers", "FlagEmbedding", "sentence_transformers", "datasets", "pyarrow", "faiss", "bm25s",
         "scipy", "matplotlib", "mlflow", "huggingface_hub", "tokenizers",
         "resource"}  # the last: not on every platform (steps/frame.py guards it)


def lazy_imports(path: Path) -> set[str]:
    """The top-level names of the libraries a module imports inside its functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for item in ast.walk(node):
                if isinstance(item, ast.Import):
                    found |= {alias.name.split(".")[0] for alias in item.names}
                elif isinstance(item, ast.ImportFrom) and item.level == 0 and item.module:
                    found.add(item.module.split(".")[0])
    return found - {"prep"}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_function_level_imports_are_heavy_libraries_the_module_docstring_names(name):
    """Issue 33: function-level imports only for heavy or optional libraries, each named, with the reason, in the
    module's docstring once; anything else (the standard library, numpy, tqdm, Hydra, OmegaConf, which the config
    loads anyway) is imported at the top."""
    path = MODULES[name]
    lazy = lazy_imports(path)
    assert lazy <= HEAVY, f"{path}: {sorted(lazy - HEAVY)} imported inside a function: import at the top"
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    unnamed = [library for library in sorted(lazy) if library.lower() not in docstring.lower().replace("-", "_")]
    assert not unnamed, f"{path}: its docstring does not say why {unnamed} are imported inside functions"


def test_every_cache_entry_kind_goes_through_the_store_s_entries():
    """Entries name their files through ``Cache.path`` and ``Cache.folder`` (one damage rule, one hit counter):
    no module but the store reaches into the cache's root folder."""
    reaching = [name for name, path in MODULES.items() if name != "prep.cache.store"
                and any(isinstance(node, ast.Attribute) and node.attr == "root"
                        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))))]
    assert reaching == []
    from prep.cache import evaluations, lexical, store

    kinds = [store.ArrayEntries, store.SearchEntries, store.ScoreEntries, lexical.LexicalEntries,
             evaluations.EvaluationEntries]
    assert all(issubclass(kind, store.Entries) for kind in kinds)
    assert len({kind.namespace for kind in kinds}) == len(kinds)
