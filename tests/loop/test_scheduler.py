"""Several experiments in flight ([run] workers): the pool, the stale champion, the budget, the branch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import Scripted, make_repo, number, sh

from ratchet import Proposal, ProposalContext
from ratchet.config import load_config
from ratchet.experiment import Experiment, Verdict
from ratchet.ledger import LEDGER_FILE, Ledger
from ratchet.loop.run import Loop

# A metric that sleeps: value.txt minus what each of a.txt .. h.txt holds.
BENCH = """\
import pathlib, time
time.sleep(float(pathlib.Path("sleep.txt").read_text()) if pathlib.Path("sleep.txt").exists() else 1.0)
value = float(pathlib.Path("value.txt").read_text())
for name in "abcdefgh":
    path = pathlib.Path(name + ".txt")
    if path.exists():
        value -= float(path.read_text())
print("metric:", value)
"""

CONFIG = r"""
[run]
name = "t"
workers = {workers}
[scope]
mutable = ["value.txt", "?.txt"]
harness = ["bench.py", "sleep.txt"]
[metric]
name = "number"
command = "{python} bench.py"
regex = 'metric: (\S+)'
direction = "minimize"
timeout = "30s"
[verdict]
deterministic = "yes"
calibrate_pairs = 0
confirm_pairs = 0
[budget]
iterations = {iterations}
[proposer]
kind = "command"
command = "true"
"""


def _repo(tmp_path: Path, workers: int, iterations: int, sleep: float = 1.0) -> Path:
    config = CONFIG.format(workers=workers, iterations=iterations, python=sys.executable)
    files = {"value.txt": "10\n", "bench.py": BENCH, "sleep.txt": f"{sleep}\n", "program.md": "Make it small.\n"}
    return make_repo(tmp_path / "repo", files, config)


def _loop(repo: Path, proposer: Scripted, **kwargs: object) -> Loop:
    return Loop(repo, load_config(repo / "ratchet.toml"), proposer=proposer, **kwargs)  # type: ignore[arg-type]


def _experiments(repo: Path) -> list[Experiment]:
    ledger = Ledger(repo / ".ratchet" / LEDGER_FILE)
    try:
        return ledger.experiments("t")
    finally:
        ledger.close()


def check_keeps_against_champions(repo: Path, experiments: list[Experiment]) -> list[str]:
    """The run branch and the ledger agree, and every keep was decided against the champion it was
    committed on: the branch's commits are the ledger's keeps, in order, each one's git parent the
    champion its experiment was compared with (``parent_commit``)."""
    base = next(e for e in experiments if e.verdict is Verdict.BASELINE).parent_commit
    commits = sh(repo, "git", "rev-list", "--first-parent", "--reverse", f"{base}..ratchet/t").split()
    keeps = {e.commit: e for e in experiments if e.verdict is Verdict.KEEP}
    assert set(commits) == set(keeps), "the branch's commits are exactly the ledger's keeps"
    champion = base
    for commit in commits:
        experiment = keeps[commit]
        assert sh(repo, "git", "rev-parse", f"{commit}^").strip() == champion
        assert experiment.parent_commit == champion, f"#{experiment.id} was compared with another champion"
        champion = commit
    return commits


def test_four_workers_keep_experiments_in_flight_and_the_branch_agrees_with_the_ledger(tmp_path: Path) -> None:
    repo = _repo(tmp_path, workers=4, iterations=8)
    # Eight independent improvements, each its own file: every one a keep, most measured while others are.
    proposer = Scripted([Proposal(f"lower by {name}", edits={f"{name}.txt": "1\n"}) for name in "abcdefgh"])
    summary = _loop(repo, proposer).run()
    assert summary.exit_code == 0, summary.stop_reason
    experiments = _experiments(repo)
    measured = [e for e in experiments if e.verdict is not Verdict.BASELINE]
    assert len(measured) == 8 and all(e.verdict is Verdict.KEEP for e in measured), [(e.id, e.verdict, e.reason) for e in measured]
    # Up to four at once: the most experiments whose [started, ended] overlap.
    moments = sorted([(e.started, 1) for e in measured] + [(e.ended or 0.0, -1) for e in measured])
    running = most = 0
    for _, step in moments:
        running += step
        most = max(most, running)
    assert 2 <= most <= 4
    assert {e.extra["worker"] for e in measured} <= {0, 1, 2, 3} and len({e.extra["worker"] for e in measured}) >= 2
    commits = check_keeps_against_champions(repo, experiments)
    assert len(commits) == 8
    # Candidates measured on a champion that moved were re-applied and measured again against the new one.
    rebased = [e for e in measured if e.extra.get("rebased")]
    assert rebased, "with four in flight, some keep must have found its champion moved"
    for experiment in rebased:
        first = experiment.extra["rebased"][0]
        assert first["from"] == experiment.extra["built_on"] and experiment.parent_commit != experiment.extra["built_on"]
        assert experiment.metric is not None and experiment.metric < first["metric"]  # measured again, on more improvements
    assert (repo / "b.txt").exists() is False  # the user's checkout is untouched
    assert float(sh(repo, "git", "show", "ratchet/t:value.txt")) == 10.0
    # The run's own worktree is at the branch tip again, clean (the next run or `try` starts there).
    worktree = repo / ".ratchet" / "worktrees" / "t"
    assert sh(worktree, "git", "status", "--porcelain") == ""
    assert sorted(p.name for p in worktree.glob("?.txt")) == [f"{name}.txt" for name in "abcdefgh"]


def test_a_keep_whose_champion_moved_and_no_longer_applies_is_stale(tmp_path: Path) -> None:
    repo = _repo(tmp_path, workers=2, iterations=2)
    # Both patch value.txt on the same champion: whichever is decided second no longer applies.
    patches = [Proposal(f"set {v}", patch=f"--- a/value.txt\n+++ b/value.txt\n@@ -1 +1 @@\n-10\n+{v}\n") for v in (9, 8)]
    summary = _loop(repo, Scripted(list(patches))).run()
    assert summary.exit_code == 0
    measured = [e for e in _experiments(repo) if e.verdict is not Verdict.BASELINE]
    verdicts = sorted(str(e.verdict) for e in measured)
    assert verdicts == ["keep", "stale"], [(e.id, e.verdict, e.reason) for e in measured]
    keep = next(e for e in measured if e.verdict is Verdict.KEEP)
    stale = next(e for e in measured if e.verdict is Verdict.STALE)
    assert "no longer applies" in stale.reason and f"#{keep.id}" in stale.reason
    assert stale.extra["rebased"][0]["to"] == keep.commit
    check_keeps_against_champions(repo, _experiments(repo))


def test_the_iteration_budget_counts_the_experiments_in_flight(tmp_path: Path) -> None:
    repo = _repo(tmp_path, workers=4, iterations=5, sleep=0.3)
    proposer = Scripted([Proposal(f"{name}", edits={f"{name}.txt": "0.5\n"}) for name in "abcdefgh"])
    summary = _loop(repo, proposer).run()
    measured = [e for e in _experiments(repo) if e.verdict is not Verdict.BASELINE]
    assert len(measured) == 5 and "5/5" in summary.stop_reason
    assert len(proposer.proposals) == 3  # never asked for a sixth


class _Watched(Scripted):
    """Records how many of its calls ran at once."""

    def __init__(self, proposals: list[Proposal]) -> None:
        super().__init__(list(proposals))
        self.calls = self.most = 0
        self.lock = threading.Lock()
        self.contexts: list[ProposalContext] = []

    def propose(self, context: ProposalContext) -> Proposal:
        with self.lock:
            self.calls += 1
            self.most = max(self.most, self.calls)
            self.contexts.append(context)
        time.sleep(0.3)  # long enough for the others to try
        try:
            return super().propose(context)
        finally:
            with self.lock:
                self.calls -= 1


def test_a_proposer_that_is_not_concurrent_is_called_one_call_at_a_time_and_told_what_is_in_flight(tmp_path: Path) -> None:
    repo = _repo(tmp_path, workers=3, iterations=4, sleep=0.5)
    proposer = _Watched([Proposal(f"{name}", edits={f"{name}.txt": "1\n"}) for name in "abcd"])
    assert proposer.concurrent is False
    _loop(repo, proposer).run()
    assert proposer.most == 1
    worktrees = {context.worktree for context in proposer.contexts}
    assert len(worktrees) >= 2 and all(path.name.startswith("t.w") for path in worktrees)
    assert any(context.in_flight for context in proposer.contexts)
    assert len(proposer.outcomes) == 4  # told every verdict


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_once_lets_the_experiments_in_flight_finish_twice_abandons_them(tmp_path: Path, presses: int) -> None:
    repo = _repo(tmp_path, workers=2, iterations=20, sleep=2.0 if presses == 1 else 20.0)
    # The command proposer writes a new file per experiment (its own worktree: no conflicts).
    script = repo / "propose.sh"
    script.write_text("#!/bin/sh\necho 0.1 > \"$(echo $RATCHET_EXPERIMENT | tr 0-9 a-j | cut -c1-1).txt\"\n")
    config = (repo / "ratchet.toml").read_text().replace('command = "true"', f'command = "sh {script}"')
    (repo / "ratchet.toml").write_text(config)
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "proposer")
    process = subprocess.Popen([sys.executable, "-m", "ratchet", "run"], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            running = [e for e in _experiments_if_any(repo) if e.state == "running" and e.verdict is None and e.id > 0]
            if len(running) == 2:
                break
            time.sleep(0.2)
        else:
            pytest.fail("two experiments never ran at once")
        process.send_signal(signal.SIGINT)
        if presses == 2:
            time.sleep(0.5)
            process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output
    finished = {e.id: e for e in _experiments(repo)}
    for experiment in running:
        if presses == 1:
            assert finished[experiment.id].verdict not in (None, Verdict.ABANDONED), output
        else:  # their 20 s measurements were killed, not waited for
            assert finished[experiment.id].verdict is Verdict.ABANDONED, output
            assert (finished[experiment.id].ended or 0) - experiment.started < 15
    assert all(e.state == "done" for e in finished.values())


def _experiments_if_any(repo: Path) -> list[Experiment]:
    if not (repo / ".ratchet" / LEDGER_FILE).exists():
        return []
    try:
        return _experiments(repo)
    except Exception:  # the run is creating its tables
        return []


def test_a_killed_driver_leaves_a_run_the_next_run_resumes(tmp_path: Path) -> None:
    repo = _repo(tmp_path, workers=3, iterations=6, sleep=1.5)
    script = repo / "propose.py"
    script.write_text(
        "import os, pathlib\n"
        "name = 'abcdefgh'[int(os.environ.get('RATCHET_EXPERIMENT', '1')) % 8]\n"
        "pathlib.Path(name + '.txt').write_text('0.5\\n')\n"
    )
    config = (repo / "ratchet.toml").read_text().replace('command = "true"', f'command = "{sys.executable} {script}"')
    (repo / "ratchet.toml").write_text(config)
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "proposer")
    process = subprocess.Popen([sys.executable, "-m", "ratchet", "run"], cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and sum(e.state == "running" and e.id > 0 for e in _experiments_if_any(repo)) < 2:
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    in_flight = [e.id for e in _experiments(repo) if e.state != "done"]
    assert len(in_flight) >= 2
    result = subprocess.run([sys.executable, "-m", "ratchet", "run"], cwd=repo, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    experiments = _experiments(repo)
    by_id = {e.id: e for e in experiments}
    for experiment_id in in_flight:
        if by_id[experiment_id].verdict is not Verdict.KEEP:  # a keep committed just before the kill is repaired as a keep
            assert by_id[experiment_id].verdict is Verdict.ABANDONED
    assert all(e.state == "done" for e in experiments)
    assert sum(e.verdict.counts_as_iteration for e in experiments if e.verdict) == 6
    check_keeps_against_champions(repo, experiments)


def test_a_proposal_may_spend_its_share_of_what_is_left_while_others_are_in_flight() -> None:
    from ratchet.loop.context import _share

    others = tuple(Experiment(run="t", id=i, parent_commit="", proposer="x", started=0.0, log_dir="") for i in range(3))
    assert _share(1000, others) == 250 and isinstance(_share(1000, others), int)
    assert _share(2.0, others[:1]) == 1.0
    assert _share(1000, ()) == 1000 and _share(None, others) is None


def test_too_few_devices_for_the_workers_is_one_line_before_the_baseline(tmp_path: Path) -> None:
    from conftest import run_cli

    repo = _repo(tmp_path, workers=1, iterations=2, sleep=0.1)
    (repo / "ratchet.toml").write_text((repo / "ratchet.toml").read_text() + "\n[executor]\ngpus_per_experiment = 1\n")
    sh(repo, "git", "commit", "-qam", "one GPU per experiment")
    result = run_cli(repo, "run", "--workers", "2", env={"CUDA_VISIBLE_DEVICES": "0"})
    assert result.returncode == 1
    assert "worker 2 needs 1 GPU of its own" in result.stderr and "Traceback" not in result.stderr + result.stdout
    assert not (repo / ".ratchet" / LEDGER_FILE).exists() or not _experiments(repo)  # no baseline was measured


def test_whole_file_edits_are_applied_again_on_a_champion_that_moved(tmp_path: Path) -> None:
    repo = _repo(tmp_path, workers=2, iterations=2)
    # Both write value.txt whole: the second decided is written onto the new champion and measured again.
    _loop(repo, Scripted([number(9), number(8)])).run()
    measured = [e for e in _experiments(repo) if e.verdict is not Verdict.BASELINE]
    # Never stale: 9 then 8 are both keeps; 8 first makes 9, written onto it, a discard against 8.
    assert Verdict.STALE not in {e.verdict for e in measured}, [(e.id, e.verdict, e.reason) for e in measured]
    assert any(e.extra.get("rebased") for e in measured)
    assert float(sh(repo, "git", "show", "ratchet/t:value.txt")) == 8.0
    # Each is shown against the champion its verdict was made against: the written-again one
    # against the other's keep, not against the champion the run had when it was shown.
    rebased = next(e for e in measured if e.extra.get("rebased"))
    other = next(e for e in measured if e is not rebased)
    comparison = rebased.comparison(None)
    assert other.verdict is Verdict.KEEP and comparison is not None and comparison.champion == other.metric
    check_keeps_against_champions(repo, _experiments(repo))
