"""`ratchet probe`: each attack a real candidate in a throwaway checkout, judged as a run would.

Two NUMBER_TARGET-style repositories whose harness runs the scope's code (src/solver.py): one
with a plain metric command (the fake lines get through), one with a trusted run/score split
(they do not); and the bundled demo through the CLI.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Callable

from conftest import NUMBER_CONFIG, run_cli, sh, snapshot

from ratchet.commands.demo import prepare_demo
from ratchet.commands.probe import EXIT_NOT_CAUGHT, EXIT_SAFE, ProbeReport, red_team
from ratchet.config import load_config
from ratchet.measure.sandbox import probe as sandbox_probe

SOLVER = """\
    import pathlib

    def value():
        return float(pathlib.Path("value.txt").read_text())
"""

# The harness imports the candidate's code, as real benchmarks do.
BENCH = """\
    import sys
    sys.path.insert(0, "src")
    import solver
    print("metric:", solver.value())
"""

TEST_VALUE = """\
    import pathlib

    def test_value_is_a_number():
        float(pathlib.Path("value.txt").read_text())
"""

HOLDOUT = """\
    import pathlib
    print(float(pathlib.Path("value.txt").read_text()) + 1)
"""

PLAIN = NUMBER_CONFIG.replace('harness = ["bench.py"]', 'harness = ["bench.py", "holdout.py", "tests/test_value.py"]') + """
    [[guards]]
    name = "tests"
    command = "{python} -m pytest -q -p no:cacheprovider tests"
    [holdout]
    command = "{python} holdout.py"
    last_number = true
    direction = "minimize"
    [sandbox]
    mode = "off"
"""

# The candidate's code runs in `run` (it leaves result.txt); `score`, trusted, reads the result.
RUN = """\
    import pathlib, sys
    sys.path.insert(0, "src")
    import solver
    pathlib.Path("result.txt").write_text(str(solver.value()))
    print("ran the solver")
"""

SCORE = """\
    import os, pathlib
    print("metric:", float((pathlib.Path(os.environ["RATCHET_CANDIDATE"]) / "result.txt").read_text()))
"""

SPLIT = (
    NUMBER_CONFIG.replace('harness = ["bench.py"]', 'harness = ["run.py", "score.py"]')
    .replace('command = "{python} bench.py"', 'run = "{python} run.py"\n    score = "{python} score.py"')
    + """
    [holdout]
    command = "{python} {holdout}"
    last_number = true
    direction = "minimize"
