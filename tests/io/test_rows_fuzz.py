"""Property tests of the readers: whatever a file holds, a row is read and written back with every key we do
not own exactly as it came, or the reader stops with one error naming the file and line."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prep.errors import DataError
from prep.io.jsonl import check_training_row, dump_row, read_jsonl
from prep.io.rawjson import parse_object

# Any Unicode, lone surrogates and control characters included (json.dumps escapes what it must).
TEXT = st.text(alphabet=st.characters(codec=None), max_size=40)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-10**30, max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12)
NUMBER_TEXTS = st.sampled_from(["1.10", "1E5", "-0.0", "1e400", "-1e-400", "12345678901234567890123", "0.1e+2"])
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _line(query, positives, carried: dict, spacing: str, escape: bool) -> str:
    def dumps(value):
        return json.dumps(value, ensure_ascii=escape)

    parts = [f'"query":{spacing}{dumps(query)}', f'"pos":{spacing}{dumps(positives)}']
    parts += [f"{dumps(key)}:{spacing}{text}" for key, text in carried.items()]
    return "{" + f",{spacing}".join(parts) + "}"


def _has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


@FUZZ
@given(query=TEXT, positives=st.lists(TEXT, min_size=1, max_size=3),
       carried=st.dictionaries(TEXT.filter(lambda k: k not in ("query", "pos", "neg")),
                               JSON_VALUES.map(json.dumps) | NUMBER_TEXTS, max_size=4),
       spacing=st.sampled_from(["", " ", "  \t"]), escape=st.booleans())
def test_a_row_is_read_and_written_back_or_names_its_line(tmp_path, query, positives, carried, spacing, escape):
    line = _line(query, positives, carried, spacing, escape)
    path = tmp_path / "rows.jsonl"
    # Unescaped lone surrogates cannot be UTF-8: written as CESU-8-like bytes, which the reader must refuse.
    path.write_bytes(b'{"query": "first", "pos": ["row"]}\n' + line.encode("utf-8", "surrogatepass") + b"\n")
    texts = [query, *positives]
    should_fail = (any(not t or t.isspace() or "\x00" in t or _has_surrogate(t) for t in texts)
                   or (not escape and _has_surrogate(line)))
    try:
        rows = read_jsonl(path, check_training_row)
    except DataError as exc:
        assert str(exc).startswith(f"{path}:2: "), str(exc)
        assert should_fail, str(exc)
        return
    assert not should_fail
    written = dump_row(rows[1])
    assert written.endswith("}\n") and "\n" not in written[:-1]
    assert parse_object(written) == rows[1]  # the same values
    for key, text in carried.items():  # and every key we do not own in the very text it came in
        assert f"{json.dumps(key, ensure_ascii=escape)}: {text}" in written


@FUZZ
@given(data=st.binary(max_size=80))
def test_arbitrary_bytes_are_a_row_or_one_error_naming_the_line(tmp_path, data):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"query": "first", "pos": ["row"]}\n' + data.replace(b"\n", b" ") + b"\n")
    try:
        rows = read_jsonl(path, check_training_row)
    except DataError as exc:
        assert str(exc).startswith(f"{path}:2: ") or str(exc) == f"{path}: holds no rows", str(exc)
        return
    for row in rows:
        assert parse_object(dump_row(row)) == row
