"""The parts of containment, each with real processes: the sandbox, limits, output caps, leftovers,
the environment allowlist, the git guard, the CLI's warnings and `ratchet doctor`."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from conftest import NUMBER_CONFIG, make_repo, run_cli, sh

from ratchet.containment import Containment
from ratchet.environment import untrusted_env
from ratchet.gitguard import GitGuard
from ratchet.limits import Limits
from ratchet.sandbox import Sandbox, probe, repository_paths


def contained(sandboxed: bool, limits: Limits | None = None, **sandbox: object) -> Containment:
    box = Sandbox(probe().bwrap or "bwrap", **sandbox) if sandboxed else None  # type: ignore[arg-type]
    return Containment(sandbox=box, limits=limits or Limits())


def run(containment: Containment, command: str, cwd: Path, **kw):
    return containment.run(command, cwd=cwd, timeout=kw.pop("timeout", 30), log_prefix=cwd.parent / "logs" / "cmd", **kw)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A repository with a linked worktree, laid out like a run's."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    worktree = repo / ".ratchet" / "worktrees" / "t"
    sh(repo, "git", "worktree", "add", "-q", "-b", "ratchet/t", str(worktree))
    return worktree


# ---------------------------------------------------------------- environment


def test_untrusted_env_is_an_allowlist():
    source = {
        "PATH": "/bin", "HOME": "/home/u", "LC_ALL": "C", "LANG": "C", "OPENAI_API_KEY": "sk-1",
        "AWS_SECRET_ACCESS_KEY": "s", "GITHUB_TOKEN": "t", "CUDA_VISIBLE_DEVICES": "0", "CUDA_HOME": "/c",
        "PYTHONPATH": "/p",
    }  # fmt: skip
    env = untrusted_env(source=source)
    assert env == {"PATH": "/bin", "HOME": "/home/u", "LC_ALL": "C", "LANG": "C", "CUDA_VISIBLE_DEVICES": "0"}
    env = untrusted_env({"RATCHET_RUN": "t", "PATH": "/x"}, ["CUDA_*", "PYTHONPATH"], source=source)
    assert env == {"PATH": "/x", "HOME": "/home/u", "LC_ALL": "C", "LANG": "C", "CUDA_VISIBLE_DEVICES": "0", "CUDA_HOME": "/c", "PYTHONPATH": "/p", "RATCHET_RUN": "t"}


def test_measurements_get_configured_names_only(checkout, monkeypatch):
    monkeypatch.setenv("MY_TOKEN", "secret-token")
    monkeypatch.setenv("MY_SETTING", "42")
    result = run(Containment(None, Limits(), allow_env=("MY_SETTING",)), "env", checkout)
    assert "MY_SETTING=42" in result.read()
    assert "secret-token" not in result.read()


# ---------------------------------------------------------------- the sandbox


def test_sandbox_filesystem(checkout, sandbox_required, tmp_path):
    repo = checkout.parents[2]
    probe_name = f"ratchet-probe-{uuid.uuid4().hex}"
    script = f"""
        touch in-worktree && echo worktree:ok
        touch /tmp/{probe_name} && echo tmp:ok
        echo tmpdir:$TMPDIR
        touch {repo}/user-file 2>/dev/null || echo repo:refused
        touch {repo}/.git/hooks/evil 2>/dev/null || echo git:refused
        touch {repo}/.ratchet/evil 2>/dev/null || echo state:refused
        touch $HOME/{probe_name} 2>/dev/null || echo home:refused
        touch /usr/{probe_name} 2>/dev/null || echo usr:refused
        git -C {checkout} status --porcelain >/dev/null && echo git-reads:ok
    """
    result = run(contained(True, repository=repository_paths(repo)), script, checkout)
    out = result.read()
    for line in ("worktree:ok", "tmp:ok", "tmpdir:/tmp", "repo:refused", "git:refused", "state:refused", "home:refused", "usr:refused", "git-reads:ok"):
        assert line in out, (line, out, result.read("stderr"))
    assert (checkout / "in-worktree").exists()
    assert not Path("/tmp", probe_name).exists()  # the sandbox's /tmp is its own
    assert not (repo / "user-file").exists() and not (repo / ".git" / "hooks" / "evil").exists()
    assert not (Path.home() / probe_name).exists()


def test_sandbox_writable_paths(checkout, sandbox_required, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    result = run(contained(True, writable=(cache,)), f"echo hi > {cache}/x && echo ok", checkout)
    assert result.ok and (cache / "x").read_text() == "hi\n"


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[object] = []
    threading.Thread(target=accept_one, args=(server, accepted), daemon=True).start()
    yield server.getsockname()[1], accepted
    server.close()


CONNECT = sys.executable + " -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5); print('connected')\""


def test_sandbox_cuts_the_network(checkout, sandbox_required, listener):
    port, accepted = listener
    result = run(contained(True), CONNECT.format(port=port), checkout)
    assert not result.ok and "ConnectionRefusedError" in result.read("stderr")
    assert not accepted


def test_sandbox_network_when_allowed(checkout, sandbox_required, listener):
    port, _ = listener
    result = run(contained(True, network=True), CONNECT.format(port=port), checkout)
    assert result.ok and "connected" in result.read()


def test_sandbox_timeout_kills_everything(checkout, sandbox_required):
    result = run(contained(True), "sleep 60 & sleep 60", checkout, timeout=0.5)
    assert result.timed_out and result.exit_code is None


# ---------------------------------------------------------------- leftovers, limits, output


@pytest.mark.parametrize("sandboxed", [True, False])
def test_processes_left_behind_are_killed_and_named(checkout, sandboxed, request):
    if sandboxed:
        request.getfixturevalue("sandbox_required")
    witness = checkout / "witness"
    result = run(contained(sandboxed), f"setsid sh -c 'sleep 1; touch {witness}' & sleep 0.2; echo done", checkout)
    assert result.exit_code == 0 and not result.ok
    assert set(result.survivors) <= {"sh", "sleep", "setsid"} and result.survivors
    assert "running after it ended" in result.problem
    assert "killed]" in result.read("stderr")
    time.sleep(1.5)
    assert not witness.exists()


def test_clean_command_has_no_survivors(checkout):
    result = run(contained(False), "sleep 0.1 & wait; echo done", checkout)
    assert result.ok and result.survivors == ()


@pytest.mark.parametrize("sandboxed", [True, False])
def test_output_keeps_head_and_tail(checkout, sandboxed, request):
    if sandboxed:
        request.getfixturevalue("sandbox_required")
    command = "echo FIRST; head -c 3000000 /dev/zero | tr '\\0' x; echo; echo LAST; echo ERR >&2"
    result = run(contained(sandboxed, Limits(output=4096)), command, checkout)
    assert result.ok
    text = result.read()
    assert text.startswith("FIRST\n") and text.endswith("LAST\n")
    assert "bytes of output cut here" in text
    assert result.stdout_path.stat().st_size < 2 * 4096 + 200
    assert result.read("stderr") == "ERR\n"


def test_limits_cpu_time_and_file_size(checkout):
    spin = run(contained(False, Limits(cpu_time=1)), f"{sys.executable} -c 'while True: pass'", checkout, timeout=20)
    assert not spin.ok and not spin.timed_out  # SIGXCPU, well before the timeout
    big = run(contained(False, Limits(file_size=1024 * 1024)), "head -c 2000000 /dev/zero > big.bin", checkout)
    assert not big.ok and (checkout / "big.bin").stat().st_size == 1024 * 1024


def test_limits_memory(checkout):
    result = run(contained(False, Limits(memory=256 * 1024 * 1024)), f"{sys.executable} -c 'bytearray(1 << 30)'", checkout)
    assert not result.ok and "MemoryError" in result.read("stderr")


# ---------------------------------------------------------------- git guard


def test_git_guard_puts_back_hooks_config_and_info(tmp_path):
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    git_dir = repo / ".git"
    config = (git_dir / "config").read_text()
    guard = GitGuard(git_dir, None, tmp_path / "quarantine")
    assert guard.check() == []
    (git_dir / "hooks" / "pre-commit").write_text("#!/bin/sh\necho pwned\n")
    (git_dir / "config").write_text(config + "[core]\n\tfsmonitor = touch /tmp/pwned\n")
    os.rename(git_dir / "info", tmp_path / "info-moved")
    os.symlink(tmp_path, git_dir / "info")
    changed = guard.check()
    assert {".git/config", ".git/hooks/pre-commit", ".git/info"} <= set(changed)
    assert not (git_dir / "hooks" / "pre-commit").exists()
    assert (git_dir / "config").read_text() == config
    assert (git_dir / "info").is_dir() and not (git_dir / "info").is_symlink()
    assert (git_dir / "info" / "exclude").read_text() == (tmp_path / "info-moved" / "exclude").read_text()
    assert guard.check() == []
    kept = {p.name for p in (tmp_path / "quarantine").rglob("*")}
    assert {"pre-commit", "config", "info"} <= kept


# ---------------------------------------------------------------- the CLI


def _config(mode: str) -> str:
    return NUMBER_CONFIG.replace("iterations = 5", "iterations = 1").replace(
        "[budget]", "[verdict]\ncalibrate_pairs = 0\nconfirm_pairs = 0\n[budget]"
    ) + f'\n[sandbox]\nmode = "{mode}"\n'


def _path_without_bwrap(tmp_path: Path) -> str:
    """A PATH with every program of this one except bwrap."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            target = bin_dir / name
            if name != "bwrap" and not target.exists():
                target.symlink_to(os.path.join(folder, name))
    return str(bin_dir)


