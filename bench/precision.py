"""How the encoder runs fastest in bf16 on this CPU, and what each way costs in neighbours (issue 36).

    python bench/precision.py --corpus .bench/debian-2k-20k [--passages 8000] [--queries 2000]

The same texts (the first ``--passages`` of the pool and ``--queries`` queries of the Debian corpus), MiniLM at its
own length, in prep's exact passes, five ways: fp32; fp32 weights under bf16 autocast; bf16 weights (prep's default
where bf16 applies); bf16 weights with the layer norms in fp32; and a bare torch loop (length-sorted batches of 64,
the tokenizer's padding, bf16 autocast) as the floor of what any loop costs. For each: texts per second, and its
neighbours against fp32's (the top 200 of every query over the passages: the share in common, and the mean absolute
difference of the top-200 similarities). Prints one JSON line per way and appends them to CORPUS/../precision.jsonl.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.batching import config, cpu_name  # noqa: E402

TOP = 200


def own_length() -> int:
    from prep.models.lengths import with_own_lengths

    return with_own_lengths(config("fp32").miner).passage_max_length


def fp32_layer_norms(model):
    """bf16 weights but every LayerNorm in fp32: its input cast up, its output cast back down."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.float()
            module.register_forward_pre_hook(lambda _, args: (args[0].float(),))
            module.register_forward_hook(lambda _, __, output: output.to(torch.bfloat16))
    return model


def prep_loop(embedder, texts: list[str], dtype, autocast: bool, prepare=None) -> np.ndarray:
    """prep's exact passes (``prep.models.embedder``'s loop) over a model cast to ``dtype`` (then ``prepare``d)."""
    import torch

    from prep.models import batching, flag
    from prep.models import embedder as embed

    cfg = config("fp32")
    max_length = own_length()
    shape = batching.PassShape.on("cpu", cfg.miner.batch_size, cfg.hardware, max_length)
    model = embedder.model.to(dtype=dtype)
    if prepare is not None:
        model = prepare(model)
    model.eval()
    pooling = flag.plain_embedder_pooling(embedder)
    out = np.empty((len(texts), model.config.hidden_size), dtype=np.float32)
    tokenized = ((start + offset, ids, len(ids)) for start, chunk in embed._token_chunks(embedder.tokenizer, texts,
                                                                                          max_length)
                 for offset, ids in enumerate(chunk))
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with torch.inference_mode(), cast:
        for step in batching.exact_passes(tokenized, shape):
            out[step.positions] = embed._embed_pass(embedder, model, pooling, step, "cpu")
    return out


def bare_loop(embedder, texts: list[str]) -> np.ndarray:
    """The floor: length-sorted batches of 64, padded by the tokenizer, mean pooling, bf16 autocast."""
    import torch

    model = embedder.model.float().eval()
    max_length = own_length()
    lengths = [len(ids) for ids in embedder.tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
    order = np.argsort(lengths)[::-1]
    out = np.empty((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        for start in range(0, len(texts), 64):
            batch = order[start:start + 64]
            inputs = embedder.tokenizer([texts[i] for i in batch], padding=True, truncation=True,
                                        max_length=max_length, return_tensors="pt")
            hidden = model(**inputs).last_hidden_state
            mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            out[batch] = torch.nn.functional.normalize(pooled.float(), dim=-1).numpy()
    return out


def neighbours(queries: np.ndarray, passages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import torch

    similarities = torch.from_numpy(queries) @ torch.from_numpy(passages).T
    values, ids = torch.topk(similarities, TOP, dim=1)
    return values.numpy(), ids.numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--passages", type=int, default=8000)
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args()
    import torch

    from prep.models import embedder as embed

    texts = [json.loads(line)["text"] for line in (args.corpus / "corpus.jsonl").open(encoding="utf-8")]
    texts = texts[: args.passages]
    queries = [json.loads(line)["query"] for line in (args.corpus / "train.jsonl").open(encoding="utf-8")]
    queries = queries[: args.queries]
    cfg = config("fp32")
    embedder = embed.load_embedder(cfg.miner, cfg.hardware)
    ways = {
        "fp32": lambda items: prep_loop(embedder, items, torch.float32, False),
        "fp32 weights, bf16 autocast": lambda items: prep_loop(embedder, items, torch.float32, True),
        "bf16 weights (prep's default)": lambda items: prep_loop(embedder, items, torch.bfloat16, False),
        "bf16 weights, fp32 layer norms": lambda items: prep_loop(embedder, items, torch.bfloat16, False,
                                                                  fp32_layer_norms),
        "bare torch loop, sorted batches, bf16 autocast": lambda items: bare_loop(embedder, items),
    }
    reference = None
    for name, encode in ways.items():
        encode(texts[:256])  # warm-up
        started = time.perf_counter()
        passages = encode(texts)
        found = encode(queries)
        seconds = time.perf_counter() - started
        values, ids = neighbours(found, passages)
        record = {"cpu": cpu_name(), "way": name, "texts": len(texts) + len(queries),
                  "texts_per_s": round((len(texts) + len(queries)) / seconds, 1)}
        if reference is None:
            reference = (values, ids)
        else:
            overlap = np.mean([len(set(a) & set(b)) / TOP for a, b in zip(ids, reference[1])])
            record.update({f"top{TOP}_overlap_with_fp32": round(float(overlap), 4),
                           "mean_similarity_difference": round(float(np.abs(values - reference[0]).mean()), 5)})
        print(json.dumps(record), flush=True)
        with (args.corpus.parent / "precision.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        # the layer-norm hooks stay on the shared model: reload it for the ways after
        embedder = embed.load_embedder(cfg.miner, cfg.hardware)


if __name__ == "__main__":
    main()
