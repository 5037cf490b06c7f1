"""The configuration reference (the docs' ``reference/configuration.md``), made from the schema when the docs build.

Every key's type and default come from the dataclasses of ``prep/config/schema.py`` and its meaning from the
comment beside the key there (or the comment lines right above it), so a setting is stated once, in the schema;
``tests/config/test_reference.py`` fails when a key has no meaning. The options of each group come from ``conf/``:
a file's opening comment (the command that uses it, then what it is) is its meaning.

    python -m prep.config.reference > reference.md
"""

from __future__ import annotations

import ast
import dataclasses
import io
import tokenize
from enum import Enum
from pathlib import Path

from omegaconf import MISSING

from prep.config import choices, schema

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
# The nested settings of the top level, in the order the reference shows them (the groups follow).
NESTED = {"columns": schema.ColumnsConfig, "shard": schema.ShardConfig, "probe": schema.ProbeConfig,
          "report": schema.ReportConfig}


def key_meanings(source: str) -> dict[tuple[str, str], str]:
    """(class name, key) -> the comment beside the key's line, else the comment lines right above it ('' if none)."""
    comment_at: dict[int, tuple[bool, str]] = {}  # line -> (a line of its own, the text)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comment_at[token.start[0]] = (token.line.strip().startswith("#"), token.string.lstrip("#").strip())
    meanings = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for statement in node.body:
            if isinstance(statement, ast.AnnAssign | ast.Assign):
                target = statement.target if isinstance(statement, ast.AnnAssign) else statement.targets[0]
                if isinstance(target, ast.Name):
                    meanings[(node.name, target.id)] = _comment_of(statement, comment_at)
    return meanings


def _comment_of(statement: ast.stmt, comment_at: dict[int, tuple[bool, str]]) -> str:
    own_line, text = comment_at.get(statement.end_lineno or statement.lineno, (True, ""))
    if text and not own_line:
        return text
    above, line = [], statement.lineno - 1
    while line in comment_at and comment_at[line][0]:
        above.insert(0, comment_at[line][1])
        line -= 1
    return " ".join(above)


def type_text(annotation: str) -> str:
    """``Strategy | None`` -> ``random``, ``top`` or null: the values a key takes, as a user types them."""
    parts = []
    for part in (piece.strip() for piece in annotation.split("|")):
        closed = getattr(choices, part, None)
        if isinstance(closed, type) and issubclass(closed, Enum):
            parts.append(", ".join(f"`{member.value}`" for member in closed))
        else:
            parts.append({"None": "null", "Any": "see the meaning"}.get(part, f"`{part}`"))
    return " or ".join(parts)


def default_text(key: dataclasses.Field) -> str:
    if key.default_factory is not dataclasses.MISSING:
        value = key.default_factory()
    else:
        value = key.default
    if value is MISSING:
        return "from the group's option"
    if isinstance(value, Enum):
        value = value.value
    return "null" if value is None else f"`{str(value).lower() if isinstance(value, bool) else value}`"


def option_meanings(group: str, conf_dir: Path = CONF_DIR) -> dict[str, str]:
    """Each option of a group (``conf/<group>/<name>.yaml``, not the schemas) -> its file's opening comment."""
    meanings = {}
    for path in sorted((conf_dir / group).glob("*.yaml")):
        lines = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("#"):
                break
            if not line.startswith("# @package"):
                lines.append(line.lstrip("#").strip())
        meanings[path.stem] = " ".join(lines)
    return meanings


def _first_paragraph(settings: type) -> str:
    return " ".join((settings.__doc__ or "").strip().split("\n\n")[0].split())


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def own_keys(settings: type) -> list[dataclasses.Field]:
    """A section's keys, less the sections the top level holds (``columns``, ``probe``, ``miner``, ...)."""
    nested = {*NESTED, *schema.GROUPS} if settings is schema.Config else set()
    return [key for key in dataclasses.fields(settings) if key.name not in nested]


def key_table(prefix: str, settings: type, meanings: dict[tuple[str, str], str]) -> list[str]:
    rows = ["| key | takes | default | meaning |", "|---|---|---|---|"]
    for key in own_keys(settings):
        meaning = meanings.get((settings.__name__, key.name), "")
        rows.append(f"| `{prefix}{key.name}` | {_cell(type_text(str(key.type)))} | {_cell(default_text(key))} | "
                    f"{_cell(meaning)} |")
    return rows


def missing_meanings(source: str | None = None) -> list[str]:
    """Keys of the schema without a meaning (the test's list; empty when every key has one)."""
    meanings = key_meanings(source if source is not None else Path(schema.__file__).read_text(encoding="utf-8"))
    sections = {"": schema.Config, **{f"{name}.": cls for name, cls in NESTED.items()},
                **{f"{name}.": cls for name, cls in schema.GROUPS.items()}}
    return [f"{prefix}{key.name}" for prefix, settings in sections.items() for key in own_keys(settings)
            if not meanings.get((settings.__name__, key.name))]


def reference_markdown(conf_dir: Path = CONF_DIR) -> str:
    meanings = key_meanings(Path(schema.__file__).read_text(encoding="utf-8"))
    lines = ["# Configuration reference", "",
             "Made from `prep/config/schema.py` and `conf/` when the docs build (`prep/config/reference.py`): every "
             "key with what it takes, its default and its meaning. Set any of them on the command line "
             "(`python run.py step=mine miner.negative_number=7`); pick an option of a group with `group=option`.",
             "", "## Top-level keys", "", *key_table("", schema.Config, meanings)]
    for name, settings in NESTED.items():
        lines += ["", f"## `{name}`", "", _first_paragraph(settings), "",
                  *key_table(f"{name}.", settings, meanings)]
    for group in schema.OPTION_GROUPS:
        settings = schema.GROUPS.get(group)
        lines += ["", f"## `{group}`", ""]
        if settings is not None:
            lines += [_first_paragraph(settings), ""]
        lines += ["Options:", ""]
        lines += [f"- `{group}={option}`: {meaning}" for option, meaning in option_meanings(group, conf_dir).items()
                  if not option.startswith("base_")]
        if settings is None:
            lines += ["", f"A `{group}` option sets keys of `miner` (`{', '.join(schema.SAMPLING_KEYS[:3])}`, ...)."]
        else:
            lines += ["", *key_table(f"{group}.", settings, meanings)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(reference_markdown(), end="")
