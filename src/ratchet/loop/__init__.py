"""The loop: one experiment after another until the budget ends, and ``ratchet try``'s one.

``run`` is the facade (open, resume, run, try, summary); the steps it orders live beside it:
``resume`` (open, check, repair), ``baseline`` (experiment 0), ``noise`` (calibration and the
confirmation race), ``experiment`` (one experiment as a state machine), ``measurement`` (samples,
guards, holdout, the verdict), ``rework``, ``context`` (what a proposer is shown), ``state``.
"""

from ratchet.events import (
    EXIT_CONFIG,
    EXIT_DONE,
    EXIT_ERROR,
    EXIT_FAILURES,
    EXIT_INTERRUPTED,
    RunSummary,
)
from ratchet.loop.run import Loop
from ratchet.state import RunError, run_lock, run_lock_holder

__all__ = [
    "EXIT_CONFIG", "EXIT_DONE", "EXIT_ERROR", "EXIT_FAILURES", "EXIT_INTERRUPTED", "Loop", "RunError", "RunSummary",
    "run_lock", "run_lock_holder",
]  # fmt: skip
