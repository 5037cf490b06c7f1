"""``step=mine``: hard negatives for each training row, from a window of ranks and similarities.

The rules (docs/mining.md): the corpus is the candidate pool, or every ``pos`` and ``neg`` of the input,
deduplicated in first-seen order; search the top ``B`` passages of each query; keep ranks ``[A, B)``; drop passages
equal to a positive or to the query; keep those within ``similarity_range`` and under the margins; optionally drop
what the teacher scores too close to the positive; sample ``negative_number`` of them, seeded per row; fill a short
row with random passages that are neither positives, nor the query, nor chosen already.

Where each part lives: ``step`` (the run, read as its phases), ``load`` (rows, pool, blocks), ``prepare`` (what
every block shares, the claims), ``block`` (one block: encode -> search -> rank -> qualify -> denoise -> select),
``retrieve`` (the search of a block), ``tally`` and ``summary`` (the figures), ``write`` (the output files),
``shards`` (shards, resume, and the parts ``step=merge`` joins), ``records`` (what the phases hand each other).

Memory does not grow with the pool: its texts are an Arrow file (``io.pool``), its embeddings chunks on disk
(``cache.embeddings.PoolEmbeddings``) that the exact search reads one at a time, and the output is written row by
row (docs/scaling.md, "Large pools"). Nor does it grow with the rows beyond a few bytes per row and negative: the
input rows stay on disk and are read again a block at a time (``io.rowstore``), and what every block needs of all
of them (``Placement``, the claims) is arrays and numbers (docs/scaling.md, "Large training sets").
"""

from prep.steps.mine.load import load, query_blocks
from prep.steps.mine.records import Mining
from prep.steps.mine.shards import row_block
from prep.steps.mine.step import run

__all__ = ["Mining", "load", "query_blocks", "row_block", "run"]
