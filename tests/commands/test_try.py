"""`ratchet try`: the working tree's change, judged against the champion, as an agent runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import NUMBER_CONFIG, run_cli, sh

from ratchet import Ledger, Verdict
from ratchet.loop import run_lock


def user_git_state(repo: Path) -> dict[str, str]:
    """What `ratchet try` must never write: the user's branch, HEAD and index."""
    return {
        "branch": sh(repo, "git", "symbolic-ref", "HEAD"),
        "head": sh(repo, "git", "rev-parse", "HEAD"),
        "index": sh(repo, "git", "ls-files", "-s", "--debug"),
    }


def verdicts(repo: Path) -> list[Verdict | None]:
    ledger = Ledger(repo / ".ratchet" / "ledger.sqlite")
    try:
        return [e.verdict for e in ledger.experiments("t")]
    finally:
        ledger.close()


def branch_file(repo: Path, path: str) -> str:
    return sh(repo, "git", "show", f"ratchet/t:{path}")


def test_keeps_an_improvement_and_the_working_tree_follows(number_repo):
    repo = number_repo()
    before = user_git_state(repo)
    (repo / "value.txt").write_text("7\n")
    result = run_cli(repo, "try", "-m", "smaller number")
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("keep: number 7 (-30.00% vs champion 10, its recorded score)"), result.stdout
    assert "#1" in result.stdout and "smaller number" in result.stdout  # the short history
    assert verdicts(repo) == [Verdict.BASELINE, Verdict.KEEP]
    assert branch_file(repo, "value.txt") == "7\n"
    message = sh(repo, "git", "log", "-1", "--format=%B", "ratchet/t")
    assert "smaller number" in message and "Ratchet-Experiment: 1" in message
    # The working tree is at the new champion; the user's branch, HEAD and index are untouched.
    assert (repo / "value.txt").read_text() == "7\n"
    assert user_git_state(repo) == before
    # The first try started the run from HEAD: its uncommitted scope change was the proposal, not left out.
    assert "without them" not in result.stderr


def test_discards_a_regression_and_the_working_tree_goes_back(number_repo):
    repo = number_repo()
    before = user_git_state(repo)
    (repo / "value.txt").write_text("12\n")
    result = run_cli(repo, "try", "-m", "bigger number")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith("discard: number 12 (+20.00% vs champion 10, its recorded score)"), result.stdout
    assert verdicts(repo) == [Verdict.BASELINE, Verdict.DISCARD]
    assert (repo / "value.txt").read_text() == "10\n"
    assert sh(repo, "git", "rev-parse", "ratchet/t") == sh(repo, "git", "rev-parse", "main")
    assert user_git_state(repo) == before
    # The discarded change is not lost: the ledger's log folder has it.
    saved = next(line for line in result.stdout.splitlines() if "saved in" in line).split("saved in ")[1].split(" (")[0]
    assert "+12" in Path(saved).read_text()


def test_rejects_a_harness_edit(number_repo):
    repo = number_repo()
    (repo / "value.txt").write_text("1\n")
    cheat = "print('metric: 0')\n"
    (repo / "bench.py").write_text(cheat)
    result = run_cli(repo, "try", "-m", "make the benchmark print zero")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout.startswith("invalid:")
    assert "undo your changes to harness files (bench.py)" in result.stdout
    assert verdicts(repo) == [Verdict.BASELINE, Verdict.INVALID]
    # Nothing was measured or kept, and ratchet left the user's files as they were.
    assert branch_file(repo, "bench.py") != cheat
    assert (repo / "bench.py").read_text() == cheat and (repo / "value.txt").read_text() == "1\n"


def test_rejects_an_out_of_scope_file(number_repo):
    repo = number_repo(files={"notes/plan.txt": "plan\n"})
    (repo / "value.txt").write_text("5\n")
    (repo / "notes" / "plan.txt").write_text("plan, edited by the agent\n")
    result = run_cli(repo, "try", "-m", "five, and a note")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "outside the mutable scope" in result.stdout
    assert "undo your changes to files outside the scope (notes/plan.txt)" in result.stdout
    assert verdicts(repo) == [Verdict.BASELINE, Verdict.INVALID]
    assert sh(repo, "git", "rev-parse", "ratchet/t") == sh(repo, "git", "rev-parse", "main")


def test_new_untracked_files_outside_the_scope_are_left_out(number_repo):
    repo = number_repo()
    (repo / "scratch.py").write_text("print('an agent scratch file')\n")
    (repo / "value.txt").write_text("8\n")
    result = run_cli(repo, "try", "-m", "eight")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "left out (new files outside the scope): scratch.py" in result.stdout
    assert (repo / "scratch.py").exists()
    assert "scratch.py" not in sh(repo, "git", "ls-tree", "-r", "--name-only", "ratchet/t")


