"""``report.html`` for a run and ``sweep_report.html`` for a sweep: one self-contained page each.

The pages are built from the files a run leaves (``summary.json``, its PNG plots), so ``make report RUN=...``
rebuilds them for any existing folder. Self-contained: the plots are embedded as data URIs, the style is inline,
the only script is the row viewer's few inline lines (``report/rows.py``) and nothing is fetched, so the page reads
the same offline, in a mail, or as a tracker's artifact.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prep import contract
from prep.config.dotted import dotted
from prep.io.atomic import atomic_file
from prep.report.plots import bar_chart
from prep.report.rows import viewer

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em; color: #222 }
h1 { font-size: 1.5em } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc }
table { border-collapse: collapse; margin: .5em 0 1em } td, th { border: 1px solid #ccc; padding: 2px 8px }
th { background: #f3f3f3; text-align: left } td.n { text-align: right; font-variant-numeric: tabular-nums }
tr.best td { background: #fff1d6; font-weight: bold } code, pre { background: #f6f6f6; padding: 1px 4px }
pre { padding: .6em; white-space: pre-wrap } img { max-width: 100%; border: 1px solid #ddd }
figure { margin: 1em 0 } figcaption { color: #555 } .wide { overflow-x: auto }
"""
# Keys of a distribution's statistics (prep.report.stats), in the order the tables show them.
DISTRIBUTION = ("count", "mean", "p5", "p25", "p50", "p75", "p95")
# Summary entries shown in the page's head rather than as figures.
HEAD = ("step", "overrides", "seed", "input", "candidate_pool", "output", "summary", "rejected", "config", "seconds")


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def cell(value: Any) -> str:
    if isinstance(value, bool) or value is None or not isinstance(value, (int, float)):
        shown = json.dumps(value) if isinstance(value, (list, dict)) else value
        return f"<td>{esc(shown)}</td>"
    return f'<td class="n">{value:,}</td>' if isinstance(value, int) else f'<td class="n">{value:.4g}</td>'


def table(header: Iterable[str] | None, rows: Iterable[Iterable[Any]], best: int | None = None) -> str:
    """An HTML table (``header`` None: no header row); the row numbered ``best`` is marked."""
    head = "<thead><tr>" + "".join(f"<th>{esc(name)}</th>" for name in header) + "</tr></thead>" if header else ""
    body = "".join(f'<tr{" class=best" if index == best else ""}>' + "".join(cell(v) for v in row) + "</tr>"
                   for index, row in enumerate(rows))
    return f'<div class="wide"><table>{head}<tbody>{body}</tbody></table></div>'


