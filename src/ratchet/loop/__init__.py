"""The loop: one experiment after another until the budget ends, and ``ratchet try``'s one.

``run`` is the facade (open, resume, run, try, summary); the steps it orders live beside it.
"""

from ratchet.loop.run import (
    EXIT_CONFIG,
    EXIT_DONE,
    EXIT_ERROR,
    EXIT_FAILURES,
    EXIT_INTERRUPTED,
    Loop,
    RunSummary,
)
from ratchet.state import RunError, run_lock, run_lock_holder

__all__ = [
    "EXIT_CONFIG", "EXIT_DONE", "EXIT_ERROR", "EXIT_FAILURES", "EXIT_INTERRUPTED", "Loop", "RunError", "RunSummary",
    "run_lock", "run_lock_holder",
]  # fmt: skip
