"""The loop end to end, in process, on real git repositories with a scripted proposer."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest
from conftest import Scripted, number, sh, snapshot
from rich.console import Console

from ratchet import (
    Ledger,
    Loop,
    Proposal,
    ProposalContext,
    RunError,
    Verdict,
)
from ratchet.config import load_config
from ratchet.report.terminal import Display


def run_loop(repo: Path, proposals: list, iterations: int | None = None) -> tuple[Ledger, list]:
    config = load_config(repo / "ratchet.toml")
    display = Display(Console(file=open(os.devnull, "w")))
    Loop(repo, config, proposer=Scripted(proposals), iterations=iterations or len(proposals), observer=display).run()
    ledger = Ledger(repo / ".ratchet" / "ledger.sqlite")
    return ledger, ledger.experiments("t")


def test_improvement_kept_regression_discarded(number_repo):
    repo = number_repo()
    before = snapshot(repo)
    ledger, experiments = run_loop(repo, [number(12, "worse"), number(7, "better"), number(8, "worse than 7")])
    verdicts = [e.verdict for e in experiments]
    assert verdicts == [Verdict.BASELINE, Verdict.DISCARD, Verdict.KEEP, Verdict.DISCARD]
    assert [e.metric for e in experiments] == [10.0, 12.0, 7.0, 8.0]
    kept = experiments[2]
    # The keep is a commit on the run branch with the hypothesis and the metric in its message.
    assert sh(repo, "git", "rev-parse", "ratchet/t").strip() == kept.commit
    assert sh(repo, "git", "show", "ratchet/t:value.txt") == "7\n"
    message = sh(repo, "git", "log", "-1", "--format=%B", "ratchet/t")
    assert "better" in message and "number: 7" in message and "Ratchet-Experiment: 2" in message
    # The user's checkout, index and branch are untouched.
    assert snapshot(repo) == before
    assert (repo / "value.txt").read_text() == "10\n"


def test_min_effect_relative(number_repo):
    from conftest import NUMBER_CONFIG

    repo = number_repo(NUMBER_CONFIG.replace("[budget]", '[verdict]\nmin_effect = "10%"\n[budget]'))
    _, experiments = run_loop(repo, [number(9.5), number(8.9)])
    assert [e.verdict for e in experiments[1:]] == [Verdict.DISCARD, Verdict.KEEP]
    assert "less than min_effect" in experiments[1].reason


@pytest.mark.parametrize(
    "proposal, reason",
    [
        (Proposal(hypothesis="outside", edits={"other.txt": "x"}), "outside the mutable scope"),
        (Proposal(hypothesis="dotdot", edits={"src/../bench.py": "print('metric: 0')"}), "not a plain path"),
        (Proposal(hypothesis="git dir", edits={".git/hooks/pre-commit": "#!/bin/sh\n"}), "not a plain path"),
        (Proposal(hypothesis="harness", edits={"bench.py": "print('metric: 0')"}), "outside the mutable scope"),
        (Proposal(hypothesis="abs", edits={"/tmp/evil": "x"}), "not a plain path"),
    ],
)
def test_out_of_scope_edits_rejected_unmeasured(number_repo, proposal, reason):
    repo = number_repo()
    _, experiments = run_loop(repo, [proposal])
    last = experiments[-1]
    assert last.verdict is Verdict.INVALID
    assert reason in last.reason
    assert last.metric is None  # never measured
    assert not (Path(last.log_dir) / "metric.stdout").exists()
    assert sh(repo, "git", "rev-parse", "ratchet/t") == sh(repo, "git", "rev-parse", "main")


def test_symlink_out_of_scope_rejected(number_repo, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("1\n")

    def make_link(context: ProposalContext) -> Proposal:
        (context.worktree / "src").mkdir(exist_ok=True)
        os.symlink(outside, context.worktree / "src" / "link.txt")
        return Proposal(hypothesis="symlink out", in_place=True)

    def link_to_harness(context: ProposalContext) -> Proposal:
        (context.worktree / "src").mkdir(exist_ok=True)
        os.symlink("../bench.py", context.worktree / "src" / "bench_alias.py")
        return Proposal(hypothesis="symlink to harness", in_place=True)

    repo = number_repo()
    _, experiments = run_loop(repo, [make_link, link_to_harness])
    assert [e.verdict for e in experiments[1:]] == [Verdict.INVALID, Verdict.INVALID]
    assert "symlink" in experiments[1].reason and "symlink" in experiments[2].reason
    # The worktree is clean again: the links are gone.
    worktree = repo / ".ratchet" / "worktrees" / "t"
    assert not (worktree / "src").exists()


def test_edit_through_symlinked_directory_rejected(number_repo, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    repo = number_repo(files={"src/README": "x\n"})
    os.symlink(outside, repo / "src" / "out")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "link")
    _, experiments = run_loop(repo, [Proposal(hypothesis="write via link", edits={"src/out/x.txt": "pwned"})])
    assert experiments[-1].verdict is Verdict.INVALID
    assert not (outside / "x.txt").exists()


def test_harness_tamper_during_measurement(number_repo):
    # The candidate's code rewrites the harness when it runs: caught after the measurement.
    bench = """\
        import pathlib
        exec(pathlib.Path("src/hook.py").read_text()) if pathlib.Path("src/hook.py").exists() else None
        print("metric:", float(pathlib.Path("value.txt").read_text()))
    """
    repo = number_repo(files={"bench.py": bench})
    hook = "open('bench.py', 'a').write('# gamed\\n')\n"
    _, experiments = run_loop(repo, [Proposal(hypothesis="sneaky", edits={"src/hook.py": hook, "value.txt": "1\n"})])
    last = experiments[-1]
    assert last.verdict is Verdict.TAMPERED
    assert "bench.py" in last.reason
    assert last.metric is None and last.commit is None
    assert sh(repo, "git", "show", "ratchet/t:value.txt") == "10\n"


@pytest.mark.parametrize(
    "bench, verdict, reason",
    [
        ("import sys; sys.exit(3)", Verdict.CRASH, "exited with 3"),
        ("print('metric: nan'); raise SystemExit(0)", Verdict.INVALID, "not a finite number"),
        ("print('no number here'); raise SystemExit(0)", Verdict.INVALID, "matched nothing"),
    ],
)
def test_measurement_failures(number_repo, bench, verdict, reason):
    guarded = f"""\
        import pathlib
        if pathlib.Path("value.txt").read_text().strip() == "1":
            {bench}
        print("metric:", float(pathlib.Path("value.txt").read_text()))
    """
    repo = number_repo(files={"bench.py": guarded})
    _, experiments = run_loop(repo, [number(1)])
    assert experiments[-1].verdict is verdict
    assert reason in experiments[-1].reason
    if verdict is Verdict.CRASH:
        assert "Traceback" not in experiments[-1].output_tail


def test_timeout_verdict(number_repo):
    from conftest import NUMBER_CONFIG

    bench = """\
        import pathlib, time
        if pathlib.Path("value.txt").read_text().strip() == "1":
            time.sleep(60)
        print("metric:", float(pathlib.Path("value.txt").read_text()))
    """
    repo = number_repo(NUMBER_CONFIG.replace('timeout = "20s"', 'timeout = "1s"'), files={"bench.py": bench})
    _, experiments = run_loop(repo, [number(1)])
    assert experiments[-1].verdict is Verdict.TIMEOUT
    assert experiments[-1].duration < 30  # killed at its 1 s timeout, not after its 60 s sleep (slack for a loaded machine)


def test_guards(number_repo):
    from conftest import NUMBER_CONFIG

    config = NUMBER_CONFIG + """
    [[guards]]
    name = "positive"
    command = "{python} -c \\"import sys; sys.exit(float(open('value.txt').read()) <= 0)\\""

    [[guards]]
    name = "size"
    command = "wc -c < value.txt"
    last_number = true
    max_regression = "50%"
    """
    repo = number_repo(config)
    _, experiments = run_loop(repo, [number(-1, "negative"), number(9.12345, "longer text"), number(9, "short")])
    negative, longer, short = experiments[1:]
    assert negative.verdict is Verdict.DISCARD and "positive" in negative.reason
    assert longer.verdict is Verdict.DISCARD and "size" in longer.reason  # 8 bytes vs 3: +166%
    assert short.verdict is Verdict.KEEP
    assert {g.name: g.passed for g in short.guards} == {"positive": True, "size": True}


def test_budget_target_and_consecutive_crashes(number_repo):
    from conftest import NUMBER_CONFIG

    repo = number_repo(NUMBER_CONFIG.replace("iterations = 5", "iterations = 50\ntarget = 5"))
    _, experiments = run_loop(repo, [number(7), number(4), number(3)], iterations=50)
    assert [e.verdict for e in experiments[1:]] == [Verdict.KEEP, Verdict.KEEP]  # stopped at the target

    repo = number_repo(NUMBER_CONFIG.replace("iterations = 5", "max_consecutive_crashes = 2"), name="repo2")
    crash = Proposal(hypothesis="crash", edits={"value.txt": "not a number\n"})
    _, experiments = run_loop(repo, [number(9), crash, crash, crash, number(1)], iterations=50)
    assert [e.verdict for e in experiments[1:]] == [Verdict.KEEP, Verdict.CRASH, Verdict.CRASH]


def test_proposer_errors_are_recorded_not_fatal(number_repo):
    repo = number_repo()
    _, experiments = run_loop(repo, [number(9)], iterations=2)
    assert experiments[-1].verdict is Verdict.INVALID
    assert experiments[-1].reason == "proposer: out of ideas"


def test_patch_proposal_and_new_file(number_repo):
    patch = """\
