"""prep: hard negatives, teacher scores and length buckets for embedding-model training data.

The package by role: ``config`` (the settings' schema and checks), ``steps`` (one module per step, the
step frame and registry), ``io`` (rows, pools, paths, atomic outputs), ``models`` (embedders, teachers,
device and dtype policy), ``retrieval`` (search and the mining rules), ``cache`` (embeddings, search
results and scores on disk), ``report`` (statistics, plots, sweep summaries); ``api`` is the Python API.
"""

__version__ = "0.1.0"

__all__ = ["Result", "mine", "score", "split"]


def __getattr__(name: str):
    """``prep.mine``, ``prep.score``, ``prep.split`` (``prep.api``), imported on first use so ``import prep`` stays
    light."""
    if name in __all__:
        from prep import api

        return getattr(api, name)
    raise AttributeError(f"module 'prep' has no attribute {name!r}")
