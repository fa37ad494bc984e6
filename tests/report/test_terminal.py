"""The live panel of ``ratchet run`` on a terminal: the sparkline of the running best, the last verdicts."""

from __future__ import annotations

import io
import time

from rich.console import Console

from ratchet.experiment import Experiment, Verdict
from ratchet.report.terminal import RECENT_VERDICTS, LiveDisplay, sparkline


def test_sparkline_scales_between_lowest_and_highest():
    assert sparkline([]) == ""
    assert sparkline([3.0, 3.0]) == "▁▁"
    assert sparkline([10.0, 5.0, 0.0]) == "█▅▁"
    line = sparkline([float(v) for v in range(100)], width=20)
    assert len(line) == 20 and line[0] == "▁" and line[-1] == "█"
    assert list(line) == sorted(line)  # a rising series never dips


def experiment(i: int, verdict: Verdict, metric: float | None) -> Experiment:
    return Experiment(run="r", id=i, parent_commit="0" * 40, proposer="test", started=time.time(), state="done",
                      verdict=verdict, metric=metric, hypothesis=f"h{i}")  # fmt: skip


def test_live_panel_shows_the_trend_and_last_verdicts():
    console = Console(file=io.StringIO(), force_terminal=True, width=120, color_system=None)
    display = LiveDisplay(console)
    try:
        display.experiment_done(experiment(0, Verdict.BASELINE, 10.0))
        verdicts = [(Verdict.KEEP, 8.0), (Verdict.DISCARD, 9.0), (Verdict.CRASH, None), (Verdict.KEEP, 2.0)]
        verdicts += [(Verdict.DISCARD, 5.0)] * RECENT_VERDICTS  # the oldest ones scroll out
        for i, (verdict, metric) in enumerate(verdicts, start=1):
            display.experiment_done(experiment(i, verdict, metric))
        assert display.best_history == [10.0, 8.0, 8.0, 8.0, 2.0] + [2.0] * RECENT_VERDICTS
        recorder = Console(file=io.StringIO(), width=120, color_system=None)
        recorder.print(display)
        panel = recorder.file.getvalue()  # type: ignore[attr-defined]
    finally:
        display.close()
    best = next(line for line in panel.splitlines() if "best so far" in line)
    assert "█▆▆▆▁" in best and "10 → 2" in best
    last = next(line for line in panel.splitlines() if " last " in line)
    assert last.count("discard") == RECENT_VERDICTS and "keep" not in last and "crash" not in last


def test_a_resumed_run_starts_its_trend_at_the_champion():
    from ratchet.budget import Budget, Progress
    from ratchet.config import BudgetSection

    console = Console(file=io.StringIO(), force_terminal=True, width=120, color_system=None)
    display = LiveDisplay(console)
    try:
        display.progress(Progress(measured=5, wall_spent=1.0, champion_metric=4.0, consecutive_failures=0),
                         Budget(BudgetSection(), "minimize"), 10.0, 4.0)  # fmt: skip
        display.experiment_done(experiment(6, Verdict.KEEP, 3.0))
    finally:
        display.close()
    assert display.best_history == [4.0, 3.0]
