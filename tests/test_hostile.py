"""Hostile proposers and candidates, each in a real run (real git, real bubblewrap, real processes).

Every run has two experiments: the first is the attack, the second an honest proposal. Each
attack must end as invalid, tampered, crash or timeout with nothing kept; the honest proposal
after it must be kept (the run goes on); the user's checkout must be unchanged.

The proposer is a `command` proposer (`propose.py`, committed in the target): in experiment 1 it
runs `hostile_proposer.py`, which either attacks itself or plants `hostile_candidate.py` as the
candidate's code (`src/run.py`, in scope), which the harness's bench runs during measurement.
"""

from __future__ import annotations

import os
import socket
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

import pytest
from conftest import NUMBER_CONFIG, sh, snapshot
from rich.console import Console

from ratchet import Ledger, Loop, Verdict
from ratchet.config import load_config
from ratchet.measure.limits import cgroup_support
from ratchet.report.terminal import Display

BENCH = """\
    import pathlib, runpy
    # The candidate's own code, when it has some: what a real harness imports and runs.
    if pathlib.Path("src/run.py").exists():
        runpy.run_path("src/run.py")
    print("metric:", float(pathlib.Path("value.txt").read_text()))
"""

PROPOSE = """\
    import os, pathlib, runpy
    if os.environ["RATCHET_EXPERIMENT"] == "1":
        runpy.run_path("hostile_proposer.py")
    else:
        pathlib.Path("value.txt").write_text("5\\n")
        print("halve the number")
"""

# The hostile proposer that only plants the candidate's code.
PLANT = """\
    import pathlib, shutil
    pathlib.Path("src").mkdir(exist_ok=True)
    shutil.copy("hostile_candidate.py", "src/run.py")
    print("a faster implementation")
"""

FAILED = {Verdict.INVALID, Verdict.TAMPERED, Verdict.CRASH, Verdict.TIMEOUT}
SECRET = "sk-test-" + uuid.uuid4().hex


def make_config(mode: str, sandbox_extra: str = "") -> str:
    return (
        NUMBER_CONFIG.replace("iterations = 5", "iterations = 2")
        .replace('command = "true"', 'command = "{python} propose.py"')
        .replace("[budget]", "[verdict]\ncalibrate_pairs = 0\nconfirm_pairs = 0\n[budget]")
        + f'\n[sandbox]\nmode = "{mode}"\n{sandbox_extra}\n'
    )


def hostile_run(
    number_repo: Callable[..., Path],
    *,
    mode: str = "required",
    proposer: str | None = None,
    candidate: str | None = None,
    sandbox_extra: str = "",
) -> tuple[Path, list, dict[str, str]]:
    """Run the loop (two experiments) on a target whose experiment 1 is the attack."""
    files = {
        "bench.py": BENCH,
        "propose.py": PROPOSE,
        "hostile_proposer.py": proposer if proposer is not None else PLANT,
        "hostile_candidate.py": candidate or "",
    }
    repo = number_repo(make_config(mode, sandbox_extra), files=files)
    before = snapshot(repo)
    config = load_config(repo / "ratchet.toml")
    Loop(repo, config, observer=Display(Console(file=open(os.devnull, "w")))).run()
    ledger = Ledger(repo / ".ratchet" / "ledger.sqlite")
    experiments = ledger.experiments("t")
    ledger.close()
    return repo, experiments, before


def check_contained(repo: Path, experiments: list, before: dict[str, str], allowed: set[Verdict] = FAILED) -> None:
    """The attack failed, nothing of it was kept, the run went on, the user's checkout is as it was."""
    verdicts = [e.verdict for e in experiments]
    assert verdicts[0] is Verdict.BASELINE
    assert verdicts[1] in allowed, (verdicts[1], experiments[1].reason)
    assert experiments[1].commit is None
    assert verdicts[2] is Verdict.KEEP, (verdicts[2], experiments[2].reason)  # the run went on
    # Exactly one commit on the run branch, and it is the honest one.
    assert sh(repo, "git", "rev-list", "--count", "main..ratchet/t").strip() == "1"
    assert sh(repo, "git", "diff", "--name-only", "main", "ratchet/t").split() == ["value.txt"]
    assert snapshot(repo) == before
    # And the worktree is clean for the next experiment.
    assert sh(repo / ".ratchet" / "worktrees" / "t", "git", "status", "--porcelain", "--ignored") == ""


