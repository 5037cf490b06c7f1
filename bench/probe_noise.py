"""How the probe's interval narrows with more dev queries, more seeds and more steps (issue 38).

    python bench/probe_noise.py [--dir .bench/probe-noise] [--corpus-dir .bench/debian-2k-8k] [--seeds 0,1,2]
                                [--steps 15,45] [--dev-fraction 0.3] [--a sampling=flagembedding]
                                [--b sampling=top_k] [--queries 100,200,0] [--extra "probe.negatives=7 ..."]

For each ``--steps`` value, one sweep of ``step=probe`` over two settings (``--a``, ``--b``; both mine ranks 2-200)
under every seed, with a large hold-out (``--dev-fraction``). The per-query figures each job keeps
(``probe_queries.json``) are then paired as the sweep summary pairs them (``prep.report.noise``), on the first N
dev queries of each seed (``--queries``; 0: all) and on the first K seeds: the table gives B minus A with its 95%
interval and the interval's width, so the cost of a narrower interval (queries, seeds, steps) can be read off.
The corpus is the one ``../shared/bench/debian_corpus.py`` builds (``--corpus-dir`` holds its train.jsonl and
corpus.jsonl). Results go to DIR/results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from prep import contract
from prep.report.noise import paired_difference

ROOT = Path(__file__).resolve().parents[1]


def seeds_in(folder: Path) -> set[int]:
    """The seeds of the finished jobs in a sweep folder."""
    return {int(json.loads(path.read_text())["config"]["seed"]) for path in folder.glob(f"*/{contract.SUMMARY}")}


def sweeps(args: argparse.Namespace, steps: int, out: Path) -> list[Path]:
    """The sweep folders at ``steps``: ``steps-N`` and, for seeds added later, ``steps-N-seeds-...``.

    A seed whose jobs are already in a finished folder is not run again, so seeds can be added one sitting at a time.
    """
    done = [f for f in [out / f"steps-{steps}", *sorted(out.glob(f"steps-{steps}-seeds-*"))]
            if (f / contract.SWEEP_CSV).is_file()]
    have = set().union(*(seeds_in(f) for f in done))
    missing = [s for s in args.seeds.split(",") if int(s) not in have]
    if not missing:
        return done
    folder = out / f"steps-{steps}-seeds-{'-'.join(missing)}" if done else out / f"steps-{steps}"
    corpus = (ROOT / args.corpus_dir).absolute()
    settings = f"{args.a.split('=', 1)[1]},{args.b.split('=', 1)[1]}"
    key = args.a.split("=", 1)[0]
    command = [sys.executable, str(ROOT / "run.py"), "-m", "step=probe", f"input={corpus / 'train.jsonl'}",
               f"miner.candidate_pool={corpus / 'corpus.jsonl'}", f"{key}={settings}",
               "miner.range_for_sampling=[2,200]", f"seed={','.join(missing)}", f"probe.steps={steps}",
               f"probe.dev_fraction={args.dev_fraction}", f"cache_dir={out / 'cache'}",
               f"hydra.sweep.dir={folder}", *args.extra.split()]
    print(" ".join(command[2:]), flush=True)
    subprocess.run(command, check=True, cwd=ROOT, env={"HF_HUB_OFFLINE": "1", **os.environ})
    return [*done, folder]


def jobs(folders: list[Path], key: str) -> dict[tuple[str, int], dict]:
    """(setting: the job's ``key=value`` override, seed) -> the job's per-query figures and objective."""
    found = {}
    for summary_path in (path for folder in folders for path in folder.glob(f"*/{contract.SUMMARY}")):
        data = contract.load(summary_path)
        run, summary = contract.read(contract.RunRecord, data), contract.read(contract.ProbeSummary, data)
        setting = next(o for o in run.overrides if o.startswith(f"{key}="))
        queries = json.loads((summary_path.parent / contract.PROBE_QUERIES).read_text())
        # Jobs from before the probe trained in bf16 record no precision: they trained in fp32.
        found[(setting, run.seed)] = {**queries, "objective": summary.objective, "seconds": run.seconds["total"],
                                      "precision": summary.probe.train.precision or "fp32"}
    return found


def table(args: argparse.Namespace, results: dict[int, dict]) -> str:
    seeds = [int(s) for s in args.seeds.split(",")]
    lines = [f"B = `{args.b}` minus A = `{args.a}`, nDCG@10 on the dev queries, 95% interval (two-level paired "
             "bootstrap, prep/report/noise.py)", "",
             "| steps | training | seeds | dev queries per seed | B - A | interval | width | seconds per job |",
             "|---|---|---|---|---|---|---|---|"]
    for steps, found in sorted(results.items()):
        seconds = np.median([job["seconds"] for job in found.values()])
        precision = "/".join(sorted({job["precision"] for job in found.values()}))
        for count in range(1, len(seeds) + 1):
            for queries in [int(q) for q in args.queries.split(",")]:
                pairs = []
                for seed in seeds[:count]:
                    a, b = found[(args.a, seed)], found[(args.b, seed)]
                    size = queries or len(a["ndcg@10"])
                    pairs.append((np.asarray(b["ndcg@10"][:size]), np.asarray(a["ndcg@10"][:size])))
                shown = queries or min(len(p[0]) for p in pairs)
                d = paired_difference(pairs)
                lines.append(f"| {steps} | {precision} | {count} | {shown} | {d.mean:+.4f} | "
                             f"{d.low:+.4f} to {d.high:+.4f} | {d.high - d.low:.4f} | {seconds:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=".bench/probe-noise")
    parser.add_argument("--corpus-dir", default=".bench/debian-2k-8k")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", default="15,45")
    parser.add_argument("--dev-fraction", default="0.3")
    parser.add_argument("--a", default="sampling=flagembedding")
    parser.add_argument("--b", default="sampling=top_k")
    parser.add_argument("--queries", default="100,200,0", help="dev queries per seed to pair (0: all)")
    parser.add_argument("--extra", default="", help="more overrides for every probe job, space-separated")
    args = parser.parse_args()
    out = (ROOT / args.dir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    key = args.a.split("=", 1)[0]
    results = {int(steps): jobs(sweeps(args, int(steps), out), key) for steps in args.steps.split(",")}
    text = table(args, results)
    (out / "results.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
