"""prep: hard negatives, teacher scores and length buckets for embedding-model training data.

The package by role: ``config`` (the settings' schema and checks), ``steps`` (one module per step, the
step frame and registry), ``io`` (rows, pools, paths, atomic outputs), ``models`` (embedders, teachers,
device and dtype policy), ``retrieval`` (search and the mining rules), ``cache`` (embeddings, search
results and scores on disk), ``report`` (statistics, plots, sweep summaries).
"""

__version__ = "0.1.0"