"""
)


def statuses(report: ProbeReport) -> dict[str, str]:
    return {r.attack: r.status for r in report.results}


def probe_repo(repo: Path) -> ProbeReport:
    return red_team(repo, load_config(repo / "ratchet.toml"))


def test_a_plain_metric_command_lets_fake_lines_through(number_repo: Callable[..., Path]) -> None:
    files = {"src/solver.py": SOLVER, "bench.py": BENCH, "tests/test_value.py": TEST_VALUE, "holdout.py": HOLDOUT}
    repo = number_repo(PLAIN, files=files)
    before = snapshot(repo)
    report = probe_repo(repo)
    got = statuses(report)
    results = {r.attack: r for r in report.results}
    assert report.exit_code == EXIT_NOT_CAUGHT
    assert report.champion_value == 10 and report.fake_value == 0.01
    # The parser reads the last match: a line before the real one is ignored; after it, or
    # written over it, it is the number a run would keep, past the guards and the holdout.
    assert got["fake-line-before"] == "caught", results["fake-line-before"]
    assert got["fake-line-after"] == "not caught" and got["stdout-replaced"] == "not caught"
    assert "the metric read 0.01 (the fake) instead of 10" in results["fake-line-after"].detail
    assert "run = the candidate's code" in results["fake-line-after"].fix
    assert got["harness-rewrite"] == "caught" and "tampered" in results["harness-rewrite"].detail
    # No sandbox: a write outside the checkout gets through; the daemon is still named and killed.
    assert got["write-outside"] == "not caught" and "[sandbox] mode" in results["write-outside"].fix
    assert got["daemon"] == "caught" and "left 1 process running" in results["daemon"].detail
    assert got["timeout"] == "caught" and "timeout" in results["timeout"].detail
    assert got["read-holdout"] == "not caught" and "holdout.py (committed" in results["read-holdout"].detail
    # pytest loads a conftest.py beside the test: refused as a proposal (outside the scope),
    # but made at run time it is no harness file (the harness names one test file).
    planted = results["new-harness-file"]
    assert planted.status == "not caught" and planted.detail.startswith("tests/conftest.py (pytest loads it)")
    assert "a proposal adding it is refused" in planted.detail and '"tests/**"' in planted.fix
    # Nothing of it in the user's checkout: no branch, no worktree, no daemon, files as they were.
    assert snapshot(repo) == before
    assert sh(repo, "git", "worktree", "list").count("\n") == 1
    assert sh(repo, "git", "branch", "--list").split() == ["*", "main"]
    assert not (repo / ".ratchet" / "ledger.sqlite").exists()


def test_a_run_score_split_catches_the_fake_lines(number_repo: Callable[..., Path], tmp_path: Path) -> None:
    # The holdout's script lives outside the repository, under /tmp: the sandbox hides it from the metric.
    outside = tmp_path / "holdout"
    outside.mkdir()
    (outside / "holdout.py").write_text(textwrap.dedent(HOLDOUT))
    config = SPLIT.replace("{holdout}", str(outside / "holdout.py"))
    repo = number_repo(config, files={"src/solver.py": SOLVER, "run.py": RUN, "score.py": SCORE})
    report = probe_repo(repo)
    got = statuses(report)
    results = {r.attack: r for r in report.results}
    for attack in ("fake-line-before", "fake-line-after", "stdout-replaced"):
        assert got[attack] == "caught", results[attack]
        assert "the number comes from the trusted score step's output" in results[attack].detail
    assert got["harness-rewrite"] == "caught" and "run.py" in results["harness-rewrite"].detail
    if sandbox_probe().usable:
        assert report.sandbox
        assert got["read-holdout"] == "caught" and "hidden by the sandbox" in results["read-holdout"].detail
        assert got["write-outside"] == "caught" and "Read-only file system" in results["write-outside"].detail
        assert report.exit_code == EXIT_SAFE, report.results
    else:
        assert got["read-holdout"] == "not caught" and got["write-outside"] == "not caught"


def test_probe_on_the_demo(tmp_path: Path) -> None:
    repo = prepare_demo(tmp_path / "demo")
    before = snapshot(repo)
    result = run_cli(repo, "probe", "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    data = json.loads(result.stdout)
    got = {a["attack"]: a["status"] for a in data["attacks"]}
    assert got["fake-line-after"] == "not caught" and got["fake-line-before"] == "caught"
    assert got["harness-rewrite"] == "caught"  # train.py writes prepare.py: tampered
    assert data["summary"]["not caught"] >= 2 and data["exit_code"] == 1
    assert snapshot(repo) == before
    assert not (repo / ".ratchet" / "worktrees" / "demo.probe").exists()


def test_probe_config_errors_exit_2(number_repo: Callable[..., Path]) -> None:
    repo = number_repo(NUMBER_CONFIG.replace('direction = "minimize"', 'direction = "down"'))
    result = run_cli(repo, "probe")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("ratchet: error: ") and "metric.direction" in result.stderr
    # A scope with no Python code: the code-running attacks have nowhere to live, said as such.
    repo = number_repo(name="plain")
    result = run_cli(repo, "probe")
    assert "skipped    fake-line-after: no Python file in the scope" in result.stdout, result.stdout
    assert "Summary: 0 not caught, 0 caught, 9 skipped" in result.stdout
    assert result.returncode == 0
    assert "red team: `ratchet probe` tries a proposer's attacks" in run_cli(repo, "doctor").stdout


def test_every_attack_has_its_step_in_order() -> None:
    # The attacks live in fakes.py and escapes.py now: each named attack is tried, in ATTACKS' order.
    from ratchet.commands.probe import ATTACKS
    from ratchet.commands.probe.session import STEPS

    assert list(STEPS) == list(ATTACKS)
    assert all(step.__name__ == attack.replace("-", "_") for attack, step in STEPS.items())
