"""Peak memory of ``step=mine`` against pool size (issue: bounded memory), on synthetic passages.

    python bench/memory.py [--dir .bench/memory] [--sizes 2000,10000,100000,1000000] [--queries 2000] [--encode]
                           [--pool-format jsonl|parquet] [--rows 10000,100000,500000 [--prefill-queries]]

For each size N: writes a pool of N synthetic passages (20 to 60 made-up words, seeded) and a
training file of ``--queries`` rows whose positive is a pool passage and whose query is six of its
words; then runs ``python run.py step=mine`` on them and samples the process's ``/proc`` status
every 20 ms: peak resident memory (VmRSS, which also counts pages of files mapped in, such as
the pool's Arrow file) and peak anonymous memory (RssAnon: what the process itself holds).

Encoding a million passages with MiniLM takes too long on this CPU (a few hundred a second), so by
default each pool's cache is first filled with random unit vectors under the keys the encoder uses:
the measured run loads the model, encodes the queries, reads every chunk of the pool from the cache,
searches, samples and writes, and encodes no passage (``summary.json`` says so). With ``--encode``
the measured run encodes the pool itself (use it for the smaller sizes).

The smallest size is the baseline (model, runtime, queries, and with ``--encode`` the forward passes);
the target is that the peak at N stays within the baseline plus twice the size of N float16
embeddings. Results: DIR/memory.jsonl and a table.

``--rows``: training rows instead of pool sizes (issue: memory flat in the rows): for each pool size, one run
per row count (with more rows than passages, each passage is one row's positive and the other rows' positives
are drawn from the pool again, so several rows share a positive); ``--prefill-queries`` also fills the cache
with random query embeddings under the keys of each ``miner.query_block`` block, so that the measured run
encodes nothing and the figures are the rows' handling.

``--pool-format parquet`` gives the measured run the same pool as a parquet file (read through ``datasets``:
converted to Arrow in the run's cache folder by the measured run itself, then memory-mapped), to compare
with the JSON-lines pool.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PY = sys.executable
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "shi", "po", "va", "den", "gor", "bel", "tin", "sa", "qu", "ex",
             "ul", "am", "ri", "zo", "fen", "dra", "mor", "pi", "sto", "lu", "ne", "cha", "vi", "or"]


def vocabulary(size: int, rng: np.random.Generator) -> list[str]:
    words: dict[str, None] = {}
    while len(words) < size:
        words["".join(rng.choice(SYLLABLES, size=int(rng.integers(2, 5))))] = None
    return list(words)


def write_data(folder: Path, size: int, queries: int, seed: int = 0) -> tuple[Path, Path]:
    """``pool.jsonl`` of ``size`` passages and ``train.jsonl`` of ``queries`` rows (positives from the pool)."""
    folder.mkdir(parents=True, exist_ok=True)
    pool_path, train_path = folder / "pool.jsonl", folder / "train.jsonl"
    if pool_path.exists() and train_path.exists():
        return pool_path, train_path
    rng = np.random.default_rng(seed)
    words = np.array(vocabulary(20000, rng))
    chosen = set(rng.choice(size, size=min(queries, size), replace=False).tolist())
    rows = []
    passages = []  # with more rows than passages, the later rows' positives are drawn again from the pool
    with open(pool_path.with_suffix(".tmp"), "w", encoding="utf-8") as handle:
        for number in range(size):
            passage_words = words[rng.integers(0, len(words), size=int(rng.integers(20, 61)))]
            text = f"{number} " + " ".join(passage_words)
            handle.write(json.dumps({"text": text}) + "\n")
            if number in chosen:
                query = " ".join(rng.choice(passage_words, size=6, replace=False))
                rows.append({"query": query, "pos": [text]})
            if queries > size:
                passages.append((text, passage_words))
    pool_path.with_suffix(".tmp").rename(pool_path)
    for _ in range(queries - len(rows)):
        text, passage_words = passages[int(rng.integers(0, size))]
        rows.append({"query": " ".join(rng.choice(passage_words, size=6, replace=False)), "pos": [text]})
    train_path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return pool_path, train_path


def as_parquet(pool_path: Path) -> Path:
    """The JSON-lines pool as ``pool.parquet`` (written once, in row groups of 100,000)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    target = pool_path.with_suffix(".parquet")
    if not target.exists():
        schema = pa.schema([("text", pa.string())])
        temporary = target.with_suffix(".tmp")
        with pq.ParquetWriter(str(temporary), schema) as writer, open(pool_path, encoding="utf-8") as rows:
            batch = []
            for line in rows:
                batch.append(json.loads(line)["text"])
                if len(batch) == 100_000:
                    writer.write_table(pa.table({"text": batch}, schema=schema))
                    batch = []
            if batch:
                writer.write_table(pa.table({"text": batch}, schema=schema))
        temporary.rename(target)
    return target