diff --git a/value.txt b/value.txt
--- a/value.txt
+++ b/value.txt
@@ -1 +1 @@
-10
+6
diff --git a/src/new.txt b/src/new.txt
new file mode 100644
--- /dev/null
+++ b/src/new.txt
@@ -0,0 +1 @@
+hello
"""
    repo = number_repo()
    _, experiments = run_loop(repo, [Proposal(hypothesis="patch", patch=patch)])
    assert experiments[-1].verdict is Verdict.KEEP
    assert sh(repo, "git", "show", "ratchet/t:src/new.txt") == "hello\n"
    bad = patch.replace("src/new.txt", "other/new.txt")
    _, experiments = run_loop(repo, [Proposal(hypothesis="patch out", patch=bad)], iterations=2)
    assert experiments[-1].verdict is Verdict.INVALID


def test_baseline_failure_is_a_clear_error(number_repo):
    repo = number_repo(files={"bench.py": "raise SystemExit('broken harness')\n"})
    with pytest.raises(RunError, match="(?s)baseline measurement failed.*broken harness"):
        run_loop(repo, [number(1)])


def test_refuses_empty_scope_and_branch_clash(number_repo):
    from conftest import NUMBER_CONFIG

    repo = number_repo(NUMBER_CONFIG.replace('mutable = ["value.txt", "src/**"]', 'mutable = ["nothing/**"]'))
    with pytest.raises(RunError, match="matches no file"):
        run_loop(repo, [number(1)])
    repo = number_repo(name="repo2")
    sh(repo, "git", "branch", "ratchet/t")
    with pytest.raises(RunError, match="exists but the ledger has no run"):
        run_loop(repo, [number(1)])


def test_run_lock_refuses_second_process(number_repo):
    from ratchet.loop import run_lock

    repo = number_repo()
    with run_lock(repo / ".ratchet", "t"):
        with pytest.raises(RunError, match="already running"):
            run_loop(repo, [number(1)])


def test_resume_continues_with_champion(number_repo):
    repo = number_repo()
    run_loop(repo, [number(8)], iterations=1)
    ledger, experiments = run_loop(repo, [number(9), number(7)], iterations=3)
    assert [e.verdict for e in experiments] == [Verdict.BASELINE, Verdict.KEEP, Verdict.DISCARD, Verdict.KEEP]
    assert experiments[2].parent_commit == experiments[1].commit
    assert sh(repo, "git", "show", "ratchet/t:value.txt") == "7\n"


def test_resume_refuses_changed_metric(number_repo):
    repo = number_repo()
    run_loop(repo, [number(8)], iterations=1)
    config = (repo / "ratchet.toml").read_text().replace('direction = "minimize"', 'direction = "maximize"')
    (repo / "ratchet.toml").write_text(config)
    with pytest.raises(RunError, match="metric.direction changed"):
        run_loop(repo, [number(9)], iterations=2)


def test_uses_interpreter(number_repo):
    assert sys.executable  # the harness runs with the test's interpreter via {python}


def test_proposer_bug_is_recorded_and_repeated_bugs_stop_the_run(number_repo):
    def buggy(context: ProposalContext) -> Proposal:
        raise KeyError("oops")

    repo = number_repo()
    _, experiments = run_loop(repo, [buggy] * 8, iterations=8)
    # max_consecutive_crashes defaults to 5: the run stops instead of spinning.
    assert [e.verdict for e in experiments[1:]] == [Verdict.INVALID] * 5
    assert experiments[-1].reason == "proposer: crashed: KeyError: 'oops'"


def test_uncommitted_scope_changes_warn(number_repo):
    import io

    repo = number_repo()
    (repo / "value.txt").write_text("3\n")  # uncommitted: the run starts from HEAD without it
    buffer = io.StringIO()
    config = load_config(repo / "ratchet.toml")
    Loop(repo, config, proposer=Scripted([number(9)]), iterations=1, observer=Display(Console(file=buffer))).run()
    assert "value.txt has uncommitted changes" in buffer.getvalue()
    assert Ledger(repo / ".ratchet" / "ledger.sqlite").experiments("t")[0].metric == 10.0
    assert (repo / "value.txt").read_text() == "3\n"


def test_live_display_renders_progress(number_repo):
    import io

    from ratchet.report.terminal import LiveDisplay

    repo = number_repo()
    buffer = io.StringIO()
    display = LiveDisplay(Console(file=buffer, force_terminal=True, width=120))
    config = load_config(repo / "ratchet.toml")
    Loop(repo, config, proposer=Scripted([number(9), number(12)]), iterations=2, observer=display).run()
    display.console.print(display)  # the panel as it stood at the end
    text = buffer.getvalue()
    for expected in ("iteration", "2/2", "best", "baseline 10", "budget left", "keep", "discard"):
        assert expected in text


def test_usage_recorded_and_money_budget_stops(number_repo):
    from conftest import NUMBER_CONFIG

    from ratchet.proposers.base import BudgetExhausted, Usage

    seen_left = []

    def paid(value: float):
        def propose(context: ProposalContext) -> Proposal:
            seen_left.append(context.cost_left_usd)
            if context.cost_left_usd is not None and context.cost_left_usd < 0.4:
                raise BudgetExhausted("the next call could cost $0.40, more than is left")
            return Proposal(hypothesis=f"set {value}", edits={"value.txt": f"{value}\n"}, usage=Usage(1000, 50, 0.4))

        return propose

    repo = number_repo(NUMBER_CONFIG.replace("iterations = 5", "iterations = 50\ncost_usd = 1.0"))
    config = load_config(repo / "ratchet.toml")
    summary = Loop(repo, config, proposer=Scripted([paid(v) for v in (9, 8, 7, 6)]), observer=Display(Console(file=io.StringIO()))).run()
    experiments = Ledger(repo / ".ratchet" / "ledger.sqlite").experiments("t")
    assert [e.verdict for e in experiments[1:]] == [Verdict.KEEP, Verdict.KEEP]
    assert [(e.tokens_in, e.tokens_out, e.cost_usd) for e in experiments[1:]] == [(1000, 50, 0.4)] * 2
    assert seen_left[0] == 1.0 and abs(seen_left[2] - 0.2) < 1e-9
    assert "the next call could cost" in summary.stop_reason