def hooks_of(repo: Path) -> list[str]:
    return sorted(p.name for p in (repo / ".git" / "hooks").iterdir())


MODES = ["required", "off"]


@pytest.fixture
def sandbox_mode(request: pytest.FixtureRequest) -> str:
    mode = request.param
    if mode == "required":
        request.getfixturevalue("sandbox_required")
    return mode


def modes(*names: str):
    return pytest.mark.parametrize("sandbox_mode", names, indirect=True)


# ---------------------------------------------------------------- proposers


@modes(*MODES)
def test_proposer_edits_the_harness(number_repo, sandbox_mode):
    repo, experiments, before = hostile_run(
        number_repo, mode=sandbox_mode, proposer="import pathlib\npathlib.Path('bench.py').write_text('print(\"metric: 0\")')\n"
    )
    check_contained(repo, experiments, before, {Verdict.INVALID})
    assert "bench.py" in experiments[1].reason


@modes(*MODES)
def test_proposer_adds_a_file_outside_the_scope(number_repo, sandbox_mode):
    repo, experiments, before = hostile_run(
        number_repo, mode=sandbox_mode, proposer="import pathlib\npathlib.Path('value.txt').write_text('1\\n')\npathlib.Path('notes.txt').write_text('x')\n"
    )
    check_contained(repo, experiments, before, {Verdict.INVALID})
    assert "notes.txt is outside the mutable scope" in experiments[1].reason


