"""commands/analysis.py and the one champion rule: what calibrate and ablate measure, and how calibrate reports it."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import NUMBER_CONFIG, make_repo, sh

from ratchet.commands.analysis import (
    AnalysisError,
    Calibration,
    calibration_target,
    plan_ablation,
)
from ratchet.config import parse_config
from ratchet.experiment import Experiment, Verdict
from ratchet.ledger import Ledger, RunInfo
from ratchet.verdict.stats import Noise
from ratchet.workspace.git import GitError, run_champion


def _side_commit(repo: Path) -> str:
    """A commit on top of HEAD that HEAD does not move to (as a keep on the run branch is)."""
    return sh(repo, "git", "commit-tree", "HEAD^{tree}", "-p", "HEAD", "-m", "a keep").strip()


def test_the_champion_is_the_run_branch_tip_else_head(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.txt": "1\n"})
    head = sh(repo, "git", "rev-parse", "HEAD").strip()

    before = run_champion(repo, "t")  # no run yet: it will start from HEAD
    assert (before.commit, before.on_branch, before.where, before.branch) == (head, False, "HEAD", "ratchet/t")
    assert calibration_target(repo, "t").label == "HEAD"

    sh(repo, "git", "branch", "ratchet/t", head)  # the run started; nothing kept yet
    started = run_champion(repo, "t")
    assert (started.commit, started.on_branch, started.where) == (head, True, "the champion of run 't'")
    assert calibration_target(repo, "t").label == "HEAD"  # calibrate names HEAD while the two are one commit

    keep = _side_commit(repo)
    sh(repo, "git", "branch", "-f", "ratchet/t", keep)
    assert run_champion(repo, "t").commit == keep and run_champion(repo, "other").commit == head
    target = calibration_target(repo, "t")
    assert (target.commit, target.head, target.label) == (keep, head, "ratchet/t")


def test_a_repository_without_commits_has_no_champion(tmp_path: Path) -> None:
    repo = tmp_path / "empty"
    repo.mkdir()
    sh(repo, "git", "init", "-q")
    with pytest.raises(GitError, match="has no commit yet"):
        run_champion(repo, "t")


def _ledger(tmp_path: Path, verdicts: list[Verdict | None]) -> tuple[Ledger, RunInfo, Path]:
    repo = make_repo(tmp_path / "r", {"a.txt": "1\n"})
    head = sh(repo, "git", "rev-parse", "HEAD").strip()
    keep = _side_commit(repo)
    sh(repo, "git", "branch", "ratchet/t", keep)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    info = RunInfo("t", time.time(), head, "ratchet/t", "number", "minimize", {})
    ledger.create_run(info)
    for i, verdict in enumerate(verdicts):
        commit = keep if verdict is Verdict.KEEP else None
        ledger.begin(Experiment("t", i, head, "command", time.time(), verdict=verdict, hypothesis=f"h{i}", commit=commit))
    return ledger, info, repo


def test_ablation_plans_the_kept_experiments_against_the_branch_tip(tmp_path: Path) -> None:
    ledger, info, repo = _ledger(tmp_path, [Verdict.BASELINE, Verdict.DISCARD, Verdict.KEEP, None])
    plan = plan_ablation(repo, ledger, info)
    ledger.close()
    assert plan.champion == sh(repo, "git", "rev-parse", "ratchet/t").strip()
    assert [e.id for e in plan.kept] == [2] and (plan.run, plan.base_commit) == ("t", info.base_commit)


def test_ablation_without_a_keep_says_so(tmp_path: Path) -> None:
    ledger, info, repo = _ledger(tmp_path, [Verdict.BASELINE, Verdict.DISCARD])
    with pytest.raises(AnalysisError, match="run 't' has no kept experiment to ablate"):
        plan_ablation(repo, ledger, info)
    ledger.close()


CONFIG = parse_config(textwrap.dedent(NUMBER_CONFIG).replace("{python}", sys.executable) + "[verdict]\nmax_pairs = 8\n")


def test_calibration_lines_deterministic() -> None:
    result = Calibration(Noise(4, 0.0, 0.0, 7.0, False), "c" * 40, 0.0, None, None)
    assert result.lines(CONFIG, 4, 0.8, None) == [
        "The metric is deterministic (all 8 measurements gave 7): one measurement decides; any min_effect works."
    ]


def test_calibration_lines_on_the_metric_scale_with_an_effect_beyond_max_pairs() -> None:
    result = Calibration(Noise(6, 0.5, 0.7071, 10.0, False), "c" * 40, 1.2, 20, 1.0)
    lines = result.lines(CONFIG, 6, 0.8, "1")
    assert lines[0] == "noise: one measurement sd 0.5 number (5.00% of the metric); one paired comparison sd 0.7071"
    assert lines[1].startswith("recommended: min_effect = 1.2 (under [verdict]) — the smallest effect `sequential` with max_pairs = 8")
    assert lines[1].endswith("keeps with probability 80% at alpha = 0.05")
    assert lines[2] == "to detect 1 with power 80%: 20 pairs; this run stops at max_pairs = 8: raise it to 20 to resolve it"


def test_calibration_lines_on_a_log_scale_read_as_percentages() -> None:
    result = Calibration(Noise(6, 0.1, 0.1414, 1.0, True), "c" * 40, 0.2, None, 0.3)
    lines = result.lines(CONFIG, 6, 0.9, "30%")
    assert lines[0] == "noise: one measurement sd 10.52% of the metric; one paired comparison sd 15.19%"
    assert 'min_effect = "' in lines[1] and "log-ratio" not in "\n".join(lines)
    assert lines[2] == "to detect 30% with power 90%: more than 50 pairs (raise the effect or lower the noise)"