def image(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{esc(caption)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def page(title: str, body: list[str]) -> str:
    # The empty icon stops a browser from asking the server (or the disk) for /favicon.ico.
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f'<meta name=viewport content="width=device-width"><link rel=icon href="data:,">'
            f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>\n<h1>{esc(title)}</h1>\n"
            + "\n".join(body) + "\n</body></html>\n")


def is_distribution(value: Any) -> bool:
    return isinstance(value, dict) and "count" in value and "mean" in value


def flat(data: dict[str, Any]) -> list[tuple[str, Any]]:
    """Dotted keys and values; a distribution's statistics stay together."""
    return list(dotted(data, leaf=is_distribution).items())


def figures_section(name: str, value: Any) -> str:
    """One summary entry as a table: distributions as percentile rows, anything else as key and value."""
    if is_distribution(value):  # with what it adds to the statistics (positive_rank: past_searched_depth)
        columns = [*DISTRIBUTION, *(k for k in value if k not in DISTRIBUTION)]
        return f"<h3>{esc(name)}</h3>" + table(["", *columns], [[name, *(value.get(k) for k in columns)]])
    if isinstance(value, dict) and value and all(is_distribution(v) for v in value.values()):
        return f"<h3>{esc(name)}</h3>" + table(["", *DISTRIBUTION],
                                               [[k, *(v.get(s) for s in DISTRIBUTION)] for k, v in value.items()])
    if isinstance(value, dict) and isinstance(value.get("before"), dict) and isinstance(value.get("after"), dict):
        metrics = list(value["after"])  # a probe: before and after training, side by side
        rest = {k: v for k, v in value.items() if k not in ("before", "after")}
        return (f"<h3>{esc(name)}: the student before and after training</h3>"
                + table(["", *metrics], [["before", *(value["before"].get(m) for m in metrics)],
                                         ["after", *(value["after"].get(m) for m in metrics)]])
                + "".join(figures_section(f"{name}.{k}", v) for k, v in rest.items()))
    if isinstance(value, dict):
        plain = [(k, v) for k, v in flat(value) if not is_distribution(v)]
        nested = "".join(figures_section(f"{name}.{k}", v) for k, v in flat(value) if is_distribution(v))
        return (f"<h3>{esc(name)}</h3>" + table(["key", "value"], plain) if plain else "") + nested
    return ""


def removed_counts(summary: dict[str, Any]) -> dict[str, int] | None:
    """The filters' counts (``candidates.removed``) of a mine, a probe's mine or a pipeline's mine."""
    for holder in (summary, summary.get("mine"), (summary.get("probe") or {}).get("mine")):
        removed = ((holder or {}).get("candidates") or {}).get("removed")
        if isinstance(removed, dict):
            return removed
    return None


def plots_of(run_dir: Path, summary: dict[str, Any]) -> list[str]:
    """The run's plots as figures: the similarity histogram (mine, or a probe's or pipeline's mine/ folder) and
    the filters' counts, drawn here into ``filters.png`` (one sentence instead where every count is 0)."""
    figures = []
    for histogram in (run_dir / contract.SIMILARITY_PLOT, run_dir / "mine" / contract.SIMILARITY_PLOT):
        if histogram.is_file():
            figures.append(image(histogram, "similarity to the query: the positives against the mined negatives"))
            break
    removed = removed_counts(summary)
    if removed and not any(removed.values()):
        figures.append(f"<p>No filter removed a candidate ({esc(', '.join(removed))}: 0 each).</p>")
    elif removed:
        bars = run_dir / contract.FILTERS_PLOT
        bar_chart(bars, list(removed), [float(v) for v in removed.values()],
                  "candidates each filter removed (in the order they apply)", "candidates")
        figures.append(image(bars, "what each filter removed from the candidate windows"))
    return figures


def run_report(run_dir: Path, summary: dict[str, Any]) -> str:
    overrides = summary.get("overrides") or []
    head = [(key, summary.get(key)) for key in ("step", "input", "candidate_pool", "output", "rejected", "seed")
            if summary.get(key) is not None]
    body = ["<h2>What was run</h2>",
            f"<pre>python run.py {esc(' '.join(overrides))}</pre>",
            table(None, [*head, ("run folder", str(run_dir))])]
    seconds = summary.get("seconds") or {}
    plots = plots_of(run_dir, summary)
    if plots:
        body += ["<h2>Plots</h2>", *plots]
    body += viewer(run_dir)
    body.append("<h2>Figures</h2>")
    scalars = [(k, v) for k, v in summary.items() if k not in HEAD and not isinstance(v, dict)]
    if scalars:
        body.append(table(["key", "value"], scalars))
    body += [figures_section(k, v) for k, v in summary.items() if k not in HEAD and isinstance(v, dict)]
    if seconds:
        body += ["<h3>seconds per phase</h3>", table(list(seconds), [list(seconds.values())])]
    settings = flat(summary.get("config") or {})
    if settings:
        body += ["<h2>Settings</h2>", f"<details><summary>all {len(settings)} resolved settings</summary>",
                 table(["key", "value"], settings), "</details>"]
    return page(f"prep step={summary.get('step')}: {run_dir.name}", body)


def write_run_report(run_dir: Path, summary: dict[str, Any] | None = None) -> Path:
    """``report.html`` in the run folder, from ``summary`` (or the folder's ``summary.json``)."""
    if summary is None:
        summary = contract.load(run_dir / contract.SUMMARY)
    return write_page(run_dir / contract.RUN_REPORT, run_report(run_dir, summary))


def sweep_report(sweep_dir: Path, rows: list[dict[str, Any]], common: list[str], best: int | None,
                 verdict: str | None = None) -> str:
    """Every job side by side (the columns some job has a value for), the best one marked, the verdict with its
    noise, and the plots."""
    # every row holds the sweep summary's columns, in their order (report.sweep.COLUMNS)
    columns = [c for c in (rows[0] if rows else ()) if c != "best" and any(r.get(c) not in (None, "") for r in rows)]
    body = ["<h2>What was run</h2>",
            f"<p>{len(rows)} jobs in <code>{esc(sweep_dir)}</code>; every job: "
            f"<code>{esc(' '.join(common) or '(defaults)')}</code>.</p>"]
    if best is not None:
        mean = rows[best].get("objective_mean")
        body.append(f"<p>Best job: <b>{esc(rows[best]['job'])}</b> ({esc(rows[best]['overrides'])}), objective "
                    f"{esc(rows[best]['objective'])}"
                    + (f" (mean over its seeds {esc(mean)})" if mean is not None else "")
                    + "; its sampling settings are in <code>best_sampling.yaml</code>."
                    "</p>")
    if verdict is not None:
        body.append(f"<p><b>Verdict</b>: {esc(verdict)} (each setting against the best, paired over the dev "
                    "queries of each seed; 95% bootstrap interval).</p>")
    links = [f'<a href="{esc(row["job"])}/report.html">job {esc(row["job"])}</a>' for row in rows
             if (sweep_dir / str(row["job"]) / contract.RUN_REPORT).is_file()]
    if links:
        body.append("<p>Each job's own report: " + ", ".join(links) + ".</p>")
    body += ["<h2>Jobs</h2>", table(columns, [[row.get(c) for c in columns] for row in rows], best)]
    objectives = [(str(row["job"]), row["objective"]) for row in rows if isinstance(row.get("objective"), (int, float))]
    if objectives:
        bars = sweep_dir / contract.SWEEP_OBJECTIVE_PLOT
        labels = [f"job {job}" for job, _ in objectives]
        best_job = str(rows[best]["job"]) if best is not None else None
        marked = next((i for i, (job, _) in enumerate(objectives) if job == best_job), None)
        bar_chart(bars, labels, [float(v) for _, v in objectives], "the objective per job (best in orange)",
                  "objective on held-out queries", highlight=marked)
        body.append("<h2>Plots</h2>")
        if (sweep_dir / contract.SWEEP_DIFFERENCE_PLOT).is_file() and verdict is not None:
            body.append(image(sweep_dir / contract.SWEEP_DIFFERENCE_PLOT, "each setting minus the best, with its "
                              "interval: a bar across 0 is not distinguishable from the best"))
        body.append(image(bars, "the probe's objective per job"))
    if (sweep_dir / contract.SWEEP_SIMILARITY_PLOT).is_file():
        if not objectives:
            body.append("<h2>Plots</h2>")
        body.append(image(sweep_dir / contract.SWEEP_SIMILARITY_PLOT, "per job, mined negatives against positives"))
    return page(f"prep sweep: {sweep_dir.name}", body)


def write_sweep_report(sweep_dir: Path, rows: list[dict[str, Any]], common: list[str], best: int | None,
                       verdict: str | None = None) -> Path:
    return write_page(sweep_dir / contract.SWEEP_REPORT, sweep_report(sweep_dir, rows, common, best, verdict))


def write_page(path: Path, text: str) -> Path:
    """A page, atomically (always replaced: it is rebuilt from the folder's files)."""
    with atomic_file(path, overwrite=True) as handle:
        handle.write(text)
    return path
