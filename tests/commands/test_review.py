"""The review queue: would-be keeps a person must approve wait on a branch of their own."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import NUMBER_CONFIG, run_cli, sh

from ratchet import Ledger, Verdict

# The metric: the number in value.txt, 2 better when the IAM policy file exists.
BENCH = """\
import pathlib
bonus = 2 if pathlib.Path("src/iam/policy.txt").exists() else 0
print("metric:", float(pathlib.Path("value.txt").read_text()) - bonus)
"""

# Experiment 1 adds the policy (held for review), 2 improves value.txt (kept: the champion moves),
# 3 changes the policy *and* value.txt (held), 4 changes value.txt again (kept; 3 now conflicts).
PROPOSER = """\
import os, pathlib
n = os.environ["RATCHET_EXPERIMENT"]
policy = pathlib.Path("src/iam/policy.txt")
value = pathlib.Path("value.txt")
if n == "1":
    policy.parent.mkdir(parents=True, exist_ok=True); policy.write_text("allow: read\\n")
elif n == "2":
    value.write_text("9\\n")
elif n == "3":
    policy.parent.mkdir(parents=True, exist_ok=True); policy.write_text("allow: *\\n"); value.write_text("8.5\\n")
elif n == "4":
    value.write_text("8.8\\n")
"""

REVIEW = '\n[review]\npaths = ["src/iam/**"]\n'


def _experiments(repo):
    ledger = Ledger(repo / ".ratchet" / "ledger.sqlite")
    try:
        return ledger.experiments("t")
    finally:
        ledger.close()


def test_held_for_review_then_approved_against_the_champion_of_now(number_repo):
    config = NUMBER_CONFIG.replace('command = "true"', f'command = "{sys.executable} propose.py"').replace("iterations = 5", "iterations = 4")
    config = config.replace('mutable = ["value.txt", "src/**"]', 'mutable = ["value.txt", "src/**"]\n') + REVIEW
    repo = number_repo(config, files={"bench.py": BENCH, "propose.py": PROPOSER})
    main_before = sh(repo, "git", "rev-parse", "main")
    result = run_cli(repo, "run")
    assert result.returncode == 0, result.stderr
    experiments = _experiments(repo)
    assert [e.verdict for e in experiments] == [Verdict.BASELINE, Verdict.NEEDS_REVIEW, Verdict.KEEP, Verdict.NEEDS_REVIEW, Verdict.KEEP]
    held = experiments[1]
    assert "src/iam/policy.txt" in held.reason and "ratchet review" in held.reason
    # The run branch never had the held change; later candidates did not build on it.
    assert "src/iam/policy.txt" not in sh(repo, "git", "ls-tree", "-r", "--name-only", "ratchet/t")
    assert sh(repo, "git", "show", "ratchet-review/t/1:src/iam/policy.txt") == "allow: read\n"
    status = json.loads(run_cli(repo, "status", "--json").stdout)
    assert [item["id"] for item in status["pending_reviews"]] == [1, 3]
    assert "waiting for review: #1" in run_cli(repo, "status").stdout
    listing = run_cli(repo, "review")
    assert "#1" in listing.stdout and "+allow: read" in listing.stdout and "#3" in listing.stdout

    champion = sh(repo, "git", "rev-parse", "ratchet/t").strip()
    approved = run_cli(repo, "review", "approve", "1")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    experiments = _experiments(repo)
    measured = experiments[-1]
    # Measured again against the champion that moved (value 8.8), not the one it was held on.
    assert measured.verdict is Verdict.KEEP and measured.parent_commit == champion and measured.proposer == "review"
    assert measured.metric == pytest.approx(6.8)
    assert sh(repo, "git", "show", "ratchet/t:src/iam/policy.txt") == "allow: read\n"
    assert experiments[1].extra["review"]["state"] == "approved"
    assert sh(repo, "git", "branch", "--list", "ratchet-review/t/1") == ""

    # #3 changed value.txt too, which moved since: its change no longer applies.
    stale = run_cli(repo, "review", "approve", "3")
    assert stale.returncode == 1 and "stale" in stale.stdout, stale.stdout + stale.stderr
    assert _experiments(repo)[-1].verdict is Verdict.STALE
    assert run_cli(repo, "review", "approve", "3").returncode == 3  # nothing waits any more
    assert sh(repo, "git", "rev-parse", "main") == main_before


def test_rejected_reviews_never_join_the_branch(number_repo):
    config = NUMBER_CONFIG.replace('command = "true"', f'command = "{sys.executable} propose.py"').replace("iterations = 5", "iterations = 1")
    repo = number_repo(config + REVIEW, files={"bench.py": BENCH, "propose.py": PROPOSER})
    assert run_cli(repo, "run").returncode == 0
    rejected = run_cli(repo, "review", "reject", "1", "-m", "too broad")
    assert rejected.returncode == 0, rejected.stderr
    held = _experiments(repo)[1]
    assert held.extra["review"]["state"] == "rejected" and held.extra["review"]["why_rejected"] == "too broad"
    assert "Nothing waits for review" in run_cli(repo, "review").stdout
    assert sh(repo, "git", "branch", "--list", "ratchet-review/*") == ""
    assert "src/iam/policy.txt" not in sh(repo, "git", "ls-tree", "-r", "--name-only", "ratchet/t")


def test_a_guard_review_may_overrule_holds_the_candidate(number_repo):
    config = NUMBER_CONFIG.replace('command = "true"', "command = \"echo 7 > value.txt\"").replace("iterations = 5", "iterations = 1")
    # The policy check passes on the baseline and fails on the candidate: a person may overrule it.
    config += '[[guards]]\nname = "policy"\ncommand = \'test "$(cat value.txt)" = 10\'\n[review]\nwhen = ["guard:policy"]\n'
    repo = number_repo(config)
    assert run_cli(repo, "run").returncode == 0
    held = _experiments(repo)[1]
    assert held.verdict is Verdict.NEEDS_REVIEW and "guard policy failed ([review] when)" in held.reason
    bad = number_repo(config.replace('when = ["guard:policy"]', 'when = ["guard:polcy"]'), name="bad")
    result = run_cli(bad, "run")
    assert result.returncode == 2 and "review.when names no [[guards]] called polcy" in result.stderr


def test_pending_reviews_show_in_the_report_and_mcp_status(number_repo, tmp_path):
    import asyncio

    from mcp import Client

    from ratchet.config import load_config
    from ratchet.mcp_server import create_server

    config = NUMBER_CONFIG.replace('command = "true"', f'command = "{sys.executable} propose.py"').replace("iterations = 5", "iterations = 1")
    repo = number_repo(config + REVIEW, files={"bench.py": BENCH, "propose.py": PROPOSER})
    assert run_cli(repo, "run").returncode == 0
    report = tmp_path / "report.html"
    assert run_cli(repo, "report", "-o", str(report)).returncode == 0
    html = report.read_text()
    assert "Waiting for review" in html and "ratchet-review/t/1" in html
    async def status() -> dict:
        async with Client(create_server(repo)) as client:
            return (await client.call_tool("status", {})).structured_content

    assert asyncio.run(status())["pending_reviews"] == [1]
    assert load_config(repo / "ratchet.toml").review.paths == ["src/iam/**"]
