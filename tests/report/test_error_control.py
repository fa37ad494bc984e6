"""What `ratchet show` and the report say of the run-level error control the verdict recorded."""

from __future__ import annotations

import io

from rich.console import Console

from ratchet.experiment import Experiment, Verdict
from ratchet.ledger import RunInfo
from ratchet.report.data import _error_control
from ratchet.report.text import print_experiment, level_line


def _experiment(i: int, verdict: Verdict, level: float | None, control: str = "run") -> Experiment:
    e = Experiment(run="t", id=i, parent_commit="a" * 40, proposer="x", started=0.0, verdict=verdict, state="done")
    if level is not None:
        e.extra.update(test_level=level, error_control=control, e_value=1 / level if verdict is Verdict.KEEP else 0.0)
    return e


def test_show_prints_the_level_each_candidate_was_tested_at():
    kept = _experiment(3, Verdict.KEEP, 0.004)
    assert level_line(kept) == "at level 0.004 (run-level error control (e-LOND)), e-value 250"
    assert level_line(_experiment(4, Verdict.DISCARD, 0.05, "candidate")) == "at level 0.05 (per-candidate alpha)"
    assert level_line(_experiment(5, Verdict.KEEP, None)) is None  # single mode records no level
    out = io.StringIO()
    info = RunInfo("t", 0.0, "a" * 40, "ratchet/t", "loss", "minimize", {})
    print_experiment(Console(file=out, width=200), info, kept, "")
    assert "test:       at level 0.004 (run-level error control (e-LOND)), e-value 250" in out.getvalue()


def test_the_report_estimates_the_false_keep_share_from_the_levels():
    rows = [_experiment(0, Verdict.BASELINE, None)]
    rows += [_experiment(i, Verdict.DISCARD, 0.01) for i in range(1, 9)]
    rows += [_experiment(9, Verdict.KEEP, 0.02), _experiment(10, Verdict.KEEP, 0.02)]
    stat = _error_control(rows)
    assert stat is not None and stat.title == "Error control"
    # (8 × 0.01 + 2 × 0.02) / 2 keeps = 6%
    assert "at most 6.0%" in stat.summary and ("est. false-keep share", "6.0%") in stat.values
    assert ("error control", "run-level (e-LOND)") in stat.values
    assert _error_control(rows[:1]) is None  # no test recorded a level: nothing to estimate
    no_keep = _error_control(rows[:5])
    assert no_keep is not None and "No keep yet among 4 tests" in no_keep.summary
