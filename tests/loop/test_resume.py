"""``ratchet run`` killed with SIGKILL at random moments, then resumed: ledger and branch agree."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import NUMBER_CONFIG, run_cli, sh, snapshot

from ratchet.experiment import Verdict
from ratchet.ledger import Ledger
from ratchet.workspace.scope import Globs
from ratchet.workspace.worktree import Workspace

# Mostly small improvements, so that many kills land in the keep path (verdict -> commit -> ledger).
PROPOSER = """\
import os, random, time
time.sleep(random.uniform(0, 0.05))
value = round(float(open("value.txt").read()) * random.uniform(0.8, 1.05), 6)
open("value.txt", "w").write(f"{value}\\n")
print(f"try {value}")
"""

BENCH = """\
import pathlib, random, time
time.sleep(random.uniform(0, 0.08))
print("metric:", float(pathlib.Path("value.txt").read_text()))
"""

ITERATIONS = 40


def _start(repo: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ratchet", "run"],
        cwd=repo,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_sigkill_at_random_moments_then_resume(number_repo):
    config = NUMBER_CONFIG.replace("iterations = 5", f"iterations = {ITERATIONS}").replace(
        'command = "true"', f'command = "{sys.executable} $RATCHET_WORKTREE/../../../propose.py"'
    )
    repo = number_repo(config, files={"bench.py": BENCH, "propose.py": PROPOSER})
    before = snapshot(repo)
    rng = random.Random(20261127)
    kills = 0
    for _ in range(10):
        proc = _start(repo)
        time.sleep(rng.uniform(0.2, 1.0))
        if proc.poll() is not None:
            break  # the budget ran out before the kill
        # Kill ratchet and everything it started, like a power cut would.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
    assert kills >= 5, f"only {kills} kills landed before the budget ran out"

    final = run_cli(repo, "run", timeout=300)
    assert final.returncode == 0, final.stderr

    ledger = Ledger(repo / ".ratchet" / "ledger.sqlite")
    experiments = ledger.experiments("t")
    info = ledger.get_run("t")
    assert info is not None
    # Every experiment is recorded once, finished, with ids 0..n.
    assert [e.id for e in experiments] == list(range(len(experiments)))
    assert all(e.state == "done" and e.verdict is not None for e in experiments)
    assert sum(e.verdict is Verdict.BASELINE for e in experiments) == 1
    # No experiment counted twice or lost: exactly the budget was measured.
    measured = [e for e in experiments if e.verdict.counts_as_iteration]
    assert len(measured) == ITERATIONS
    # Every keep in the ledger is a commit on the branch and the reverse.
    workspace = Workspace(repo, "t", Globs(["value.txt"]), Globs(["bench.py"]))
    on_branch = workspace.kept_experiments(info.base_commit)
    in_ledger = {e.id: e.commit for e in experiments if e.verdict is Verdict.KEEP}
    assert on_branch == in_ledger
    commits = sh(repo, "git", "rev-list", "--reverse", f"{info.base_commit}..ratchet/t").split()
    assert commits == [in_ledger[i] for i in sorted(in_ledger)]
    # The keeps form a strictly improving chain, each made on top of the previous champion.
    champion, parent = next(e.metric for e in experiments if e.verdict is Verdict.BASELINE), info.base_commit
    for e in experiments:
        if e.verdict is Verdict.KEEP:
            assert e.metric < champion and e.parent_commit == parent
            champion, parent = e.metric, e.commit
    assert float(sh(repo, "git", "show", "ratchet/t:value.txt")) == champion
    # The worktree is clean and the user's checkout untouched.
    assert sh(repo / ".ratchet" / "worktrees" / "t", "git", "status", "--porcelain", "--ignored") == ""
    assert snapshot(repo) == before


def _loop(repo: Path, proposals: list) -> "Loop":
    from conftest import Scripted
    from rich.console import Console

    from ratchet.config import load_config
    from ratchet.loop import Loop
    from ratchet.report.terminal import Display

    display = Display(Console(file=open(os.devnull, "w")))
    return Loop(repo, load_config(repo / "ratchet.toml"), proposer=Scripted(proposals), iterations=3, observer=display)


def _number(value: float):
    from ratchet import Proposal

    return Proposal(hypothesis=f"set {value}", edits={"value.txt": f"{value}\n"})


def test_death_between_commit_and_ledger_is_repaired_as_keep(number_repo):
    repo = number_repo()
    loop = _loop(repo, [_number(8)])
    real_keep = loop.workspace.keep

    def keep_then_die(*args):
        real_keep(*args)
        raise KeyboardInterrupt  # the process dies right after git commit

    loop.workspace.keep = keep_then_die  # type: ignore[method-assign]
    try:
        loop.run()
    except KeyboardInterrupt:
        pass
    ledger = Ledger(repo / ".ratchet" / "ledger.sqlite")
    assert ledger.experiment("t", 1).state == "committing"
    _loop(repo, [_number(9), _number(7)]).run()
    experiments = ledger.experiments("t")
    assert [e.verdict for e in experiments] == [Verdict.BASELINE, Verdict.KEEP, Verdict.DISCARD, Verdict.KEEP]
    assert experiments[1].commit == sh(repo, "git", "rev-parse", "ratchet/t~1").strip()
    assert experiments[3].parent_commit == experiments[1].commit


def test_death_before_commit_is_repaired_as_abandoned(number_repo):
    repo = number_repo()
    loop = _loop(repo, [_number(8)])

    def die(*args):
        raise KeyboardInterrupt  # the process dies after the verdict, before git commit

    loop.workspace.keep = die  # type: ignore[method-assign]
    try:
        loop.run()
    except KeyboardInterrupt:
        pass
    _loop(repo, [_number(9), _number(7), _number(6)]).run()
    experiments = Ledger(repo / ".ratchet" / "ledger.sqlite").experiments("t")
    assert [e.verdict for e in experiments] == [
        Verdict.BASELINE, Verdict.ABANDONED, Verdict.KEEP, Verdict.KEEP, Verdict.KEEP,
    ]  # fmt: skip
    assert "interrupted" in experiments[1].reason and experiments[1].commit is None
    assert sh(repo, "git", "rev-list", "--count", "main..ratchet/t").strip() == "3"


# Slow on the first candidate only (the proposer sets the experiment's id + 4): the kill lands in its measurement.
SLOW_ON_FIVE = """\
import pathlib, time
value = float(pathlib.Path("value.txt").read_text())
if value == 5:
    time.sleep(60)
