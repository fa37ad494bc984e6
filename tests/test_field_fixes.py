"""What a new user and an agent are told: the verdict's own comparison, guard output, a failed
baseline that leaves nothing behind (issue: field fixes, items 4, 5, 6, 8, 9, 11)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from conftest import NUMBER_CONFIG, run_cli, sh

from ratchet import Ledger, Verdict

# The machine slows down after the baseline: every measurement after the first reads 1.4x the
# code's number (a counter file outside the checkout, plus a little jitter so the paired test
# has spread). The baseline's recorded score is a lucky draw; only a re-measured champion is fair.
DRIFTING_BENCH = """\
import pathlib, sys
counter = pathlib.Path(sys.argv[1])
n = int(counter.read_text()) if counter.exists() else 0
counter.write_text(str(n + 1))
factor = 1.0 if n == 0 else 1.4 + 0.002 * (n % 3)
print("metric:", float(pathlib.Path("value.txt").read_text()) * factor)
"""

SEQUENTIAL = """
    [verdict]
    mode = "sequential"
    deterministic = "no"
    max_pairs = 4
    calibrate_pairs = 0
    confirm_pairs = 0
    [sandbox]
    mode = "off"
"""


def _drifting_repo(number_repo, tmp_path: Path) -> Path:
    counter = tmp_path / "counter"
    config = NUMBER_CONFIG.replace("{python} bench.py", f"{{python}} bench.py {counter}") + SEQUENTIAL
    return number_repo(config, files={"bench.py": DRIFTING_BENCH})


def test_try_shows_the_comparison_the_verdict_made_not_the_stale_score(number_repo, tmp_path):
    repo = _drifting_repo(number_repo, tmp_path)
    (repo / "value.txt").write_text("9.6\n")  # 4% better than the champion, measured on the slow machine
    result = run_cli(repo, "try", "-m", "a bit smaller", "--json")
    report = json.loads(result.stdout)
    assert report["champion_remeasured"] is True
    # Against the stored baseline (10) the candidate's median (about 13.4) looks +34% worse;
    # the verdict compared it with the champion measured beside it (about 14): -4%.
    assert -5.0 < float(report["change"].rstrip("%")) < -3.0, report
    assert report["champion_before"] > 13.5
    assert "re-measured" in report["compared"] and "pairs" in report["compared"]
    assert report["history"][-1]["change"] == report["change"]
    human = run_cli(repo, "log")  # the human table still labels its column "vs baseline"
    assert "vs baseline" in human.stdout


def test_live_log_shows_the_verdicts_comparison(number_repo, tmp_path):
    repo = _drifting_repo(number_repo, tmp_path)
    config = (repo / "ratchet.toml").read_text().replace('command = "true"', "command = \"echo 9.6 > value.txt\"")
    (repo / "ratchet.toml").write_text(config.replace("iterations = 5", "iterations = 1"))
    sh(repo, "git", "commit", "-qam", "proposer")
    result = run_cli(repo, "run")
    line = next(line for line in result.stdout.splitlines() if line.startswith("#1"))
    assert "vs champion" in line and "re-measured" in line, result.stdout
    assert "vs baseline" not in line
    change = float(line.split(" vs champion")[0].rsplit("(", 1)[1].rstrip("%"))
    assert -5.0 < change < -3.0, line


FAILING_GUARD = '''
    [[guards]]
    name = "tests"
    command = """echo "AssertionError: expected 3, got 4" >&2; test "$(cat value.txt)" = 10"""
'''


def test_a_failing_guard_shows_its_output_in_try_and_show(number_repo):
    repo = number_repo(NUMBER_CONFIG + FAILING_GUARD)
    (repo / "value.txt").write_text("7\n")
    result = run_cli(repo, "try", "-m", "smaller", "--json")
    report = json.loads(result.stdout)
    assert report["verdict"] == "discard"
    assert "guard tests failed: exit 1" in report["guard_output"]
    assert "AssertionError: expected 3, got 4" in report["guard_output"]
    human = run_cli(repo, "show", str(report["experiment"]))
    assert "AssertionError: expected 3, got 4" in human.stdout, human.stdout


def test_a_guard_failing_on_the_baseline_shows_its_stderr(number_repo):
    repo = number_repo(NUMBER_CONFIG + '[[guards]]\nname = "tests"\ncommand = "pytset -q"\n')
    result = run_cli(repo, "run")
    assert result.returncode != 0
    assert "pytset" in result.stderr and "not found" in result.stderr, result.stderr


def test_a_failed_baseline_leaves_no_branch_and_the_next_run_starts_fresh(number_repo):
    repo = number_repo(NUMBER_CONFIG.replace('command = "{python} bench.py"', 'command = "exit 3"'))
    for _ in range(2):
        result = run_cli(repo, "run")
        assert result.returncode != 0
        assert "baseline" in result.stderr and "removed" in result.stderr, result.stderr
        assert sh(repo, "git", "branch", "--list", "ratchet/*") == ""
        assert "ratchet/t" not in sh(repo, "git", "worktree", "list")
    # The ledger keeps the attempts as events; the user fixes the metric (a frozen setting) and runs again.
    ledger = Ledger(repo / ".ratchet" / "ledger.sqlite")
    try:
        failed = ledger.events("t", "baseline-failed")
        assert len(failed) == 2 and all("exit 3" in e["reason"] or "exit" in e["reason"] for e in failed)
        assert ledger.experiments("t") == []
    finally:
        ledger.close()
    config = (repo / "ratchet.toml").read_text().replace('command = "exit 3"', f'command = "{sys.executable} bench.py"')
    (repo / "ratchet.toml").write_text(config.replace("iterations = 5", "iterations = 1"))
    sh(repo, "git", "commit", "-qam", "fix the metric")
    result = run_cli(repo, "run")
    assert result.returncode == 0, result.stderr
    ledger = Ledger(repo / ".ratchet" / "ledger.sqlite")
    try:
        rows = ledger.experiments("t")
        assert rows[0].id == 0 and rows[0].verdict is Verdict.BASELINE
        assert ledger.get_run("t").base_commit == sh(repo, "git", "rev-parse", "HEAD").strip()  # type: ignore[union-attr]
    finally:
        ledger.close()


def test_run_exit_codes_say_why_it_stopped(number_repo):
    assert run_cli(number_repo(), "run", "-n", "1").returncode == 0  # the budget ended
    # Every candidate makes the metric command crash (value.txt no longer holds a number).
    crashing = NUMBER_CONFIG.replace('command = "true"', 'command = "echo boom$RATCHET_EXPERIMENT > value.txt"')
    crashing = crashing.replace("[budget]\n", "[budget]\nmax_consecutive_crashes = 2\n")
    result = run_cli(number_repo(crashing, name="crashes"), "run")
    assert "2 experiments in a row crashed or failed" in result.stdout, result.stdout + result.stderr
    assert result.returncode == 4


def test_the_same_change_is_not_measured_twice_on_one_champion(number_repo):
    repo = number_repo()
    (repo / "value.txt").write_text("12\n")
    first = json.loads(run_cli(repo, "try", "-m", "bigger", "--json").stdout)
    assert first["verdict"] == "discard"
    (repo / "value.txt").write_text("12\n")  # the very same change again: a re-roll of the draw
    second = run_cli(repo, "try", "-m", "bigger, once more", "--json")
    report = json.loads(second.stdout)
    assert second.returncode == 2 and report["verdict"] == "invalid"
    assert f"#{first['experiment']}" in report["reason"] and "--again" in report["reason"]
    assert report["metric"] is None  # nothing was measured
    (repo / "value.txt").write_text("12\n")
    third = json.loads(run_cli(repo, "try", "-m", "on purpose", "--again", "--json").stdout)
    assert third["verdict"] == "discard"


def test_a_command_proposer_repeating_itself_is_refused(number_repo):
    # The script proposes 12 every time: measured once, then refused on the same champion.
    repo = number_repo(NUMBER_CONFIG.replace('command = "true"', 'command = "echo 12 > value.txt"').replace("iterations = 5", "iterations = 3"))
    run_cli(repo, "run")
    ledger = Ledger(repo / ".ratchet" / "ledger.sqlite")
    try:
        rows = ledger.experiments("t")
    finally:
        ledger.close()
    assert [e.verdict for e in rows] == [Verdict.BASELINE, Verdict.DISCARD, Verdict.INVALID, Verdict.INVALID]
    assert "the same change as experiment #1" in rows[2].reason


NOISY_BENCH = """\
import pathlib, random
print("metric:", float(pathlib.Path("value.txt").read_text()) * random.lognormvariate(0, 0.1))
"""


def test_calibrate_recommends_min_effect_as_the_config_reads_it(number_repo):
    config = NUMBER_CONFIG + '[verdict]\nmode = "sequential"\nmin_effect = "1%"\nmax_pairs = 6\n'
    repo = number_repo(config, files={"bench.py": NOISY_BENCH})
    result = run_cli(repo, "calibrate", "--pairs", "6", "--effect", "12%", timeout=300)
    assert result.returncode == 0, result.stderr
    assert "log-ratio" not in result.stdout
    line = next(line for line in result.stdout.splitlines() if line.startswith("recommended:"))
    percent = float(line.split('min_effect = "')[1].split('%"')[0])
    assert 3 < percent < 80, line  # 10% noise per measurement: a few to tens of percent, as a percentage
    assert "pairs" in result.stdout.split("to detect 12%")[1]


def test_a_money_budget_stops_a_command_proposer_that_does_not_say_what_it_spent(number_repo):
    config = NUMBER_CONFIG.replace('command = "true"', 'command = "echo 7 > value.txt"')
    repo = number_repo(config.replace("[budget]\n", "[budget]\ncost_usd = 1\n"))
    result = run_cli(repo, "run")
    assert result.returncode == 1
    assert "RATCHET_USAGE_FILE" in result.stderr and "cost_usd" in result.stderr, result.stderr
    # Saying it costs nothing is enough: the budget is then kept honestly.
    paid = config.replace('command = "echo 7 > value.txt"', """command = 'echo 7 > value.txt; echo "{\\"cost_usd\\": 0.25}" > "$RATCHET_USAGE_FILE"'""")
    other = number_repo(paid.replace("[budget]\n", "[budget]\ncost_usd = 1\n"), name="paid")
    result = run_cli(other, "run")
    assert result.returncode == 0, result.stderr
    assert "money budget spent" in result.stdout


def test_a_proposer_stuck_on_one_change_stops_the_run(number_repo):
    stuck = NUMBER_CONFIG.replace('command = "true"', 'command = "echo 12 > value.txt"').replace("iterations = 5", "iterations = 50")
    result = run_cli(number_repo(stuck.replace("[budget]\n", "[budget]\nmax_consecutive_crashes = 3\n")), "run")
    assert result.returncode == 4, result.stdout
    assert result.stdout.count("the same change as experiment #1") == 3


def test_run_refuses_a_harness_glob_that_matches_nothing(number_repo):
    repo = number_repo(NUMBER_CONFIG.replace('harness = ["bench.py"]', 'harness = ["bench.py", "tset/**"]'))
    result = run_cli(repo, "run")
    assert result.returncode == 1
    assert "['tset/**'] matches no file committed at HEAD" in result.stderr and "harness = []" in result.stderr
    assert sh(repo, "git", "branch", "--list", "ratchet/*") == ""  # refused before anything was made
    # Written on purpose, an empty harness runs (no warning); left out, it runs with a warning.
    explicit = number_repo(NUMBER_CONFIG.replace('harness = ["bench.py"]', "harness = []"), name="explicit")
    result = run_cli(explicit, "run", "-n", "1")
    assert result.returncode == 0 and "no [scope] harness" not in result.stdout + result.stderr
    implicit = number_repo(NUMBER_CONFIG.replace('harness = ["bench.py"]\n', ""), name="implicit")
    result = run_cli(implicit, "run", "-n", "1")
    assert result.returncode == 0 and "no [scope] harness" in result.stdout + result.stderr


def test_a_passing_guard_never_re_judges_the_metric_against_a_stale_score(number_repo, tmp_path):
    # The sequential test keeps the candidate against the champion measured beside it (-4%);
    # against the lucky recorded baseline (10) it would look 34% worse. A guard that passes
    # must leave that keep alone.
    repo = _drifting_repo(number_repo, tmp_path)
    config = (repo / "ratchet.toml").read_text() + '[[guards]]\nname = "tests"\ncommand = "true"\n'
    (repo / "ratchet.toml").write_text(config)
    sh(repo, "git", "commit", "-qam", "a guard")
    (repo / "value.txt").write_text("9.6\n")
    report = json.loads(run_cli(repo, "try", "-m", "a bit smaller", "--json").stdout)
    assert report["verdict"] == "keep", report["reason"]


# A proposer that leaves a file git ignores: a sourceless json.pyc at the root, which the
# harness's `import json` would load instead of the standard library's (its loads says 0).
SHADOWING_PROPOSER = r"""
import pathlib, py_compile, tempfile, os
pathlib.Path("value.txt").write_text("12\n")  # worse, honestly
source = os.path.join(tempfile.mkdtemp(), "json.py")
open(source, "w").write("def loads(text):\n    return 0.0\n")
py_compile.compile(source, cfile="json.pyc")
"""

JSON_BENCH = """\
import json, pathlib
print("metric:", float(json.loads(pathlib.Path("value.txt").read_text())))
"""


def test_files_a_proposer_leaves_in_ignored_paths_are_not_measured(number_repo):
    config = NUMBER_CONFIG.replace('command = "true"', f'command = "{sys.executable} -B propose.py"').replace("iterations = 5", "iterations = 1")
    repo = number_repo(config, files={"propose.py": SHADOWING_PROPOSER, ".gitignore": "*.pyc\n", "bench.py": JSON_BENCH})
    result = run_cli(repo, "run")
    assert result.returncode == 0, result.stderr
    ledger = Ledger(repo / ".ratchet" / "ledger.sqlite")
    try:
        candidate = ledger.experiments("t")[1]
    finally:
        ledger.close()
    assert candidate.verdict is Verdict.DISCARD and candidate.metric == 12.0, (candidate.verdict, candidate.metric, candidate.reason)
