"""Disk and memory per experiment: no empty log files, output tails read from disk (or the ledger) when asked for."""

from __future__ import annotations

import os
from pathlib import Path

from typing import Callable

from conftest import NUMBER_CONFIG, Scripted, number
from rich.console import Console

from ratchet import Ledger, Loop, Proposal, ProposalContext, Verdict
from ratchet.config import load_config
from ratchet.experiment import Experiment
from ratchet.proposers._context import last_failure
from ratchet.report.terminal import Display


def run_loop(repo: Path, proposals: list, iterations: int) -> list[Experiment]:
    display = Display(Console(file=open(os.devnull, "w")))
    Loop(repo, load_config(repo / "ratchet.toml"), proposer=Scripted(proposals), iterations=iterations, observer=display).run()
    ledger = Ledger(repo / ".ratchet" / "ledger.sqlite")
    try:
        return ledger.experiments("t")
    finally:
        ledger.close()


def holds_text(experiment: Experiment) -> bool:
    """The experiment keeps its output tail as text in memory (not where to read it)."""
    return isinstance(vars(experiment).get("_output_tail", ""), str) and bool(vars(experiment).get("_output_tail"))


CRASH = Proposal(hypothesis="not a number", edits={"value.txt": "oops\n"})


def test_no_empty_log_files_and_the_ledger_keeps_every_tail(number_repo):
    repo = number_repo()
    experiments = run_loop(repo, [number(12, "worse"), CRASH, number(7, "better")], 3)
    assert [e.verdict for e in experiments] == [Verdict.BASELINE, Verdict.DISCARD, Verdict.CRASH, Verdict.KEEP]
    logs = [p for p in (repo / ".ratchet" / "runs").rglob("*") if p.suffix in (".stdout", ".stderr")]
    assert logs and [p for p in logs if p.stat().st_size == 0] == []
    # The metric prints on stdout only: no stderr log, except the crash's traceback.
    assert not (Path(experiments[1].log_dir) / "metric.stderr").exists()
    assert "ValueError" in (Path(experiments[2].log_dir) / "metric.stderr").read_text()
    # The ledger stores each tail as before (what `show`, the report and resume read).
    assert "metric: 12.0" in experiments[1].output_tail and "metric: 7.0" in experiments[3].output_tail
    assert "--- stderr ---" in experiments[2].output_tail and "ValueError" in experiments[2].output_tail


def test_the_loops_history_reads_tails_from_disk(number_repo):
    repo = number_repo()
    seen: dict[str, object] = {}

    def look(context: ProposalContext) -> Proposal:
        discard, crash = context.history[1], context.history[2]
        seen["held"] = [e.id for e in context.history if holds_text(e)]
        seen["discard"] = discard.output_tail
        seen["failure"] = last_failure(context.history, 2000)
        (Path(discard.log_dir) / "metric.stdout").unlink()  # read when asked for: now there is nothing
        seen["gone"] = discard.output_tail
        assert crash.verdict is Verdict.CRASH
        return number(9, "after looking")

    run_loop(repo, [number(12, "worse"), CRASH, look], 3)
    assert seen["held"] == []
    assert seen["discard"] == "--- stdout ---\nmetric: 12.0"
    failure = seen["failure"]
    assert isinstance(failure, dict) and failure["id"] == 2 and "ValueError" in failure["tail"]
    assert seen["gone"] == ""


def test_a_resumed_runs_history_reads_tails_from_the_ledger(number_repo):
    repo = number_repo()
    run_loop(repo, [number(12, "worse"), CRASH], 2)
    seen: dict[str, object] = {}

    def look(context: ProposalContext) -> Proposal:
        seen["held"] = [e.id for e in context.history if holds_text(e)]
        seen["failure"] = last_failure(context.history, 2000)
        seen["discard"] = context.history[1].output_tail
        return number(9, "after resuming")

    experiments = run_loop(repo, [look], 3)
    assert experiments[-1].verdict is Verdict.KEEP
    assert seen["held"] == []
    assert seen["discard"] == experiments[1].output_tail == "--- stdout ---\nmetric: 12.0"
    failure = seen["failure"]
    assert isinstance(failure, dict) and failure["id"] == 2 and "ValueError" in failure["tail"]


GUARD = """
[[guards]]
name = "big-enough"
command = "{python} -c \\"import sys; v = float(open('value.txt').read()); print('value', v, 'is too small'); sys.exit(v < 8)\\""
"""


def test_a_failing_guards_tail_is_read_from_disk_and_kept_in_the_ledger(number_repo):
    from conftest import NUMBER_CONFIG

    repo = number_repo(NUMBER_CONFIG + GUARD)
    seen: dict[str, object] = {}

    def look(context: ProposalContext) -> Proposal:
        (guard,) = context.history[-1].guards
        seen["held"] = isinstance(vars(guard).get("_output_tail"), str)
        seen["tail"] = guard.output_tail
        seen["feedback"] = guard.failure_text()
        return number(9, "big enough")

    experiments = run_loop(repo, [number(7, "too small"), look], 2)
    assert [e.verdict for e in experiments] == [Verdict.BASELINE, Verdict.DISCARD, Verdict.KEEP]
    assert seen["held"] is False
    assert seen["tail"] == "--- stdout ---\nvalue 7.0 is too small"
    assert "guard big-enough failed" in str(seen["feedback"]) and "    value 7.0 is too small" in str(seen["feedback"])
    (guard,) = experiments[1].guards  # the ledger's row keeps the text
    assert not guard.passed and guard.output_tail == "--- stdout ---\nvalue 7.0 is too small"


HOLDOUT_CONFIG = NUMBER_CONFIG.replace(
    "[budget]",
    "[holdout]\ncommand = \"{python} -c \\\"print(123456.75 - float(open('value.txt').read()))\\\"\"\n"
    "last_number = true\ndirection = \"minimize\"\n[budget]",
)


def test_each_context_shows_the_whole_history_redacted_once_per_experiment(number_repo, monkeypatch):
    # The history a proposer is shown is built entry by entry across contexts (each experiment
    # redacted once): every context still holds every experiment so far, without the holdout.
    import ratchet.loop.context as context_module

    redacted: list[int] = []
    real = context_module.redact_for_proposer

    def counted(experiment: Experiment) -> Experiment:
        redacted.append(experiment.id)
        return real(experiment)

    monkeypatch.setattr(context_module, "redact_for_proposer", counted)
    seen: list[tuple[tuple[int, ...], str]] = []

    def propose(value: float) -> Callable[[ProposalContext], Proposal]:
        def make(context: ProposalContext) -> Proposal:
            seen.append((tuple(e.id for e in context.history), repr(context.history)))
            return number(value)

        return make

    repo = number_repo(HOLDOUT_CONFIG)
    experiments = run_loop(repo, [propose(v) for v in (12, 7, 30, 5, 40, 3)], 6)
    assert [ids for ids, _ in seen] == [tuple(e.id for e in experiments[:n]) for n in range(1, 7)]
    assert all("123446" not in text and "holdout" not in text for _, text in seen)
    # Each finished experiment was redacted once, not once per later context (the calibration's
    # A/A experiments are in the history as well).
    assert sorted(redacted) == sorted(set(redacted)) and len(redacted) <= len(experiments)
