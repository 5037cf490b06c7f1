"""bf16 against fp32 on the CPU: top-200 neighbours and similarities of the same queries and passages.

    python bench/bf16_overlap.py CORPUS_DIR [--queries 300] [--passages 5000]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prep.models import embedder as embed  # noqa: E402
from tests.conftest import compose_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus_dir")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--passages", type=int, default=5000)
    args = parser.parse_args()
    folder = Path(args.corpus_dir)
    rows = [json.loads(line) for line in open(folder / "train.jsonl", encoding="utf-8")][: args.queries]
    pool = [json.loads(line)["text"] for line in open(folder / "corpus.jsonl", encoding="utf-8")]
    passages = list(dict.fromkeys([r["pos"][0] for r in rows] + pool))[: args.passages]
    results = {}
    for setting in ("false", "true"):
        cfg = compose_config([f"hardware.use_bf16={setting}"])
        model = embed.load_embedder(cfg.miner, cfg.hardware)
        start = time.time()
        p = embed.encode_passages(model, cfg.miner, cfg.hardware, passages)
        seconds = time.time() - start
        q = embed.encode_queries(model, cfg.miner, cfg.hardware, [r["query"] for r in rows])
        scores = q @ p.T
        results[setting] = (np.argsort(-scores, axis=1, kind="stable")[:, :200], scores, seconds)
    fp32, bf16 = results["false"], results["true"]
    overlap = np.mean([len(set(a) & set(b)) / 200 for a, b in zip(fp32[0], bf16[0])])
    difference = np.abs(fp32[1] - bf16[1])
    print(json.dumps({"queries": len(rows), "passages": len(passages), "top200_overlap": round(float(overlap), 4),
                      "similarity_diff_mean": round(float(difference.mean()), 5),
                      "similarity_diff_max": round(float(difference.max()), 5),
                      "encode_seconds_fp32": round(fp32[2], 1), "encode_seconds_bf16": round(bf16[2], 1)}))


if __name__ == "__main__":
    main()
