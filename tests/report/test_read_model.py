"""The one read model of a run (report.data) and the agent's view of it (the model minus the holdout)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from conftest import NUMBER_CONFIG, make_repo, sh

from ratchet.config import load_config
from ratchet.experiment import Experiment, Verdict
from ratchet.ledger import Ledger, RunInfo
from ratchet.report.agent_view import AgentRow, AgentView, agent_status, detail, rows
from ratchet.report.data import experiment_diff, experiment_rows, run_view

# Digits no timestamp or sha carries: the holdout's champion and candidate.
HOLDOUT_CHAMPION, HOLDOUT_CANDIDATE = 123446.75, 123449.75


def _repo_with_ledger(tmp_path: Path) -> tuple[Path, Ledger, RunInfo, list[Experiment]]:
    repo = make_repo(tmp_path / "r", {"value.txt": "10\n", "bench.py": "print(1)\n"}, NUMBER_CONFIG.replace("{python}", sys.executable))
    base = sh(repo, "git", "rev-parse", "HEAD").strip()
    sh(repo, "git", "checkout", "-qb", "ratchet/t")
    (repo / "value.txt").write_text("8\n")
    sh(repo, "git", "commit", "-qam", "eight")
    keep = sh(repo, "git", "rev-parse", "HEAD").strip()
    sh(repo, "git", "checkout", "-q", "main")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "proposal.patch").write_text("--- a/value.txt\n+++ b/value.txt\n@@ -1 +1 @@\n-8\n+9\n")
    ledger = Ledger(repo / ".ratchet" / "ledger.sqlite")
    info = RunInfo("t", 1.0, base, "ratchet/t", "number", "minimize", {})
    ledger.create_run(info)
    overfit_reason = (
        f"better by 12.50%, but holdout got worse: {HOLDOUT_CANDIDATE} vs champion's {HOLDOUT_CHAMPION} (allowed 0)"
    )
    experiments = [
        Experiment("t", 0, base, "baseline", 1.0, "done", Verdict.BASELINE, "", "baseline", 10.0,
                   extra={"holdout": HOLDOUT_CHAMPION}),
        Experiment("t", 1, base, "command", 2.0, "done", Verdict.KEEP, "better", "eight", 8.0, keep, ended=3.0),
        Experiment("t", 2, keep, "command", 4.0, "done", Verdict.DISCARD, "not better", "nine", 9.0, log_dir=str(logs),
                   extra={"candidate_samples": [9.0, 9.2, 8.8], "champion_samples": [7.5, 7.4, 7.6]}, ended=5.0),
        Experiment("t", 3, keep, "command", 6.0, "done", Verdict.OVERFIT, overfit_reason, "seven", 7.0,
                   extra={"holdout": HOLDOUT_CANDIDATE, "overfit": True}, ended=7.0),
        Experiment("t", 4, keep, "command", 8.0, "running", None, "", "still measuring"),
    ]  # fmt: skip
    for e in experiments:
        ledger.begin(e)
    return repo, ledger, info, experiments


def test_one_row_per_experiment_serves_every_view(tmp_path: Path) -> None:
    repo, ledger, info, experiments = _repo_with_ledger(tmp_path)
    try:
        view = run_view(repo, ledger, info, diffs=False)
    finally:
        ledger.close()
    assert [row.id for row in view.experiments] == [0, 1, 2, 3, 4]
    baseline, keep, discard, overfit, running = view.experiments
    # The plot's running best and the comparison the verdict made, on the same row.
    assert keep.best == 8.0 and keep.champion == 10.0 and keep.change == "-20.00%" and not keep.champion_remeasured
    assert discard.champion == 7.5 and discard.champion_remeasured and discard.change == "+20.00%" and discard.samples == 3
    assert baseline.champion is None and baseline.change == "" and running.verdict is None and running.best is None
    # People see the holdout in the report.
    assert overfit.holdout == HOLDOUT_CANDIDATE and overfit.overfit
    assert view.champion == 8.0 and view.champion_id == 1 and view.champion_commit == experiments[1].commit
    assert view.counts == {"baseline": 1, "keep": 1, "discard": 1, "overfit": 1, "running": 1}
    assert view.lock_holder is None and not view.active
    assert experiment_rows(experiments) == view.experiments  # the rows are a function of the experiments alone


def test_the_agents_view_is_the_model_without_the_holdout(tmp_path: Path) -> None:
    repo, ledger, info, experiments = _repo_with_ledger(tmp_path)
    try:
        view = run_view(repo, ledger, info, diffs=False)
    finally:
        ledger.close()
    assert not {"holdout", "overfit"} & set(AgentRow.model_fields)
    history = rows(experiments)
    assert [row.id for row in history] == [0, 1, 2, 3]  # the one in flight is not history yet
    assert [(row.champion, row.change) for row in history] == [(r.champion, r.change) for r in view.experiments[:4]]
    status = agent_status(view)
    assert status.counts == {"baseline": 1, "keep": 1, "discard": 1, "overfit": 1} and status.started
    assert status.champion == 8.0 and status.champion_experiment == 1 and status.last is not None and status.last.id == 3
    shown = detail(repo, experiments[3], experiments)
    assert "hidden from proposers" in shown.reason and shown.reason.startswith("better by 12.50%")
    assert "holdout" not in shown.measurement and "overfit" not in shown.measurement
    texts = [status.model_dump_json(), shown.model_dump_json(), json.dumps([row.model_dump() for row in history])]
    texts.append(detail(repo, experiments[0], experiments).model_dump_json())
    for text in texts:
        assert "123446" not in text and "123449" not in text, text


def test_the_diff_of_an_experiment(tmp_path: Path) -> None:
    repo, ledger, info, experiments = _repo_with_ledger(tmp_path)
    ledger.close()
    keep, discard = experiments[1], experiments[2]
    assert "-10\n+8" in experiment_diff(repo, keep)  # a keep: its commit
    assert "-8\n+9" in experiment_diff(repo, discard)  # otherwise what the proposer left beside the logs
    assert experiment_diff(repo, experiments[0]) == ""
    cut = experiment_diff(repo, keep, limit=10)  # the report's limit, on top
    assert cut.startswith(experiment_diff(repo, keep)[:10]) and "diff cut at 10 characters" in cut
    # The agent's `show` gets the whole diff.
    assert detail(repo, discard, experiments).diff == experiment_diff(repo, discard)


def test_an_agent_reads_a_run_before_it_has_a_ledger(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"value.txt": "10\n", "bench.py": "print(1)\n"}, NUMBER_CONFIG.replace("{python}", sys.executable))
    agent = AgentView(repo, load_config(repo / "ratchet.toml"))
    status = agent.status()
    assert (status.run, status.branch, status.metric, status.direction) == ("t", "ratchet/t", "number", "minimize")
    assert not status.started and not status.active and status.experiments == 0 and status.last is None
    assert status.champion is None and status.counts == {} and agent.history() == [] and agent.show(0) is None
    assert not (repo / ".ratchet" / "ledger.sqlite").exists()  # reading writes nothing
