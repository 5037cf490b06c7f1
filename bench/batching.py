"""What exact passes cost (issue 31): texts per second of the encoder in exact passes against length-sorted
ones, padded tokens per real token, and pairs per second of exact batched scoring against one pair per pass and
FlagEmbedding's ``compute_score`` at the same batch size; in fp32 and in bf16 (forced: emulated on a CPU without
AVX512-BF16 or AMX, so say which CPU ran it).

    python bench/batching.py --corpus .bench/debian-2k-20k [--passages N] [--pairs 2000] [--dtypes fp32,bf16]

Prints one JSON line per measurement and appends them to CORPUS/../batching.jsonl.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def config(dtype: str, *overrides: str):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from prep.config.schema import register

    register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose(config_name="config", overrides=[f"hardware.use_bf16={dtype == 'bf16'}", *overrides])
    GlobalHydra.instance().clear()
    return cfg


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def padding(tokenizer, texts: list[str], max_length: int, batch_size: int, hardware) -> dict[str, float]:
    """Padded tokens per real token of each way of cutting passes (exact ones as on the CPU)."""
    from prep.models import batching

    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    items = [(i, x, len(x)) for i, x in enumerate(ids)]
    real = sum(len(x) for x in ids)
    shape = batching.PassShape.on("cpu", batch_size, hardware, max_length)
    return {name: round(batching.padded_tokens(planner(items, shape)) / real, 3)
            for name, planner in (("exact", batching.exact_passes), ("sorted", batching.sorted_passes))}


def measure_encoder(texts: list[str], queries: list[str], dtype: str) -> list[dict]:
    from prep.models import batching
    from prep.models import embedder as embed

    cfg = config(dtype)
    model = embed.load_embedder(cfg.miner, cfg.hardware)
    embed.encode_passages(model, cfg.miner, cfg.hardware, texts[:200])  # warm-up
    results = []
    for name, planner in (("sorted", batching.sorted_passes), ("exact", batching.exact_passes)):
        embed.plan_passes = planner
        start = time.perf_counter()
        embed.encode_passages(model, cfg.miner, cfg.hardware, texts)
        passages = time.perf_counter() - start
        start = time.perf_counter()
        embed.encode_queries(model, cfg.miner, cfg.hardware, queries)
        query_seconds = time.perf_counter() - start
        results.append({"what": "encode", "dtype": dtype, "passes": name,
                        "passages_per_s": round(len(texts) / passages, 1),
                        "queries_per_s": round(len(queries) / query_seconds, 1)})
    embed.plan_passes = batching.exact_passes
    tokens = {side: padding(model.tokenizer, items, 512, cfg.miner.batch_size, cfg.hardware)
              for side, items in (("passages", texts), ("queries", queries))}
    results.append({"what": "padded tokens per real token", "passes": tokens})
    return results


def measure_scoring(folder: Path, pairs: list[list[str]], dtype: str) -> list[dict]:
    from FlagEmbedding import FlagAutoReranker

    from prep.models.teacher import score_encoder_only

    cfg = config(dtype)
    batch = cfg.reranker.batch_size
    reranker = FlagAutoReranker.from_finetuned(str(folder), model_class="encoder-only-base", use_fp16=False,
                                               use_bf16=dtype == "bf16", devices="cpu", batch_size=batch)
    score_encoder_only(reranker, pairs[:64], cfg.hardware, True)  # warm-up

    def one_pair_per_pass():  # what reranker.batch_invariant=true ran before: passes of batch_size 1
        reranker.batch_size = 1
        try:
            score_encoder_only(reranker, pairs, cfg.hardware, False)
        finally:
            reranker.batch_size = batch

    ways = {
        "exact passes": lambda: score_encoder_only(reranker, pairs, cfg.hardware, True),
        "one pair per pass (before)": one_pair_per_pass,
        f"compute_score (batch {batch})": lambda: reranker.compute_score(pairs, batch_size=batch),
    }
    results = []
    for name, work in ways.items():
        start = time.perf_counter()
        work()
        results.append({"what": "score", "dtype": dtype, "way": name,
                        "pairs_per_s": round(len(pairs) / (time.perf_counter() - start), 1)})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True,
                        help="a debian_corpus.py folder (corpus.jsonl, train.jsonl)")
    parser.add_argument("--passages", type=int, default=None, help="the first N of the pool (default: all)")
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--only", default="encode,score")
    args = parser.parse_args()
    texts = [json.loads(line)["text"] for line in (args.corpus / "corpus.jsonl").open(encoding="utf-8")]
    rows = [json.loads(line) for line in (args.corpus / "train.jsonl").open(encoding="utf-8")]
    queries = [row["query"] for row in rows]
    rng = random.Random(0)
    pairs = [[row["query"], passage] for row in rows[: args.pairs // 4]
             for passage in [row["pos"][0], *rng.sample(texts, 3)]]
    out = args.corpus.parent / "batching.jsonl"
    folder = args.corpus.parent / "cross-encoder-minilm-shape"
    if "score" in args.only and not (folder / "config.json").exists():
        import subprocess

        subprocess.run([sys.executable, str(ROOT / "bench" / "make_cross_encoder.py"), str(folder)], check=True)
    for dtype in args.dtypes.split(","):
        measured = []
        if "encode" in args.only:
            measured += measure_encoder(texts[: args.passages], queries, dtype)
        if "score" in args.only:
            measured += measure_scoring(folder, pairs, dtype)
        for record in measured:
            record = {"cpu": cpu_name(), "passages": len(texts[: args.passages]), "pairs": len(pairs), **record}
            print(json.dumps(record), flush=True)
            with out.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