def overrides(folder: Path, pool_path: Path, train_path: Path, mode: str) -> list[str]:
    return [f"input={train_path}", f"miner.candidate_pool={pool_path}", f"cache_dir={folder / f'cache-{mode}'}",
            f"run_dir={folder / f'run-{mode}'}", "cache_dtype=float16", "overwrite=true", "hardware=cpu"]


def prefill(keys: list[str], queries: bool = False) -> int:
    """Put random unit vectors in the cache under the encoder's own keys for each chunk of the pool.

    Everything else in the cache (query embeddings, search results of an earlier measurement) is
    removed, so the measured run loads the model, encodes its queries and searches.
    """
    import shutil
    import tempfile

    from hydra import compose, initialize_config_dir

    from prep.cache.embeddings import CachedEncoder, chunk_starts
    from prep.cache.store import Cache
    from prep.config.schema import register
    from prep.config.settings import settings_of
    from prep.io.paths import input_sources
    from prep.io.pool import open_pool
    from prep.timing import PhaseTimer

    register()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = settings_of(compose(config_name="config", overrides=keys))
    cache = Cache(cfg.cache_dir)
    encoder = CachedEncoder(cfg.miner, cfg.hardware, cache, PhaseTimer(), cfg.cache_dtype, cfg.encode_chunk)
    _, pool_path = input_sources(cfg)
    rng = np.random.default_rng(1)
    written = 0
    chunk_keys = set()
    with tempfile.TemporaryDirectory() as work, open_pool([], pool_path, Path(work)) as pool:
        for start in chunk_starts(len(pool), cfg.encode_chunk):
            key = encoder.key("passages", pool.texts(start, start + cfg.encode_chunk))
            chunk_keys.add(key)
            if cache.has("embeddings", key):
                continue
            count = min(cfg.encode_chunk, len(pool) - start)
            vectors = rng.standard_normal((count, 384)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            cache.put("embeddings", key, {"embeddings": vectors.astype(encoder.storage_dtype)})
            written += count
    if queries:
        from prep.io.jsonl import read_jsonl
        from prep.steps.mine import query_blocks

        texts = [row["query"] for row in read_jsonl(input_sources(cfg)[0].parts[0].location)]
        for span in query_blocks(range(len(texts)), cfg.miner.query_block):
            key = encoder.key("queries", texts[span.start:span.stop])
            chunk_keys.add(key)
            if not cache.has("embeddings", key):
                vectors = rng.standard_normal((len(span), 384)).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                cache.put("embeddings", key, {"embeddings": vectors.astype(encoder.storage_dtype)})
    for entry in (cache.root / "embeddings").rglob("*.npz"):
        if entry.stem not in chunk_keys:
            entry.unlink()
    shutil.rmtree(cache.root / "search", ignore_errors=True)
    shutil.rmtree(cache.root / "datasets", ignore_errors=True)  # a parquet pool is converted by the measured run
    return written


def measure(command: list[str], log_path: Path) -> dict:
    """Run ``command``; peak VmRSS and RssAnon of its process, sampled every 20 ms, and wall seconds."""
    started = time.time()
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, cwd=Path(command[1]).parent, stdout=log, stderr=log,
                                   env={"HF_HUB_OFFLINE": "1", **os.environ})
        peaks = poll(process)
    if process.returncode != 0:
        sys.stderr.write(log_path.read_text()[-3000:])
        raise SystemExit(f"{' '.join(command)} failed")
    return {"wall_s": round(time.time() - started, 1), "peak_rss_gb": round(peaks["VmRSS"] / 1e9, 3),
            "peak_anon_gb": round(peaks["RssAnon"] / 1e9, 3)}


