"""Does a cheap probe rank the sampling presets as full training does? (issue: the probe's default size)

    python bench/probe_presets.py [--dir .bench/probe] [--queries 2000] [--corpus 0] [--sizes 15x16,30x16]
                                  [--presets flagembedding,top_k,topk_percpos,percpos_random,in_batch]
                                  [--seeds 0,1] [--corpus-dir .bench/debian-2k-8k] [--against _fp32]
                                  [--tag _n7 probe.negatives=7 ...]

Builds the Debian corpus (../shared/bench/debian_corpus.py), then for each probe size (steps x batch) and
seed runs ``step=probe`` over the presets as one sweep (one encode of the pool, shared cache), plus
``in_batch`` (recipe (e): ``probe.negatives=0``, in-batch negatives only) as a job of its own, and compares
the arms' order by mean nDCG@10 with the order full training gave (``FULL_TRAINING``: the means of two seeds,
strict nDCG@10, from bench/README.md's quality table; the teacher recipes have no preset here). Each probe
mines as full training did (ranks 2-200, 7 negatives), so both judge the same files.
Overrides after the options go to every probe job (``--tag`` names their sweep folders apart). Prints, and
writes to DIR/results<tag>.md, each size's nDCG@10 per arm (the seeds' mean and each seed's), Kendall tau
against full training, and the seconds a probe job took (medians: in all, mining, training, evaluating). With
``--against TAG`` (finished sweeps of other overrides, e.g. another precision), each arm's difference from its
TAG twin, paired over the same dev queries, with its interval.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from itertools import combinations
from pathlib import Path
from statistics import median

import numpy as np

from prep.report.noise import paired_difference

ROOT = Path(__file__).resolve().parents[1]
CORPUS_SCRIPT = ROOT.parent / "shared" / "bench" / "debian_corpus.py"
# bench/README.md, "Quality": strict nDCG@10, means of seeds 0 and 1, fine-tuned on 1,024 mined rows.
FULL_TRAINING = {"flagembedding": 0.7855, "top_k": 0.7991, "topk_percpos": 0.7906, "percpos_random": 0.7838,
                 "in_batch": 0.7689}
IN_BATCH = "in_batch"  # recipe (e): no mined negatives, so the sampling preset does not matter
# Mined as full training's rows were (bench/quality.py: ranks 2-200, 7 negatives), so that the probe judges the
# same files and only the training and the judging differ; overrides after the options may change it.
MINED_AS_FULL_TRAINING = ["miner.range_for_sampling=2-200", "miner.negative_number=7"]


def kendall_tau(first: dict[str, float], second: dict[str, float]) -> float:
    """Kendall's tau-a of two scorings of the same names (ties count as neither agreement nor disagreement)."""
    names = sorted(first)
    pairs = list(combinations(names, 2))
    score = sum(((first[a] > first[b]) - (first[a] < first[b])) * ((second[a] > second[b]) - (second[a] < second[b]))
                for a, b in pairs)
    return round(score / len(pairs), 4) if pairs else 0.0