print("metric:", value)
"""


def test_kill_during_an_in_place_measurement_keeps_its_diff(number_repo):
    # An in-place candidate's diff is written when its experiment ends; killed mid-measurement,
    # the next session takes it from the worktree before cleaning it.
    config = NUMBER_CONFIG.replace('command = "true"', 'command = "echo $((RATCHET_EXPERIMENT + 4)) > value.txt"').replace(
        "[budget]", "[verdict]\ncalibrate_pairs = 0\nconfirm_pairs = 0\n[budget]"
    )
    repo = number_repo(config, files={"bench.py": SLOW_ON_FIVE})
    proc = _start(repo)
    path = repo / ".ratchet" / "ledger.sqlite"
    ledger = None
    try:
        deadline = time.monotonic() + 60
        value = repo / ".ratchet" / "worktrees" / "t" / "value.txt"
        while ledger is None or not any(e.id == 1 and e.state != "done" for e in ledger.experiments("t")) or value.read_text() != "5\n":
            assert proc.poll() is None and time.monotonic() < deadline, "experiment 1 was never measured"
            time.sleep(0.1)
            if ledger is None and path.exists():
                ledger = Ledger(path)
        time.sleep(1.0)  # the candidate is in place: its measurement starts (and sleeps)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    stopped = ledger.experiment("t", 1)
    assert stopped is not None and not (Path(stopped.log_dir) / "proposal.diff").exists()

    resumed = run_cli(repo, "run", "--iterations", "2", timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    experiments = ledger.experiments("t")
    assert [e.verdict for e in experiments][:2] == [Verdict.BASELINE, Verdict.ABANDONED]
    diff = (Path(experiments[1].log_dir) / "proposal.diff").read_text()
    assert "-10\n+5\n" in diff and "value.txt" in diff
    (repo / ".ratchet" / "stopped.diff").write_text(diff)
    sh(repo, "git", "apply", "--check", str(repo / ".ratchet" / "stopped.diff"))  # git applies it to the champion it was made on
    assert sh(repo / ".ratchet" / "worktrees" / "t", "git", "status", "--porcelain") == ""

