"""The holdout: a metric the proposer never sees, judged on would-be keeps to catch overfitting.

Its values live in an experiment's ``extra`` ("holdout", "overfit") and in the reasons of the
verdicts it changed; ``redact_for_proposer`` is the one place that cuts them out of what a
proposer, an agent or its tools are shown.
"""

from __future__ import annotations

import dataclasses

from ratchet.config import HoldoutSection
from ratchet.experiment import Experiment, Verdict
from ratchet.verdict.stats import improvement

# What stands in a reason where the holdout's part was cut. It names no holdout (a proposer told
# "holdout" learns which check exists) and says enough for a person reading an agent's transcript.
HIDDEN = "a check the proposer cannot see failed (its details are hidden from proposers)"
# The extra keys the holdout writes (any other key naming it is cut too).
HOLDOUT_KEYS = ("holdout", "overfit")
# Words that start the holdout's part of a reason: the loop appends ", but holdout got worse ...",
# "; FLAGGED overfit: ..." and ", but the holdout failed: ...".
_MENTIONS = ("holdout", "overfit")
_SEPARATORS = (", but", "; ")


def holdout_regressed(spec: HoldoutSection, champion: float, candidate: float) -> str | None:
    """Why the holdout says the candidate overfits (worse beyond its bound), or None."""
    worse_by = -improvement(spec.direction, champion, candidate)
    allowed = spec.max_regression.amount(champion)
    if worse_by > allowed:
        return f"holdout got worse: {candidate:.6g} vs champion's {champion:.6g} (allowed {spec.max_regression})"
    return None


def _is_holdout_key(key: str) -> bool:
    return key in HOLDOUT_KEYS or "holdout" in key.lower()


def _redacted_reason(experiment: Experiment) -> str:
    reason = experiment.reason
    lowered = reason.lower()
    hits = [at for at in (lowered.find(word) for word in _MENTIONS) if at >= 0]
    if not hits and experiment.verdict is not Verdict.OVERFIT:
        return reason
    # The holdout's part is appended last, after the metric's own reason: cut from the separator
    # that introduces the first mention (or everything, when the reason opens with it).
    head = reason[: min(hits)] if hits else reason
    cut = max(head.rfind(separator) for separator in _SEPARATORS)
    kept = head[:cut] if cut > 0 else ""
    return f"{kept}, but {HIDDEN}" if kept else HIDDEN[0].upper() + HIDDEN[1:]


def redact_for_proposer(experiment: Experiment) -> Experiment:
    """The experiment as a proposer may see it: no holdout values, no reason that quotes them.

    The trust model's rule "the proposer never sees the holdout", written once: the loop's history
    for proposers, ``ratchet try``'s report and the MCP tools all go through here.
    """
    extra = {key: value for key, value in experiment.extra.items() if not _is_holdout_key(key)}
    reason = _redacted_reason(experiment)
    if reason == experiment.reason and len(extra) == len(experiment.extra):
        return experiment
    return dataclasses.replace(experiment, extra=extra, reason=reason)
