"""The files a run writes, named once: the steps write them, the reports, the tracker, merge and the benchmarks
read them (shared/DESIGN.md's contract)."""

SUMMARY = "summary.json"  # every step's summary, in its run folder
MINED = "mined.jsonl"  # step=mine's output when output= is not set
SCORED = "scored.jsonl"  # step=score's
SIMILARITIES = "similarities.npz"  # step=mine's similarity of positives and negatives, for the sweep's plot
SIMILARITY_PLOT = "similarity.png"
FILTERS_PLOT = "filters.png"
RUN_REPORT = "report.html"
SWEEP_CSV = "sweep_summary.csv"
SWEEP_MARKDOWN = "sweep_summary.md"
SWEEP_REPORT = "sweep_report.html"
SWEEP_SIMILARITY_PLOT = "sweep_similarity.png"
SWEEP_OBJECTIVE_PLOT = "sweep_objective.png"
BEST_SAMPLING = "best_sampling.yaml"  # a sweep's best sampling settings, as a config file
PROBE_SPLIT = "probe_split.json"  # step=probe's training and dev row numbers
