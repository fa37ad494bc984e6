"""What every step of the verdict returns: a verdict and the one line that says why."""

from __future__ import annotations

from dataclasses import dataclass

from ratchet.experiment import Verdict


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str
