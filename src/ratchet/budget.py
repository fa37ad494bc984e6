"""The budget: when the loop stops. Checked before each experiment starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only named: `ratchet status` prints hms() without the config's models
    from ratchet.config import BudgetSection


@dataclass
class Progress:
    """What the loop has spent and reached so far (across resumed sessions)."""

    measured: int  # experiments with a verdict, baseline and abandoned ones excluded
    wall_spent: float  # seconds, all sessions of the run
    champion_metric: float | None
    consecutive_failures: int
    tokens_spent: int = 0
    cost_spent: float = 0.0


@dataclass(frozen=True)
class Stop:
    """Why a run stops: a budget spent or the target reached (fine), or failures in a row."""

    reason: str
    failed: bool


class Budget:
    def __init__(self, section: BudgetSection, direction: str, iterations: int | None = None) -> None:
        self.section = section
        self.direction = direction
        # `ratchet run --iterations N` overrides the config's number.
        self.iterations = iterations if iterations is not None else section.iterations

    def exhausted(self, progress: Progress) -> str | None:
        """Why the loop must stop now, or None to go on."""
        stop = self.stop(progress)
        return stop.reason if stop else None

    def stop(self, progress: Progress) -> "Stop | None":
        """Why the loop must stop now (and whether that is a failure), or None to go on."""
        reason = self._spent(progress)
        if reason:
            return Stop(reason, failed=False)
        limit = self.section.max_consecutive_crashes
        if limit is not None and progress.consecutive_failures >= limit:
            reason = f"{progress.consecutive_failures} experiments in a row crashed or failed; see `ratchet show` for the last one"
            return Stop(reason, failed=True)
        return None

    def _spent(self, progress: Progress) -> str | None:
        if self.iterations is not None and progress.measured >= self.iterations:
            return f"iteration budget spent ({progress.measured}/{self.iterations})"
        if self.section.wall is not None and progress.wall_spent >= self.section.wall:
            return f"wall-time budget spent ({_hms(progress.wall_spent)} of {_hms(self.section.wall)})"
        target = self.section.target
        if target is not None and progress.champion_metric is not None:
            reached = progress.champion_metric <= target if self.direction == "minimize" else progress.champion_metric >= target
            if reached:
                return f"target reached ({progress.champion_metric:.6g}, target {target:g})"
        if self.section.tokens is not None and progress.tokens_spent >= self.section.tokens:
            return f"token budget spent ({progress.tokens_spent} of {self.section.tokens})"
        if self.section.cost_usd is not None and progress.cost_spent >= self.section.cost_usd:
            return f"money budget spent (${progress.cost_spent:.4f} of ${self.section.cost_usd:g})"
        return None

    def iterations_left(self, progress: Progress) -> int | None:
        return None if self.iterations is None else max(0, self.iterations - progress.measured)

    def tokens_left(self, progress: Progress) -> int | None:
        return None if self.section.tokens is None else max(0, self.section.tokens - progress.tokens_spent)

    def cost_left(self, progress: Progress) -> float | None:
        return None if self.section.cost_usd is None else max(0.0, self.section.cost_usd - progress.cost_spent)

    def wall_left(self, progress: Progress) -> float | None:
        return None if self.section.wall is None else max(0.0, self.section.wall - progress.wall_spent)


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def hms(seconds: float) -> str:
    return _hms(seconds)