def test_required_sandbox_missing_is_one_line_error(number_repo, tmp_path):
    repo = number_repo(_config("required"))
    result = run_cli(repo, "run", env={"PATH": _path_without_bwrap(tmp_path)})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert 'ratchet: error: [sandbox] mode = "required", but bwrap is not installed' in result.stderr


def test_missing_sandbox_warns_at_start_and_in_status(number_repo, tmp_path):
    repo = number_repo(_config("auto"))
    env = {"PATH": _path_without_bwrap(tmp_path)}
    result = run_cli(repo, "run", env=env)
    assert result.returncode == 0, result.stderr
    assert "no sandbox: bwrap is not installed" in result.stdout
    assert result.stdout.index("no sandbox") < result.stdout.index("#0")  # at the start
    status = run_cli(repo, "status", env=env)
    assert "warning: no sandbox: bwrap is not installed" in status.stdout


def test_sandbox_off_is_said_in_status(number_repo):
    repo = number_repo(_config("off"))
    assert "sandbox off" in run_cli(repo, "run").stdout
    assert "warning: sandbox off" in run_cli(repo, "status").stdout


def test_doctor_on_a_good_setup(number_repo):
    repo = number_repo(_config("auto"))
    result = run_cli(repo, "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for line in ("ok   git: git version", "config: ratchet.toml", "ok   scope: 1 file: value.txt", "ok   harness: 1 file committed: bench.py"):
        assert line in out, out
    assert "ok   metric: 10 then 10 on HEAD" in out
    if probe().usable:
        assert "ok   sandbox: bubblewrap" in out
    assert sh(repo, "git", "worktree", "list").count("\n") == 1  # its checkout is gone
    assert sh(repo, "git", "status", "--porcelain") == ""


def test_doctor_names_each_problem_with_a_fix(number_repo):
    config = _config("auto").replace('mutable = ["value.txt", "src/**"]', 'mutable = ["nothing/**"]')
    repo = number_repo(config)
    (repo / "bench.py").write_text("print('changed')\n")
    result = run_cli(repo, "doctor")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "fail scope: ['nothing/**'] matches no file" in result.stdout
    assert "fail harness: not committed: bench.py" in result.stdout
    assert result.stdout.count("fix: ") >= 2
    assert "2 checks failed" in result.stderr


def test_doctor_reports_a_metric_that_does_not_parse(number_repo):
    repo = number_repo(_config("auto").replace(r"regex = 'metric: (\S+)'", r"regex = 'loss: (\S+)'"))
    result = run_cli(repo, "doctor")
    assert result.returncode == 1
    assert "fail metric:" in result.stdout and "matched nothing" in result.stdout
    assert "fix: run the [metric] command by hand" in result.stdout


def accept_one(server: socket.socket, accepted: list[object]) -> None:
    try:
        accepted.append(server.accept())
    except OSError:  # closed at the end of the test
        pass


def test_wildcard_allowed_secrets_are_scrubbed():
    from ratchet.environment import untrusted_env

    source = {"PATH": "/bin", "MY_SETTING": "1", "MY_API_KEY": "sk-x", "MY_TOKEN": "t", "OPENAI_API_KEY": "sk-y"}
    env = untrusted_env(allow=["MY_*"], source=source)
    assert env == {"PATH": "/bin", "MY_SETTING": "1"}
    # Named exactly, a variable is the user's explicit choice and passes.
    assert untrusted_env(allow=["MY_*", "MY_TOKEN"], source=source)["MY_TOKEN"] == "t"
    assert "OPENAI_API_KEY" not in untrusted_env(allow=["*"], source=source)