@modes(*MODES)
def test_proposer_replaces_a_scope_file_with_a_symlink_out_of_the_repository(number_repo, sandbox_mode, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("0\n")
    repo, experiments, before = hostile_run(
        number_repo,
        mode=sandbox_mode,
        proposer=f"import os\nos.remove('value.txt')\nos.symlink({str(outside)!r}, 'value.txt')\n",
    )
    check_contained(repo, experiments, before, {Verdict.INVALID})
    assert "symlink" in experiments[1].reason
    assert outside.read_text() == "0\n"


def test_proposer_installs_a_git_hook_sandboxed(number_repo, sandbox_required):
    hooks = None
    proposer = """\
        import os, pathlib
        hook = pathlib.Path(os.environ["RATCHET_WORKTREE"]).parents[2] / ".git" / "hooks" / "pre-commit"
        hook.write_text("#!/bin/sh\\necho pwned > /tmp/pwned\\n")
        hook.chmod(0o755)
    """
    repo, experiments, before = hostile_run(number_repo, proposer=textwrap.dedent(proposer))
    hooks = hooks_of(repo)
    check_contained(repo, experiments, before, {Verdict.INVALID})
    assert "Read-only file system" in experiments[1].reason
    assert "pre-commit" not in hooks


def test_proposer_installs_a_git_hook_unsandboxed_is_tampered_and_put_back(number_repo):
    proposer = """\
        import os, pathlib
        git = pathlib.Path(os.environ["RATCHET_WORKTREE"]).parents[2] / ".git"
        (git / "hooks" / "pre-commit").write_text("#!/bin/sh\\necho pwned\\n")
        with open(git / "config", "a") as config:
            config.write("[filter \\"evil\\"]\\n\\tclean = touch /tmp/ratchet-pwned\\n")
        pathlib.Path("value.txt").write_text("1\\n")
    """
    repo, experiments, before = hostile_run(number_repo, mode="off", proposer=textwrap.dedent(proposer))
    check_contained(repo, experiments, before, {Verdict.TAMPERED})
    assert ".git/hooks/pre-commit" in experiments[1].reason and ".git/config" in experiments[1].reason
    assert "pre-commit" not in hooks_of(repo)
    assert "evil" not in (repo / ".git" / "config").read_text()
    # Nothing is lost: what was found is kept aside.
    aside = list((repo / ".ratchet" / "quarantine").rglob("pre-commit"))
    assert len(aside) == 1 and "pwned" in aside[0].read_text()


@modes(*MODES)
def test_proposer_prints_the_environment(number_repo, sandbox_mode, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    proposer = """\
        import os
        for name, value in sorted(os.environ.items()):
            print(f"{name}={value}")
    """
    repo, experiments, before = hostile_run(number_repo, mode=sandbox_mode, proposer=textwrap.dedent(proposer))
    check_contained(repo, experiments, before, {Verdict.INVALID})  # it changed nothing
    assert "RATCHET_EXPERIMENT=1" in (Path(experiments[1].log_dir) / "proposer.stdout").read_text()
    assert_secret_nowhere(repo)


def test_proposer_leaves_a_background_process(number_repo, sandbox_required, tmp_path):
    proposer = """\
        import pathlib, subprocess, time
        pathlib.Path("value.txt").write_text("1\\n")
        # After ratchet checked the proposal, turn it into something else.
        subprocess.Popen(["setsid", "sh", "-c", "sleep 2; echo 0 > value.txt; echo x > bench.py"])
        time.sleep(0.3)
    """
    repo, experiments, before = hostile_run(number_repo, proposer=textwrap.dedent(proposer))
    check_contained(repo, experiments, before, {Verdict.INVALID})
    assert "left 1 process" in experiments[1].reason or "left 2 processes" in experiments[1].reason
    time.sleep(2.5)
    assert sh(repo / ".ratchet" / "worktrees" / "t", "git", "status", "--porcelain") == ""


# ---------------------------------------------------------------- candidates


@modes(*MODES)
def test_candidate_rewrites_the_harness_at_run_time(number_repo, sandbox_mode):
    candidate = "import pathlib\npathlib.Path('bench.py').write_text('print(\"metric: 0\")')\n"
    repo, experiments, before = hostile_run(number_repo, mode=sandbox_mode, candidate=candidate)
    check_contained(repo, experiments, before, {Verdict.TAMPERED})
    assert "bench.py" in experiments[1].reason


def test_candidate_installs_a_git_hook_sandboxed(number_repo, sandbox_required):
    candidate = """\
        import pathlib
        hook = pathlib.Path.cwd().parents[2] / ".git" / "hooks" / "post-checkout"
        hook.write_text("#!/bin/sh\\necho pwned\\n")
    """
    repo, experiments, before = hostile_run(number_repo, candidate=textwrap.dedent(candidate))
    check_contained(repo, experiments, before, {Verdict.CRASH})
    assert "Read-only file system" in experiments[1].output_tail
    assert "post-checkout" not in hooks_of(repo)


def test_candidate_installs_a_git_hook_unsandboxed_is_tampered(number_repo):
    candidate = """\
        import pathlib
        hook = pathlib.Path.cwd().parents[2] / ".git" / "hooks" / "post-checkout"
        hook.write_text("#!/bin/sh\\necho pwned\\n")
    """
    repo, experiments, before = hostile_run(number_repo, mode="off", candidate=textwrap.dedent(candidate))
    check_contained(repo, experiments, before, {Verdict.TAMPERED})
    assert ".git/hooks/post-checkout" in experiments[1].reason
    assert "post-checkout" not in hooks_of(repo)


def test_candidate_writes_into_the_ratchet_state(number_repo, sandbox_required):
    candidate = """\
        import pathlib
        state = pathlib.Path.cwd().parents[1]
        with open(state / "ledger.sqlite", "r+b") as ledger:
            ledger.write(b"garbage")
    """
    repo, experiments, before = hostile_run(number_repo, candidate=textwrap.dedent(candidate))
    check_contained(repo, experiments, before, {Verdict.CRASH})
    assert "Read-only file system" in experiments[1].output_tail
    assert (repo / ".ratchet" / "ledger.sqlite").read_bytes().startswith(b"SQLite format 3")


def test_candidate_writes_outside_its_worktree(number_repo, sandbox_required):
    home_file = Path.home() / f".ratchet-escape-{uuid.uuid4().hex}"
    candidate = f"""\
        import pathlib
        for target in (pathlib.Path("..") / "escape.txt", pathlib.Path({str(home_file)!r})):
            try:
                target.write_text("escaped")
            except OSError as exc:
                print("refused:", target, exc)
            else:
                print("WROTE", target)
        raise SystemExit(3)
    """
    try:
        repo, experiments, before = hostile_run(number_repo, candidate=textwrap.dedent(candidate))
        check_contained(repo, experiments, before, {Verdict.CRASH})
        assert "WROTE" not in experiments[1].output_tail
        assert experiments[1].output_tail.count("Read-only file system") == 2
        assert not home_file.exists()
        assert not (repo / ".ratchet" / "worktrees" / "escape.txt").exists()
    finally:
        home_file.unlink(missing_ok=True)


@modes(*MODES)
def test_candidate_leaves_a_setsid_process_that_edits_later(number_repo, sandbox_mode):
    candidate = """\
        import subprocess, time
        subprocess.Popen(["setsid", "sh", "-c", "sleep 2; echo 0 > value.txt; echo 'print(\\"metric: 0\\")' > bench.py"])
        time.sleep(0.3)
    """
    repo, experiments, before = hostile_run(number_repo, mode=sandbox_mode, candidate=textwrap.dedent(candidate))
    check_contained(repo, experiments, before, {Verdict.CRASH})
    assert "left" in experiments[1].reason and "running after it ended" in experiments[1].reason
    time.sleep(2.5)  # it would have struck by now
    assert sh(repo / ".ratchet" / "worktrees" / "t", "git", "status", "--porcelain") == ""
    assert sh(repo, "git", "show", "ratchet/t:bench.py") == textwrap.dedent(BENCH)


@modes(*MODES)
def test_candidate_prints_the_environment(number_repo, sandbox_mode, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    candidate = """\
        import os, sys
        for name, value in sorted(os.environ.items()):
            print(f"{name}={value}")
        sys.exit(0)
    """
    repo, experiments, before = hostile_run(number_repo, mode=sandbox_mode, candidate=textwrap.dedent(candidate))
    check_contained(repo, experiments, before, {Verdict.INVALID})
    printed = (Path(experiments[1].log_dir) / "metric.stdout").read_text()
    assert "PATH=" in printed and "HOME=" in printed
    assert_secret_nowhere(repo)


def assert_secret_nowhere(repo: Path) -> None:
    """The secret is in no log, no ledger row, no file of the run."""
    for path in (repo / ".ratchet").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


@modes(*MODES)
def test_candidate_prints_a_gigabyte(number_repo, sandbox_mode):
    candidate = """\
        import os
        block = b"x" * (1 << 20)
        for _ in range(1024):
            os.write(1, block)
        raise SystemExit(0)
    """
    repo, experiments, before = hostile_run(
        number_repo, mode=sandbox_mode, candidate=textwrap.dedent(candidate), sandbox_extra='output = "64KB"'
    )
    check_contained(repo, experiments, before, {Verdict.INVALID})
    log = Path(experiments[1].log_dir) / "metric.stdout"
    assert log.stat().st_size < 2 * 65536 + 500
    text = log.read_text()
    assert f"{1024 * 1024 * 1024 - 2 * 65536} bytes of output cut here" in text


@modes(*MODES)
def test_candidate_allocates_beyond_the_memory_limit(number_repo, sandbox_mode):
    candidate = "hog = bytearray(4 * 1024 ** 3)\nprint('allocated')\n"
    repo, experiments, before = hostile_run(
        number_repo, mode=sandbox_mode, candidate=candidate, sandbox_extra='memory = "512MB"'
    )
    check_contained(repo, experiments, before, {Verdict.CRASH})
    assert "MemoryError" in experiments[1].output_tail


@modes(*MODES)
def test_candidate_forks_many_processes(number_repo, sandbox_mode):
    candidate = """\
        import os, time
        children = []
        for _ in range(200):
            pid = os.fork()
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            children.append(pid)
        print("forked", len(children))
    """
    repo, experiments, before = hostile_run(
        number_repo, mode=sandbox_mode, candidate=textwrap.dedent(candidate), sandbox_extra="processes = 40"
    )
    check_contained(repo, experiments, before, {Verdict.CRASH, Verdict.TIMEOUT})
    if cgroup_support():  # where the limit is enforceable, it is what stopped the fork bomb
        assert "Resource temporarily unavailable" in experiments[1].output_tail


def test_candidate_cannot_reach_the_network(number_repo, sandbox_required):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    accepted: list[object] = []
    threading.Thread(target=accept_one, args=(server, accepted), daemon=True).start()
    candidate = f"""\
        import socket
        socket.create_connection(("127.0.0.1", {port}), timeout=5)
        print("connected")
    """
    try:
        repo, experiments, before = hostile_run(number_repo, candidate=textwrap.dedent(candidate))
    finally:
        server.close()
    check_contained(repo, experiments, before, {Verdict.CRASH})
    assert "ConnectionRefusedError" in experiments[1].output_tail
    assert not accepted


@modes(*MODES)
def test_candidate_points_the_worktree_at_its_own_git_config(number_repo, sandbox_mode, tmp_path):
    """A .git file of the candidate's making would have ratchet's own (unsandboxed) git run its filter."""
    pwned = tmp_path / "pwned"
    candidate = f"""\
        import pathlib, subprocess
        # A repository of its own whose index holds value.txt, then changed: git status must
        # hash value.txt again, through the candidate's clean filter.
        subprocess.run(["git", "init", "-q", "evil"], check=True)
        subprocess.run(["git", "--git-dir=evil/.git", "--work-tree=.", "add", "value.txt"], check=True)
        pathlib.Path("value.txt").write_text("10.0\\n")
        with open("evil/.git/config", "a") as config:
            config.write('[filter "evil"]\\n\\tclean = touch {pwned}; cat\\n')
        pathlib.Path(".gitattributes").write_text("* filter=evil\\n")
        pathlib.Path(".git").write_text("gitdir: evil/.git\\n")
    """
    repo, experiments, before = hostile_run(number_repo, mode=sandbox_mode, candidate=textwrap.dedent(candidate))
    check_contained(repo, experiments, before, {Verdict.TAMPERED})
    assert ".git" in experiments[1].reason
    assert not pwned.exists()


@modes(*MODES)
def test_the_proposers_key_goes_to_the_proposer_only(number_repo, sandbox_mode, monkeypatch):
    monkeypatch.setenv("MODEL_API_KEY", SECRET)
    proposer = """\
        import os, pathlib
        key = os.environ.get("MODEL_API_KEY", "")
        pathlib.Path(os.environ["RATCHET_HYPOTHESIS_FILE"]).write_text(f"the key has {len(key)} characters")
        pathlib.Path("src").mkdir(exist_ok=True)
        pathlib.Path("src/run.py").write_text("import os\\nprint(sorted(os.environ.items()))\\nraise SystemExit(1)\\n")
    """
    config_extra = 'env = ["MODEL_API_KEY"]'
    files = {
        "bench.py": BENCH, "propose.py": PROPOSE, "hostile_proposer.py": textwrap.dedent(proposer), "hostile_candidate.py": "",
    }  # fmt: skip
    config = make_config(sandbox_mode).replace('command = "{python} propose.py"', 'command = "{python} propose.py"\n' + config_extra)
    repo = number_repo(config, files=files)
    before = snapshot(repo)
    Loop(repo, load_config(repo / "ratchet.toml"), observer=Display(Console(file=open(os.devnull, "w")))).run()
    ledger = Ledger(repo / ".ratchet" / "ledger.sqlite")
    experiments = ledger.experiments("t")
    ledger.close()
    check_contained(repo, experiments, before, {Verdict.CRASH})
    assert experiments[1].hypothesis == f"the key has {len(SECRET)} characters"  # the proposer had it
    assert "PATH" in experiments[1].output_tail  # the candidate printed its environment...
    assert_secret_nowhere(repo)  # ... without the key


def accept_one(server: socket.socket, accepted: list[object]) -> None:
    try:
        accepted.append(server.accept())
    except OSError:  # closed at the end of the test
        pass
