"""The run's random streams, named: every use of ``seed`` draws from a stream of its own,
``numpy.random.default_rng([seed, stream])``, so adding a use never moves another's draws.

Row sampling (``retrieval.sampling.row_rng``) takes ``[seed, row number]``, one stream per input row, so a row's
negatives depend on neither batching nor order. The probe's streams use fixed numbers that a row number can also
be (row 15's sampling stream is the hold-out's): the draws serve unrelated choices, so sharing a stream biases
neither, and the numbers are kept because changing them would change every probe's split and student.
"""

import numpy as np

HOLDOUT = 15  # the order in which groups of linked rows go to the probe's dev set
DISTRACTORS = 16  # the pool passages drawn as the dev set's distractors
STUDENT_NEGATIVES = 18  # which of a row's negatives the probe's student trains on, when it has more
REPORT_ROWS = 19  # the mined rows report.html shows


def stream(seed: int, name: int) -> np.random.Generator:
    """The generator of stream ``name`` (one of the constants above) under the run's ``seed``."""
    return np.random.default_rng([seed, name])


def row_stream(seed: int, row_number: int) -> np.random.Generator:
    """Input row ``row_number``'s own generator (its negatives' sampling and random fills)."""
    return np.random.default_rng([seed, row_number])
