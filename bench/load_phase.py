"""Where a cold ``step=mine`` spends the time before its first forward pass (issue 36), one part after another.

    python bench/load_phase.py --corpus .bench/debian-2k-20k [--repeats 3]

Each repeat is a fresh process (a warm disk after the first) that does what a mine run does before it encodes,
timing each part on its own: the interpreter and ``run.py``'s imports, composing and checking the config (with
the model's lengths), reading and checking the input rows and the pool, importing torch, transformers and
FlagEmbedding, building FlagEmbedding's embedder (model and tokenizer), and the first forward pass. Then the same
through ``run.py step=mine`` itself: the wall time until the first text is encoded, read from the run's log. Prints
a table of the medians; ``--json`` appends one JSON line to CORPUS/../load_phase.jsonl.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PARTS = r"""
import json, sys, time, tempfile
started = time.perf_counter()
marks = {}
def mark(name):
    global started
    now = time.perf_counter(); marks[name] = now - started; started = now
sys.path.insert(0, __ROOT__)
import hydra, omegaconf
from prep.config.schema import register
register()
mark("run.py's imports (hydra, prep's config)")
from hydra import compose, initialize_config_dir
with initialize_config_dir(version_base="1.3", config_dir=__ROOT__ + "/conf"):
    cfg = compose(config_name="config", overrides=__OVERRIDES__)
from prep.config.settings import settings_of
from prep.models.lengths import miner_lengths
from prep.models.availability import check_model_source
settings = settings_of(cfg)
check_model_source(settings.miner.model_name_or_path, "miner.model_name_or_path")
settings = miner_lengths(settings).settings
mark("config composed and checked, the model's lengths read")
from pathlib import Path
from prep.steps import mine
from prep.steps.frame import StepRun
from prep.retrieval.sampling import MiningRules
from prep.cache.store import Cache
mining = mine.Mining(StepRun(settings, "mine", default_output="mined.jsonl"), MiningRules.from_settings(settings),
                     Cache(None, False))
mark("prep's mine step imported")
with tempfile.TemporaryDirectory() as work:
    source = mine.load(mining, Path(work), None)
    mark("input rows read and checked, pool read")
    import torch
    mark("import torch")
    import transformers
    mark("import transformers")
    from prep.models import runtime
    runtime.before_model_imports()  # as prep does: transformers leaves scikit-learn out
    import FlagEmbedding
    mark("import FlagEmbedding")
    from prep.models import embedder
    model = embedder.load_embedder(settings.miner, settings.hardware)
    mark("FlagEmbedding's embedder built (model, tokenizer)")
    embedder.encode_passages(model, settings.miner, settings.hardware, source.pool.texts()[:1])
    mark("first forward pass (one passage)")
    source.pool.close()
print(json.dumps(marks))
"""


def parts(corpus: Path) -> dict[str, float]:
    overrides = [f"input={corpus / 'train.jsonl'}", f"miner.candidate_pool={corpus / 'corpus.jsonl'}", "cache=false",
                 "run_dir=/tmp/prep-load-phase", "overwrite=true"]
    script = PARTS.replace("__ROOT__", repr(str(ROOT))).replace("__OVERRIDES__", repr(overrides))
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT,
                            env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    wall = time.perf_counter() - started
    marks = json.loads(result.stdout.strip().splitlines()[-1])
    return {"interpreter start (wall less the parts)": wall - sum(marks.values()), **marks, "total": wall}


def until_first_text(corpus: Path) -> float:
    """``run.py step=mine`` from its start to the first progress line of the passages' encoding, in seconds."""
    command = [sys.executable, str(ROOT / "run.py"), "step=mine", f"input={corpus / 'train.jsonl'}",
               f"miner.candidate_pool={corpus / 'corpus.jsonl'}", "cache=false", "run_dir=/tmp/prep-load-phase-run",
               "overwrite=true"]
    started = time.perf_counter()
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=ROOT,
                               env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    buffer = ""
    try:
        while True:
            char = process.stderr.read(1)
            if not char:
                raise SystemExit("run.py ended before it encoded a passage")
            buffer += char
            if re.search(r"encode passages:\s+\d+%\|[^|]*\|\s*[1-9]", buffer):
                return time.perf_counter() - started
    finally:
        process.kill()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    parts(args.corpus)  # a warm disk for the measured repeats
    measured = [parts(args.corpus) for _ in range(args.repeats)]
    medians = {name: statistics.median(m[name] for m in measured) for name in measured[0]}
    first = statistics.median(until_first_text(args.corpus) for _ in range(args.repeats))
    print(f"| part | seconds (median of {args.repeats}) |\n|---|---|")
    for name, seconds in medians.items():
        print(f"| {name} | {seconds:.2f} |")
    print(f"| `run.py step=mine` from start to the first passage encoded | {first:.2f} |")
    if args.json:
        with (args.corpus.parent / "load_phase.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"parts": medians, "until_first_text": first}) + "\n")


if __name__ == "__main__":
    main()
