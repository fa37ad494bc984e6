"""Guards' bounds: whether a candidate passed a guard, and how a failing guard takes a keep away."""

from __future__ import annotations

import dataclasses
from typing import Sequence

from ratchet.config import GuardSection
from ratchet.experiment import GuardResult, Verdict
from ratchet.measure.parse import MetricParseError, parse_number
from ratchet.measure.runner import CommandResult
from ratchet.verdict.decision import Decision
from ratchet.verdict.stats import improvement


def guarded(decision: Decision, guards: Sequence[GuardResult], overrulable: set[str] = set()) -> Decision:
    """The metric's decision, taken away by a failing guard (the guards never re-judge the metric:
    a keep decided on a re-measured champion stands against it, not against a recorded score).
    Guards in ``overrulable`` ([review] when) do not discard: the caller holds the keep for review."""
    failed = [guard for guard in guards if not guard.passed and guard.name not in overrulable]
    if decision.verdict is not Verdict.KEEP or not failed:
        return decision
    names = ", ".join(f"{guard.name} ({guard.reason})" for guard in failed)
    return Decision(Verdict.DISCARD, f"{decision.reason}, but guard failed: {names}")


# How much of a failing guard's output is kept with its result (the full logs stay on disk).
GUARD_TAIL_BYTES = 1500


def evaluate_guard(spec: GuardSection, result: CommandResult | None, champion_value: float | None) -> GuardResult:
    """Did the candidate pass this guard? ``result`` None means it never ran (an earlier one failed)."""
    found = _evaluate_guard(spec, result, champion_value)
    if found.passed or result is None:
        return found
    return dataclasses.replace(found, output_tail=result.log_tail(GUARD_TAIL_BYTES))  # read from disk when asked for


def _evaluate_guard(spec: GuardSection, result: CommandResult | None, champion_value: float | None) -> GuardResult:
    if result is None:
        return GuardResult(spec.name, passed=False, exit_code=None, reason="not run", skipped=True)
    if result.timed_out:
        return GuardResult(spec.name, passed=False, exit_code=None, reason="timed out")
    if result.interrupted:
        return GuardResult(spec.name, passed=False, exit_code=None, reason="interrupted")
    if not result.ok:
        # The hint (a variable the allowlist dropped, a path the sandbox hides) says what the exit code cannot.
        hint = f"; {result.hint}" if result.hint else ""
        return GuardResult(spec.name, passed=False, exit_code=result.exit_code, reason=f"exit {result.exit_code}{hint}")
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
