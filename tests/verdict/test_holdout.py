"""The holdout: its regression bound, and the one redaction of it for proposers."""

from __future__ import annotations

import pytest

from ratchet.config import Effect, HoldoutSection
from ratchet.experiment import Experiment, Verdict
from ratchet.verdict import holdout_regressed, redact_for_proposer


def experiment(verdict: Verdict, reason: str, **extra: object) -> Experiment:
    return Experiment(run="t", id=3, parent_commit="0" * 40, proposer="test", started=0.0, verdict=verdict, reason=reason, extra=dict(extra))


def test_holdout_regressed_beyond_its_bound_only():
    spec = HoldoutSection(command="true", direction="minimize", max_regression=Effect(value=1.0, relative=True))
    assert holdout_regressed(spec, 90.0, 90.5) is None  # 0.56% worse: within 1%
    assert holdout_regressed(spec, 90.0, 89.0) is None  # better
    assert holdout_regressed(spec, 90.0, 93.0) == "holdout got worse: 93 vs champion's 90 (allowed 1%)"


@pytest.mark.parametrize(
    ("verdict", "reason", "kept"),
    [
        # The loop's three holdout suffixes: overfit, flagged, failed.
        (Verdict.OVERFIT, "better: 7 vs champion 10 (-30.00%), but holdout got worse: 93 vs champion's 90 (allowed 1%)",
         "better: 7 vs champion 10 (-30.00%), but "),
        (Verdict.KEEP, "better: 7 vs champion 10 (-30.00%); FLAGGED overfit: holdout got worse: 93 vs champion's 90 (allowed 1%)",
         "better: 7 vs champion 10 (-30.00%), but "),
        (Verdict.DISCARD, "medians of 5: better: 7 vs champion 10 (-30.00%), but the holdout failed: exit 3; no such file 93.txt",
         "medians of 5: better: 7 vs champion 10 (-30.00%), but "),
        # A reason that opens with the holdout (``ratchet probe``'s), and an overfit verdict that does not name it.
        (Verdict.DISCARD, "the holdout failed: exit 1", "A check the proposer cannot see"),
        (Verdict.OVERFIT, "93 vs 90", "A check the proposer cannot see"),
    ],
)  # fmt: skip
def test_the_proposer_never_sees_the_holdout(verdict: Verdict, reason: str, kept: str):
    seen = redact_for_proposer(experiment(verdict, reason, holdout=93.0, overfit=True, holdout_samples=[93.0], p_value=0.01))
    assert seen.reason.startswith(kept), seen.reason
    assert "holdout" not in seen.reason.lower() and "overfit" not in seen.reason.lower() and "93" not in seen.reason
    assert "hidden from proposers" in seen.reason  # the agent is told a check it cannot see said no
    assert seen.extra == {"p_value": 0.01}
    assert seen.verdict is verdict


def test_an_experiment_without_a_holdout_is_shown_as_it_is():
    plain = experiment(Verdict.DISCARD, "not better: 12 vs champion 10 (+20.00%), but guard failed: tests (exit 1)", p_value=0.5)
    assert redact_for_proposer(plain) is plain
    original = experiment(Verdict.OVERFIT, "better: 7, but holdout got worse: 93", holdout=93.0, overfit=True)
    redact_for_proposer(original)
    assert original.extra == {"holdout": 93.0, "overfit": True} and "93" in original.reason  # a copy: the ledger's row is untouched