def test_new_and_deleted_scope_files(number_repo):
    repo = number_repo(files={"src/old.py": "OLD = 1\n"})
    (repo / "src" / "extra.py").write_text("EXTRA = 1\n")
    (repo / "src" / "old.py").unlink()
    (repo / "value.txt").write_text("9\n")
    kept = run_cli(repo, "try", "-m", "nine, a new module, no old one")
    assert kept.returncode == 0, kept.stdout + kept.stderr
    tree = sh(repo, "git", "ls-tree", "-r", "--name-only", "ratchet/t").split()
    assert "src/extra.py" in tree and "src/old.py" not in tree
    # A discarded try removes the new files it added and leaves the champion's.
    (repo / "src" / "junk" / "deep").mkdir(parents=True)
    (repo / "src" / "junk" / "deep" / "j.py").write_text("JUNK = 1\n")
    (repo / "value.txt").write_text("11\n")
    discarded = run_cli(repo, "try", "-m", "eleven with junk")
    assert discarded.returncode == 1, discarded.stdout + discarded.stderr
    assert not (repo / "src" / "junk").exists()
    assert (repo / "src" / "extra.py").read_text() == "EXTRA = 1\n"
    assert not (repo / "src" / "old.py").exists()
    assert (repo / "value.txt").read_text() == "9\n"


def test_nothing_to_try(number_repo):
    repo = number_repo()
    result = run_cli(repo, "try", "-m", "no change")
    assert result.returncode == 2
    assert "nothing to try" in result.stderr and "Traceback" not in result.stderr
    assert not (repo / ".ratchet" / "ledger.sqlite").exists() or verdicts(repo) == []


def test_refuses_while_a_run_holds_the_lock(number_repo):
    repo = number_repo()
    (repo / "value.txt").write_text("3\n")
    with run_lock(repo / ".ratchet", "t"):
        result = run_cli(repo, "try", "-m", "three")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "already running" in result.stderr and "ratchet run" in result.stderr
    assert result.stderr.count("\n") == 1  # one line
    assert (repo / "value.txt").read_text() == "3\n"  # the change is still there
    assert not (repo / ".ratchet" / "ledger.sqlite").exists()
    # Once the lock is free, the same change is tried.
    assert run_cli(repo, "try", "-m", "three").returncode == 0


def test_a_patch_file(number_repo, tmp_path: Path):
    repo = number_repo()
    patch = tmp_path / "six.diff"
    patch.write_text("--- a/value.txt\n+++ b/value.txt\n@@ -1 +1 @@\n-10\n+6\n")
    result = run_cli(repo, "try", "-m", "six, from a patch", "--patch", str(patch), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "keep" and report["metric"] == 6 and report["champion_before"] == 10
    assert report["history"][-1]["hypothesis"] == "six, from a patch"
    # The working tree was at the champion: it follows it.
    assert (repo / "value.txt").read_text() == "6\n"
    broken = tmp_path / "broken.diff"
    broken.write_text("--- a/value.txt\n+++ b/value.txt\n@@ -1 +1 @@\n-99\n+1\n")
    rejected = run_cli(repo, "try", "-m", "does not apply", "--patch", str(broken))
    assert rejected.returncode == 2 and "does not apply" in rejected.stderr  # refused before any ledger row


def test_the_holdout_never_shows(number_repo):
    config = NUMBER_CONFIG.replace(
        "[budget]",
        textwrap.dedent(
            """\
            [holdout]
            command = "{python} -c \\"print('holdout', 123456.75 - float(open('value.txt').read()))\\""
            last_number = true
            direction = "minimize"
            [budget]
            """
        ),
    )
    repo = number_repo(config)
    (repo / "value.txt").write_text("7\n")  # better metric, worse holdout (123449.75 > 123446.75)
    result = run_cli(repo, "try", "-m", "overfit")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith("overfit:")
    assert "123446" not in result.stdout and "123449" not in result.stdout
    assert "hidden from proposers" in result.stdout


def test_driven_from_a_shell_script_loop(number_repo):
    """The agent's loop in its simplest form: edit, `ratchet try`, branch on the exit code."""
    repo = number_repo(files={"notes.txt": "notes\n"})
    script = repo.parent / "agent.sh"
    script.write_text(
        textwrap.dedent(
            f"""\
            set -u
            codes=""
            for value in 9 12 8 8.5; do
                echo "$value" > value.txt
                {sys.executable} -m ratchet try -m "set the number to $value" > /dev/null 2>&1
                codes="$codes $?"
            done
            echo edited >> notes.txt                  # a change outside the scope
            echo 1 > value.txt
            {sys.executable} -m ratchet try -m "one, and a note" > /dev/null 2>&1
            codes="$codes $?"
            git checkout -q notes.txt                 # undo it, as the message says
            {sys.executable} -m ratchet try -m "one" > /dev/null 2>&1
            codes="$codes $?"
            echo "codes:$codes"
            """
        )
    )
    result = subprocess.run(["bash", str(script)], cwd=repo, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "codes: 0 1 0 1 2 0"
    assert verdicts(repo) == [
        Verdict.BASELINE, Verdict.KEEP, Verdict.DISCARD, Verdict.KEEP, Verdict.DISCARD, Verdict.INVALID, Verdict.KEEP,
    ]  # fmt: skip
    assert (repo / "value.txt").read_text() == "1\n" and branch_file(repo, "value.txt") == "1\n"
    assert sh(repo, "git", "rev-list", "--count", "main..ratchet/t").strip() == "3"
    assert sh(repo, "git", "status", "--porcelain", "--", "notes.txt", "bench.py") == ""
