"""The keep/discard decision. Trusted code: it only sees numbers the harness measured."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Sequence

from ratchet.config import Effect, GuardSection, VerdictSection
from ratchet.experiment import GuardResult, Verdict
from ratchet.measure import CommandResult, MetricParseError, parse_number


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str


def improvement(direction: str, champion: float, candidate: float) -> float:
    """How much better the candidate is, in the metric's units (positive = better)."""
    return champion - candidate if direction == "minimize" else candidate - champion


def relative_change(champion: float, candidate: float) -> float | None:
    """(candidate - champion) / |champion|, or None at zero."""
    return None if champion == 0 else (candidate - champion) / abs(champion)


class VerdictPolicy(abc.ABC):
    """Decides whether a measured candidate beats the champion. Swappable per ``verdict.mode``."""

    @abc.abstractmethod
    def would_keep(self, champion: float, candidate: float) -> Decision:
        """The metric alone: KEEP when better enough, else DISCARD (guards come after)."""

    def decide(self, champion: float, candidate: float, guards: Sequence[GuardResult]) -> Decision:
        decision = self.would_keep(champion, candidate)
        if decision.verdict is not Verdict.KEEP:
            return decision
        failed = [guard for guard in guards if not guard.passed]
        if failed:
            names = ", ".join(f"{guard.name} ({guard.reason})" for guard in failed)
            return Decision(Verdict.DISCARD, f"{decision.reason}, but guard failed: {names}")
        return decision


class SingleMeasurement(VerdictPolicy):
    """Keep when one measurement beats the champion's by more than ``min_effect``."""

    def __init__(self, direction: str, min_effect: Effect) -> None:
        self.direction = direction
        self.min_effect = min_effect

    def would_keep(self, champion: float, candidate: float) -> Decision:
        gain = improvement(self.direction, champion, candidate)
        needed = self.min_effect.amount(champion)
        change = relative_change(champion, candidate)
        shown = f"{candidate:.6g} vs champion {champion:.6g}" + (f" ({change:+.2%})" if change is not None else "")
        if gain > needed:
            return Decision(Verdict.KEEP, f"better: {shown}")
        if gain > 0:
            return Decision(Verdict.DISCARD, f"better by less than min_effect {self.min_effect}: {shown}")
        return Decision(Verdict.DISCARD, f"not better: {shown}")


def policy_for(section: VerdictSection, direction: str) -> VerdictPolicy:
    if section.mode == "single":
        return SingleMeasurement(direction, section.min_effect)
    raise ValueError(f"unknown verdict mode {section.mode!r}")  # pragma: no cover - config validates


def evaluate_guard(spec: GuardSection, result: CommandResult | None, champion_value: float | None) -> GuardResult:
    """Did the candidate pass this guard? ``result`` None means it never ran (an earlier one failed)."""
    if result is None:
        return GuardResult(spec.name, passed=False, exit_code=None, reason="not run", skipped=True)
    if result.timed_out:
        return GuardResult(spec.name, passed=False, exit_code=None, reason="timed out")
    if result.interrupted:
        return GuardResult(spec.name, passed=False, exit_code=None, reason="interrupted")
    if not result.ok:
        return GuardResult(spec.name, passed=False, exit_code=result.exit_code, reason=f"exit {result.exit_code}")
    if not spec.parses_number:
        return GuardResult(spec.name, passed=True, exit_code=0)
    try:
        value = parse_number(result.read(spec.stream), spec)
    except MetricParseError as exc:
        return GuardResult(spec.name, passed=False, exit_code=0, reason=str(exc))
    if spec.min is not None and value < spec.min:
        return GuardResult(spec.name, False, 0, value, f"{value:g} is below the minimum {spec.min:g}")
    if spec.max is not None and value > spec.max:
        return GuardResult(spec.name, False, 0, value, f"{value:g} is above the maximum {spec.max:g}")
    if spec.max_regression is not None and champion_value is not None:
        worse_by = -improvement(spec.direction, champion_value, value)
        allowed = spec.max_regression.amount(champion_value)
        if worse_by > allowed:
            return GuardResult(
                spec.name, False, 0, value,
                f"{value:g} regresses from the champion's {champion_value:g} by more than {spec.max_regression}",
            )  # fmt: skip
    return GuardResult(spec.name, passed=True, exit_code=0, value=value)
