"""The one meaning of ``min_effect``: on which scale a difference is taken, and how big it must be.

A *difference* is "how much better the candidate is than the champion" (positive = better), in the
metric's units or, on a log scale, as a log ratio (a relative ``min_effect`` on positive values).
"""

from __future__ import annotations

import math

from ratchet.verdict.stats import improvement as improvement


def relative_change(champion: float, candidate: float) -> float | None:
    """(candidate - champion) / |champion|, or None at zero."""
    return None if champion == 0 else (candidate - champion) / abs(champion)
