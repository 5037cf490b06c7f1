"""``report.html``'s row viewer: the mined rows a run kept for it (``contract.REPORT_ROWS``, ``steps/mine/viewer.py``),
each query with its positives and its negatives, per negative its rank, similarity to the query, teacher score (where
the run scored the rows: a pipeline's or a probe's ``scored.jsonl``), which retriever found it and its flags.

Plain HTML and a few lines of inline JavaScript, nothing loaded: a filter box (text in the query, a positive or a
negative), "only rows with a flagged negative", and a click on a column's head sorts that row's negatives. Every
text is escaped; the page stays one file.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from prep import contract, seeds
from prep.io.atomic import atomic_file

SCRIPT = """
const box = document.getElementById('row-filter'), flagged = document.getElementById('row-flagged');
function filterRows() {
  const wanted = box.value.trim().toLowerCase();
  let shown = 0;
  for (const row of document.querySelectorAll('#rows .row')) {
    const visible = (!wanted || row.textContent.toLowerCase().includes(wanted))
      && (!flagged.checked || row.dataset.flagged === '1');
    row.hidden = !visible;
    shown += visible;
  }
  document.getElementById('row-count').textContent = shown;
}
box.addEventListener('input', filterRows);
flagged.addEventListener('change', filterRows);
for (const head of document.querySelectorAll('#rows th')) {
  head.addEventListener('click', () => {
    const body = head.closest('table').tBodies[0], column = head.cellIndex;
    const up = head.dataset.order !== 'up';
    head.dataset.order = up ? 'up' : 'down';
    const key = tr => { const t = tr.cells[column].textContent; const n = parseFloat(t); return isNaN(n) ? t : n; };
    [...body.rows].sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (up ? 1 : -1))
      .forEach(tr => body.appendChild(tr));
  });
}
"""
OPENED = 3  # rows shown open; the others open on a click
STYLE = """
#rows .row { border: 1px solid #ddd; margin: .4em 0; padding: .2em .6em } #rows th { cursor: pointer }
#rows .flag { color: #a33 } #rows p.pos { background: #eef7ee; padding: .2em .4em }
"""


def sample_rows(span: range, count: int, seed: int) -> frozenset[int]:
    """``count`` input row numbers of ``span`` (all of them where it holds fewer), drawn uniformly, seeded."""
    if count >= len(span):
        return frozenset(span)
    chosen = seeds.stream(seed, seeds.REPORT_ROWS).choice(len(span), count, replace=False)
    return frozenset(span[int(i)] for i in chosen)


def write_viewer_rows(path: Path, records: list[dict[str, Any]]) -> None:
    """The records as JSON lines, written whole or not at all."""
    with atomic_file(path, overwrite=True) as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def rows_file(run_dir: Path) -> Path | None:
    """The run's viewer rows: its own (``step=mine``) or its ``mine/`` stage's (pipeline, probe)."""
    for path in (run_dir / contract.REPORT_ROWS, run_dir / "mine" / contract.REPORT_ROWS):
        if path.is_file():
            return path
    return None


def teacher_scores(run_dir: Path, queries: set[str]) -> dict[tuple[str, str], float]:
    """(query, passage) -> teacher score from the run's ``scored.jsonl`` (a pipeline's or a probe's), for the rows
    of ``queries`` only; empty where the run scored nothing."""
    path = run_dir / contract.SCORED
    found: dict[tuple[str, str], float] = {}
    if not path.is_file():
        return found
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row.get("query") in queries and "neg_scores" in row:
                texts = [*row["pos"], *row["neg"]]
                found.update(((row["query"], text), score)
                             for text, score in zip(texts, [*row["pos_scores"], *row["neg_scores"]]))
    return found


def viewer(run_dir: Path) -> list[str]:
    """The page's row viewer section (empty where the run kept no rows for it) and its style and script."""
    path = rows_file(run_dir)
    if path is None:
        return []
    with open(path, encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    scores = teacher_scores(run_dir, {record["query"] for record in records})
    with_teacher = bool(scores) or any("teacher" in negative for record in records for negative in record["neg"])
    return ["<h2>Rows</h2>",
            f"<p><span id=row-count>{len(records)}</span> of {len(records)} rows shown: a seeded sample of the run's "
            "rows (<code>report.rows</code>); click a column's head to sort a row's negatives.</p>",
            '<p><input id=row-filter type=search size=40 placeholder="text in a query, positive or negative"> '
            "<label><input id=row-flagged type=checkbox> only rows with a flagged negative</label></p>",
            f"<style>{STYLE}</style><div id=rows>",
            *(row_html(record, scores, with_teacher, opened=number < OPENED) for number, record in enumerate(records)),
            f"</div><script>{SCRIPT}</script>"]


def row_html(record: dict[str, Any], scores: dict[tuple[str, str], float], with_teacher: bool, opened: bool) -> str:
    """One row: its query (a summary line that opens it), positives and a table of its negatives; the teacher's
    column only where the run scored its rows."""
    esc = html.escape
    query = record["query"]
    similarities = record.get("pos_similarity") or [None] * len(record["pos"])
    positives = "".join(f"<p class=pos>{esc(text)}"
                        + ("" if similarity is None else f" <small>(similarity {similarity})</small>") + "</p>"
                        for text, similarity in zip(record["pos"], similarities))
    lines, any_flag = [], False
    for number, negative in enumerate(record["neg"], 1):
        flags = [name for key, name in (("other_positive", "another row's positive"),
                                         ("near_duplicate", "near duplicate of a positive")) if negative.get(key)]
        any_flag = any_flag or bool(flags)
        teacher = negative.get("teacher", scores.get((query, negative["text"])))
        cells = [number, negative["rank"], negative["similarity"],
                 *([None if teacher is None else round(teacher, 4)] if with_teacher else []), negative["source"]]
        lines.append("<tr>" + "".join(f"<td>{'' if value is None else esc(str(value))}</td>" for value in cells)
                     + f"<td class=flag>{esc(', '.join(flags))}</td><td>{esc(negative['text'])}</td></tr>")
    names = ("#", "rank", "similarity", *(("teacher",) if with_teacher else ()), "source", "flags", "negative")
    head = "".join(f"<th>{name}</th>" for name in names)
    return (f'<details class=row data-flagged={int(any_flag)}{" open" if opened else ""}><summary>row {record["row"]}: '
            f"<b>{esc(query)}</b></summary>{positives}<div class=wide><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(lines)}</tbody></table></div></details>")