def poll(process: subprocess.Popen) -> dict[str, int]:
    peaks = {"VmRSS": 0, "RssAnon": 0}
    while process.poll() is None:
        try:
            for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                name, _, value = line.partition(":")
                if name in peaks:
                    peaks[name] = max(peaks[name], int(value.split()[0]) * 1024)
        except (FileNotFoundError, ProcessLookupError):
            pass
        time.sleep(0.02)
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default=".bench/memory")
    parser.add_argument("--sizes", default="2000,10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--encode", action="store_true",
                        help="the measured run encodes the pool (default: its cache is prefilled)")
    parser.add_argument("--checkout", default=str(ROOT),
                        help="the checkout whose run.py is measured (another commit, to compare)")
    parser.add_argument("--extra", default="", help="more run.py overrides, comma-separated")
    parser.add_argument("--pool-format", choices=["jsonl", "parquet"], default="jsonl")
    parser.add_argument("--rows", default="", help="training row counts to measure (instead of --queries)")
    parser.add_argument("--prefill-queries", action="store_true",
                        help="with --rows: the query embeddings come from the cache too")
    args = parser.parse_args()
    out = (ROOT / args.dir).absolute()
    results = []
    rows_list = [int(n) for n in args.rows.split(",") if n] or [args.queries]
    for size, queries in ((size, queries) for size in map(int, args.sizes.split(",")) for queries in rows_list):
        args.queries = queries
        folder = out / (f"pool-{size}" if not args.rows else f"pool-{size}-rows-{queries}")
        pool_path, train_path = write_data(folder, size, args.queries)
        if args.pool_format == "parquet":
            pool_path = as_parquet(pool_path)
        mode = ("encode" if args.encode else "cached") + ("-parquet" if args.pool_format == "parquet" else "")
        keys = overrides(folder, pool_path, train_path, mode) + [k for k in args.extra.split(",") if k]
        if args.encode:
            import shutil

            shutil.rmtree(folder / "cache-encode", ignore_errors=True)  # every run encodes its pool
        prefilled = 0 if args.encode else prefill(keys, queries=args.prefill_queries)
        record = {"mode": mode, "pool_format": args.pool_format, "passages": size, "queries": args.queries,
                  "float16_embeddings_gb": round(size * 384 * 2 / 1e9, 3),
                  "prefilled": prefilled, "checkout": args.checkout,
                  **measure([PY, str(Path(args.checkout) / "run.py"), "step=mine", *keys], folder / f"{mode}.log")}
        summary = json.loads((folder / f"run-{mode}" / "summary.json").read_text())
        record.update(encoded=summary["encoded"], seconds=summary["seconds"])
        results.append(record)
        print(json.dumps(record), flush=True)
        with open(out / "memory.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
    base = results[0]
    print(f"\n{mode}: baseline {base['passages']} passages, peak RSS {base['peak_rss_gb']} GB, "
          f"anon {base['peak_anon_gb']} GB")
    print("| passages | float16 embeddings GB | peak RSS GB | peak anon GB | above baseline (RSS) | "
          "budget: 2 x float16 | within | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for record in results:
        above = record["peak_rss_gb"] - base["peak_rss_gb"]
        budget = 2 * record["float16_embeddings_gb"]
        if args.rows:
            print(f"| {record['queries']:,} rows | {record['passages']:,} passages | {record['peak_rss_gb']} | "
                  f"{record['peak_anon_gb']} | {above:.3f} | {record['wall_s']} | {record['seconds']} |")
            continue
        print(f"| {record['passages']:,} | {record['float16_embeddings_gb']} | {record['peak_rss_gb']} | "
              f"{record['peak_anon_gb']} | {above:.3f} | {budget:.3f} | {'yes' if above <= budget else 'NO'} | "
              f"{record['wall_s']} |")


if __name__ == "__main__":
    main()