def run_sweep(args: argparse.Namespace, corpus: Path, sweep: Path, overrides: list[str]) -> list[dict]:
    """One ``step=probe`` multirun into ``sweep`` (skipped when its summary is there); each job's summary."""
    if not (sweep / "sweep_summary.csv").is_file():
        command = [sys.executable, str(ROOT / "run.py"), "-m", "step=probe", f"input={corpus / 'train.jsonl'}",
                   f"miner.candidate_pool={corpus / 'corpus.jsonl'}", *overrides,
                   f"cache_dir={args.dir / 'cache'}", f"hydra.sweep.dir={sweep}"]
        subprocess.run(command, check=True, cwd=args.dir, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    return [json.loads(path.read_text()) for path in sorted(sweep.glob("*/summary.json"))]


def probe_sweep(args: argparse.Namespace, corpus: Path, steps: int, batch: int, seed: int) -> dict[str, dict]:
    """The presets' probes at one size and seed (one sweep, and the in-batch arm's job); each arm's summary."""
    size = merged([f"probe.steps={steps}", f"probe.batch_size={batch}", f"seed={seed}"], MINED_AS_FULL_TRAINING,
                  args.extra)
    presets = [p for p in args.presets if p != IN_BATCH]
    name = f"sweep_{steps}x{batch}_seed{seed}{args.tag}"
    arms = {}
    if presets:
        for summary in run_sweep(args, corpus, args.dir / name, [f"sampling={','.join(presets)}", *size]):
            arms[next(o.split("=", 1)[1] for o in summary["overrides"] if o.startswith("sampling="))] = summary
    if IN_BATCH in args.presets:
        arms[IN_BATCH], = run_sweep(args, corpus, args.dir / f"{name}_{IN_BATCH}",
                                    ["sampling=top_k", *merged(size, ["probe.negatives=0"])])
    return arms


def against(args: argparse.Namespace, corpus: Path, steps: int, batch: int, runs: list[dict[str, dict]]) -> list[str]:
    """Each arm minus the same arm of the finished sweeps tagged ``--against`` (same seeds and size: the same dev
    sets), paired over each seed's dev queries and pooled over the seeds (``prep.report.noise``): table lines.
    Those sweeps are only read: one that is not there is refused, never run with this run's overrides."""
    seeds = args.seeds.split(",")
    for seed in seeds:
        base = f"sweep_{steps}x{batch}_seed{seed}{args.against}"
        needed = ([base] if set(args.presets) - {IN_BATCH} else []) + (
            [f"{base}_{IN_BATCH}"] if IN_BATCH in args.presets else [])
        for name in needed:
            if not (args.dir / name / "sweep_summary.csv").is_file():
                raise SystemExit(f"--against {args.against}: {args.dir / name} holds no finished sweep")
    other = argparse.Namespace(**{**vars(args), "tag": args.against})
    theirs = [probe_sweep(other, corpus, steps, batch, int(seed)) for seed in seeds]
    lines = []
    for preset in args.presets:
        d = paired_difference([(np.asarray(per_query(ours[preset])["ndcg@10"]),
                                np.asarray(per_query(their[preset])["ndcg@10"])) for ours, their in zip(runs, theirs)])
        lines.append(f"| {steps}x{batch} | {preset} | {d.mean:+.4f} | {d.low:+.4f} to {d.high:+.4f} |")
    return lines


def per_query(summary: dict) -> dict:
    """A probe job's figures per dev query (``probe_queries.json`` beside its summary)."""
    return json.loads((Path(summary["summary"]).parent / "probe_queries.json").read_text())


def merged(*groups: list[str]) -> list[str]:
    """The overrides of every group, a later one replacing an earlier one of the same key (one value a key)."""
    by_key = {}
    for override in (o for group in groups for o in group):
        by_key.pop(override.split("=", 1)[0], None)
        by_key[override.split("=", 1)[0]] = override
    return list(by_key.values())


def seeds_cell(runs: list[dict[str, dict]], arm: str) -> str:
    """One arm's objective under each seed, ``a / b``."""
    return " / ".join(f"{run[arm]['objective']:.4f}" for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=ROOT / ".bench" / "probe")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--corpus", type=int, default=0, help="passages in the corpus (0: every package)")
    parser.add_argument("--corpus-dir", type=Path, default=None,
                        help="a corpus built already (its train.jsonl, corpus.jsonl); default DIR/corpus, built")
    parser.add_argument("--sizes", default="15x16,30x16", help="probe sizes, steps x batch, comma-separated")
    parser.add_argument("--presets", default=",".join(FULL_TRAINING))
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--tag", default="", help="suffix of the sweep folders (runs with other --extra settings)")
    parser.add_argument("--against", default=None,
                        help="the tag of finished sweeps (other extra overrides) to pair each arm with, query by query")
    parser.add_argument("extra", nargs="*", help="more overrides for every probe job, e.g. probe.negatives=7")
    args = parser.parse_args()
    args.presets = args.presets.split(",")
    args.dir = args.dir.absolute()
    args.dir.mkdir(parents=True, exist_ok=True)
    corpus = args.corpus_dir.absolute() if args.corpus_dir else args.dir / "corpus"
    if not (corpus / "train.jsonl").is_file():
        subprocess.run([sys.executable, str(CORPUS_SCRIPT), str(corpus), "--queries", str(args.queries),
                        "--corpus", str(args.corpus)], check=True)
    lines = [f"Extra overrides: {' '.join(args.extra) or 'none'}; seeds {args.seeds}; per arm: seeds' mean (each seed)",
             "",
             "| probe (steps x batch) | " + " | ".join(args.presets)
             + " | Kendall tau vs full training | s per job (median): total / mine / train / evaluate |",
             "|---|" + "---|" * (len(args.presets) + 2)]
    paired = []
    for size in args.sizes.split(","):
        steps, batch = (int(v) for v in size.split("x"))
        runs = [probe_sweep(args, corpus, steps, batch, int(seed)) for seed in args.seeds.split(",")]
        means = {p: sum(run[p]["objective"] for run in runs) / len(runs) for p in args.presets}
        jobs = [run[p] for run in runs for p in args.presets]
        # Medians: the first job of a cold cache also encodes the whole pool.
        seconds = " / ".join(f"{median(job['seconds'][phase] for job in jobs):.0f}"
                             for phase in ("total", "mine", "train", "evaluate"))
        known = {p: FULL_TRAINING[p] for p in args.presets if p in FULL_TRAINING}
        tau = kendall_tau({p: means[p] for p in known}, known)
        cells = " | ".join(f"{means[p]:.4f} ({seeds_cell(runs, p)})" for p in args.presets)
        lines.append(f"| {size} | {cells} | {tau} | {seconds} |")
        print(lines[-1], flush=True)
        if args.against is not None:
            paired += against(args, corpus, steps, batch, runs)
    if paired:
        lines += ["", f"Each arm minus the same arm of the sweeps tagged {args.against} (nDCG@10, paired over the dev "
                  "queries of each seed, 95% interval of the two-level bootstrap):", "",
                  "| probe | arm | difference | interval |", "|---|---|---|---|", *paired]
    (args.dir / f"results{args.tag}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
