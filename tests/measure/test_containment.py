"""The parts of containment, each with real processes: the sandbox, limits, output caps, leftovers,
the environment allowlist and the CLI's warnings (the git guard: tests/workspace; doctor: tests/commands)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from conftest import make_repo, run_cli, sandbox_config, sh

from ratchet.measure.containment import Containment
from ratchet.measure.environment import untrusted_env
from ratchet.measure.limits import Limits
from ratchet.measure.sandbox import (
    Sandbox,
    hidden,
    named_paths,
    probe,
    repository_paths,
)


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


@pytest.mark.parametrize("sandboxed", [True, False])
def test_a_line_that_needs_a_shell_runs_as_under_sh_c(checkout, sandboxed, request):
    # In the sandbox such a line runs in a subshell of the wrapper (no second shell to exec):
    # no positional parameters, its own exit status, its own `exit`, variables and pipes.
    if sandboxed:
        request.getfixturevalue("sandbox_required")
    line = 'echo "args=$#[$1]"; x=$(printf "%s" a | tr a b); echo "x=$x"; (exit 4) || echo "sub=$?"; exit 3; echo never'
    result = run(contained(sandboxed), line, checkout)
    assert result.exit_code == 3 and result.read() == "args=0[]\nx=b\nsub=4\n", result.read()
    assert result.survivors == ()


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


# ---------------------------------------------------------------- the CLI


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
    repo = number_repo(sandbox_config("required"))
    result = run_cli(repo, "run", env={"PATH": _path_without_bwrap(tmp_path)})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert 'ratchet: error: [sandbox] mode = "required", but bwrap is not installed' in result.stderr


def test_missing_sandbox_warns_at_start_and_in_status(number_repo, tmp_path):
    repo = number_repo(sandbox_config("auto"))
    env = {"PATH": _path_without_bwrap(tmp_path)}
    result = run_cli(repo, "run", env=env)
    assert result.returncode == 0, result.stderr
    assert "no sandbox: bwrap is not installed" in result.stdout
    assert result.stdout.index("no sandbox") < result.stdout.index("#0")  # at the start
    status = run_cli(repo, "status", env=env)
    assert "warning: no sandbox: bwrap is not installed" in status.stdout


def test_sandbox_off_is_said_in_status(number_repo):
    repo = number_repo(sandbox_config("off"))
    assert "sandbox off" in run_cli(repo, "run").stdout
    assert "warning: sandbox off" in run_cli(repo, "status").stdout


def accept_one(server: socket.socket, accepted: list[object]) -> None:
    try:
        accepted.append(server.accept())
    except OSError:  # closed at the end of the test
        pass


def test_wildcard_allowed_secrets_are_scrubbed():
    from ratchet.measure.environment import untrusted_env

    source = {"PATH": "/bin", "MY_SETTING": "1", "MY_API_KEY": "sk-x", "MY_TOKEN": "t", "OPENAI_API_KEY": "sk-y"}
    env = untrusted_env(allow=["MY_*"], source=source)
    assert env == {"PATH": "/bin", "MY_SETTING": "1"}
    # Named exactly, a variable is the user's explicit choice and passes.
    assert untrusted_env(allow=["MY_*", "MY_TOKEN"], source=source)["MY_TOKEN"] == "t"
    assert "OPENAI_API_KEY" not in untrusted_env(allow=["*"], source=source)


# ---------------------------------------------------------------- what the private /tmp hides


def _venv(folder: Path) -> Path:
    """A virtualenv (no pip: fast) on this interpreter, with its packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(folder)], check=True)
    return folder


def test_named_paths_of_a_command_line(tmp_path):
    tool = tmp_path / "bin" / "tool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    command = f"tool --data=/tmp/data 'x y' {tmp_path}/a.py # /tmp/comment"
    assert named_paths(command, path=str(tool.parent)) == [Path("/tmp/data"), tmp_path / "a.py", tool]
    assert named_paths("echo 'unbalanced /tmp/x", path="/nonexistent") == [Path("/tmp/x")]  # split on blanks


def test_revealed_binds_what_is_hidden_never_all_of_tmp(tmp_path):
    assert hidden(tmp_path)  # pytest's tmp_path is under /tmp, as the cases below need
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "metric.sh").write_text("echo 1\n")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    repo = tmp_path / "repo"
    repo.mkdir()
    loose = Path("/tmp") / f"ratchet-loose-{uuid.uuid4().hex}.sh"
    loose.write_text("echo 1\n")
    try:
        box = Sandbox("bwrap", repository=(repo,), readable=(Path("/usr"),))
        command = f"sh {tools}/metric.sh {loose} {tmp_path}/link {repo}/bench.py /tmp {tmp_path}/missing"
        shown = box.revealed(command, workdir=repo, path=f"{venv}/bin:/usr/bin:/tmp")
        # The folder of a named file, a file right in /tmp by itself, a venv from its bin,
        # a symlink and its target; not /usr (visible anyway), the repository, /tmp or what is missing.
        assert sorted(shown) == sorted([tools, loose, venv, tmp_path / "link", real])
        argv = box.argv(command, workdir=repo, path=f"{venv}/bin")
        assert ["--ro-bind-try", str(venv), str(venv)] == argv[argv.index(str(venv)) - 1 : argv.index(str(venv)) + 2]
        assert argv.index(str(venv)) < argv.index(str(repo))  # the checkout is mounted over it
    finally:
        loose.unlink()


def test_hidden_path_hint(tmp_path):
    from ratchet.measure.sandbox import hidden_path_hint

    data, repo, venv = tmp_path / "data", tmp_path / "repo", tmp_path / "v"
    for folder in (data, repo, venv / "bin"):
        folder.mkdir(parents=True)
    (data / "train.csv").write_text("1\n")
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "bin" / "python3").write_text("")
    (repo / "bench.py").write_text("")
    box = Sandbox("bwrap", repository=(repo,))

    def hint(output: str, **kw: object) -> str | None:
        return hidden_path_hint(output, box, workdir=repo, **kw)  # type: ignore[arg-type]

    said = hint(f"FileNotFoundError: [Errno 2] No such file or directory: '{data}/train.csv'")
    assert said == (
        f"the sandbox hides {data}/train.csv (it exists outside, but the sandbox's /tmp and /dev/shm are its own): "
        f'add "{data}" to [sandbox] readable'
    )
    assert f'add "{venv}" to' in (hint(f"/bin/sh: 1: {venv}/bin/python3: not found") or "")
    # Named without "not found" (a test runner's own tmp path), in the checkout, bound because
    # the command names it, or missing outside too: no hint.
    assert hint(f"wrote {data}/train.csv") is None
    assert hint(f"No such file or directory: '{repo}/bench.py'") is None
    assert hint(f"No such file or directory: '{data}/train.csv'", command=f"cat {data}/train.csv") is None
    assert hint(f"No such file or directory: '{tmp_path}/nothing'") is None


def test_readable_refuses_all_of_tmp():
    from ratchet.config import ConfigError, SandboxSection

    assert SandboxSection(readable=["/tmp/data"]).readable == ["/tmp/data"]
    with pytest.raises(ValueError, match="cannot be readable"):
        SandboxSection(readable=["/tmp/"])
    assert ConfigError  # the CLI turns the error into one line (tests/config/test_loader.py)


def test_python_inside_is_the_one_outside(checkout, sandbox_required, tmp_path, monkeypatch):
    venv = _venv(tmp_path / "venv")
    monkeypatch.setenv("PATH", f"{venv}/bin{os.pathsep}{os.environ['PATH']}")
    command = "python -c 'import sys; print(sys.executable, sys.prefix)'"
    outside = subprocess.run(command, shell=True, capture_output=True, text=True, check=True).stdout
    assert outside.split()[1] == str(venv)
    inside = run(Containment(sandbox=Sandbox(probe().bwrap or "bwrap"), limits=Limits()), command, checkout)
    assert inside.ok, inside.read("stderr")
    assert inside.read() == outside


def test_scripts_under_tmp_run_in_the_sandbox(number_repo, tmp_path):
    """A proposer script and a metric script in a folder of /tmp that the sandbox hides, each
    importing or calling a neighbour: a run with the sandbox required keeps the candidate."""
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "reading.py").write_text("import pathlib\ndef value():\n    return float(pathlib.Path('value.txt').read_text())\n")
    (tools / "metric.py").write_text("import reading\nprint('metric:', reading.value())\n")
    (tools / "number.sh").write_text("echo 5\n")
    (tools / "propose.sh").write_text(f"sh {tools}/number.sh > value.txt\n")
    config = sandbox_config("required").replace('command = "{python} bench.py"', f'command = "{{python}} {tools}/metric.py"')
    config = config.replace('command = "true"', f'command = "sh {tools}/propose.sh"')
    repo = number_repo(config)
    result = run_cli(repo, "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "#0   baseline  number=10" in result.stdout and "#1   keep      number=5" in result.stdout, result.stdout


# ---------------------------------------------------------------- bytecode


def _plant_bytecode(module: Path, planted: str) -> None:
    """A .pyc of ``planted`` beside ``module``, forged to match the source's size and mtime,
    the only checks Python makes before loading it instead of the source."""
    import importlib.util
    import py_compile

    source = module.read_text()
    assert len(planted) == len(source)
    forged = module.parent / "forged.tmp"
    forged.write_text(planted)
    stat = module.stat()
    os.utime(forged, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    py_compile.compile(str(forged), cfile=importlib.util.cache_from_source(str(module)), doraise=True)
    forged.unlink()


def test_measurements_write_no_bytecode_and_load_none_planted(checkout, sandbox_required):
    module = checkout / "mod.py"
    module.write_text("VALUE = 'source!'\n")
    (checkout / "other.py").write_text("X = 1\n")
    command = f"{sys.executable} -c 'import mod, other; print(mod.VALUE)'"
    _plant_bytecode(module, "VALUE = 'planted'\n")
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    plain = subprocess.run(command, shell=True, cwd=checkout, capture_output=True, text=True, env=clean_env)
    assert plain.stdout == "planted\n"  # the attack is real
    for sandboxed in (True, False):
        shutil.rmtree(checkout / "__pycache__", ignore_errors=True)
        _plant_bytecode(module, "VALUE = 'planted'\n")
        box = Sandbox(probe().bwrap or "bwrap") if sandboxed else None
        result = run(Containment(sandbox=box, limits=Limits(), bytecode_folders=(".",)), command, checkout)
        assert result.read() == "source!\n", (sandboxed, result.read("stderr"))
        assert not (checkout / "__pycache__").exists()  # removed, and none written
    assert Containment(sandbox=None, limits=Limits()).environment()["PYTHONDONTWRITEBYTECODE"] == "1"


def test_module_folders_and_drop_bytecode(tmp_path):
    from ratchet.measure.containment import drop_bytecode, module_folders

    files = {"bench.py": "", "pkg/a.py": "", "pkg/data.txt": "", "kept/c.py": "", "kept/__pycache__/c.cpython-311.pyc": ""}
    repo = make_repo(tmp_path / "repo", files)
    assert module_folders(repo) == (".", "pkg")  # kept/ commits its bytecode: git's to watch
    assert module_folders(tmp_path / "not-a-repo") == ()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("x")
    (repo / "__pycache__").symlink_to(outside)
    (repo / "pkg" / "__pycache__").mkdir()
    (repo / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_text("x")
    drop_bytecode(repo, module_folders(repo))
    assert not (repo / "__pycache__").is_symlink() and (outside / "precious").exists()  # unlinked, not followed
    assert not (repo / "pkg" / "__pycache__").exists()
    assert (repo / "kept" / "__pycache__" / "c.cpython-311.pyc").exists()
    # A module folder a candidate replaced with a symlink leads nowhere outside.
    (outside / "__pycache__").mkdir()
    shutil.rmtree(repo / "pkg")
    (repo / "pkg").symlink_to(outside)
    drop_bytecode(repo, ["pkg"])
    assert (outside / "__pycache__").is_dir()


PLANT = """\
import importlib.util, os, pathlib, py_compile
# The candidate: a better number that the guard refuses, and the guard's rules rewritten as
# bytecode that .gitignore hides from the tamper check.
pathlib.Path("value.txt").write_text("-5\\n")
source = pathlib.Path("rules.py")
evil = "def ok(value):\\n    return True\\n"
evil += "#" * (len(source.read_text()) - len(evil) - 1) + "\\n"
forged = pathlib.Path("forged.tmp")
forged.write_text(evil)
stat = source.stat()
os.utime(forged, ns=(stat.st_atime_ns, stat.st_mtime_ns))
py_compile.compile(str(forged), cfile=importlib.util.cache_from_source(str(source.resolve())), doraise=True)
forged.unlink()
"""


def test_bytecode_planted_beside_a_harness_module_is_not_loaded(number_repo):
    files = {
        ".gitignore": "__pycache__/\n",
        "rules.py": "def ok(value):\n    return value > 0  # a number, not a count\n",
        "check.py": "import pathlib, sys, rules\nsys.exit(0 if rules.ok(float(pathlib.Path('value.txt').read_text())) else 1)\n",
        "plant.py": PLANT,
    }
    config = sandbox_config("auto").replace('harness = ["bench.py"]', 'harness = ["bench.py", "rules.py", "check.py"]')
    config = config.replace('command = "true"', 'command = "{python} plant.py"')
    config += '\n[[guards]]\nname = "rules"\ncommand = "{python} check.py"\n'
    repo = number_repo(config, files=files)
    result = run_cli(repo, "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "#1   discard   number=-5" in result.stdout and "rules" in result.stdout, result.stdout


HARNESS_TESTS = {
    "tests/test_value.py": """\
        import pathlib
        def test_value_is_positive():
            assert float(pathlib.Path("value.txt").read_text()) > 0
    """,
}


def test_pytest_guard_over_the_harness_keeps_an_honest_candidate(number_repo):
    """harness = ["tests/**"] and a pytest guard, no .gitignore: pytest leaves no __pycache__."""
    config = sandbox_config("required").replace('harness = ["bench.py"]', 'harness = ["bench.py", "tests/**"]')
    config = config.replace('command = "true"', 'command = "echo 5 > value.txt"')
    config += '\n[[guards]]\nname = "tests"\ncommand = "{python} -m pytest -q tests"\n'
    repo = number_repo(config, files=HARNESS_TESTS)
    assert not (repo / ".gitignore").exists()
    result = run_cli(repo, "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "#1   keep      number=5" in result.stdout, result.stdout


def test_a_candidate_that_drops_bytecode_into_the_harness_is_tampered(number_repo):
    drop = (
        "import pathlib; p = pathlib.Path('tests/__pycache__'); p.mkdir(exist_ok=True); "
        "(p / 'test_value.cpython-311-pytest-8.pyc').write_bytes(b'x'); print(5)"
    )
    config = sandbox_config("required").replace('harness = ["bench.py"]', 'harness = ["bench.py", "tests/**"]')
    config = config.replace('mutable = ["value.txt", "src/**"]', 'mutable = ["value.txt", "model.py"]')
    config = config.replace('command = "true"', f"command = \"echo 5 > value.txt && echo \\\"{drop}\\\" > model.py\"")
    config += '\n[[guards]]\nname = "tests"\ncommand = "{python} model.py && {python} -m pytest -q tests"\n'
    repo = number_repo(config, files={**HARNESS_TESTS, "model.py": "print(10)\n"})
    result = run_cli(repo, "run")
    assert "#1   tampered" in result.stdout, result.stdout + result.stderr
    assert "tests/__pycache__/test_value.cpython-311-pytest-8.pyc" in result.stdout


# ---------------------------------------------------------------- variables the allowlist dropped


def test_dropped_variable_hint():
    from ratchet.measure.environment import dropped_variable_hint

    source = {"PATH": "/bin", "MY_SETTING": "value-1", "MY_TOKEN": "value-2", "DEBUG": "value-3", "RATCHET_RUN": "t"}
    hint = dropped_variable_hint("Traceback ...\nKeyError: 'MY_SETTING'\n", [], section="[proposer] env", source=source)
    assert hint == (
        "MY_SETTING is set in ratchet's environment but not passed to the command (the environment is an allowlist): "
        'add "MY_SETTING" to [proposer] env'
    )
    for said in ("sh: 1: MY_SETTING: parameter not set", "error: missing environment variable MY_SETTING", 'os.environ["MY_SETTING"]', "${MY_SETTING}"):
        assert "MY_SETTING" in (dropped_variable_hint(said, [], section="[sandbox] env", source=source) or ""), said
    secret = dropped_variable_hint("KeyError: 'MY_TOKEN'", ["MY_*"], section="[sandbox] env", source=source)
    assert secret is not None and "looks like a secret" in secret and "name it exactly in [sandbox] env" in secret
    # Not named as a variable, passed anyway, set by ratchet, or not in ratchet's environment: nothing.
    assert dropped_variable_hint("DEBUG: starting\nexit 1", [], section="[sandbox] env", source=source) is None
    assert dropped_variable_hint("KeyError: 'MY_SETTING'", ["MY_SETTING"], section="[sandbox] env", source=source) is None
    assert dropped_variable_hint("KeyError: 'RATCHET_RUN'", [], section="[sandbox] env", source=source, passed={"RATCHET_RUN"}) is None
    assert dropped_variable_hint("KeyError: 'OTHER'", [], section="[sandbox] env", source=source) is None
    assert "value-" not in (hint or "") + (secret or "")


def test_a_dropped_variable_is_named_for_proposer_and_metric(number_repo):
    env = {"MY_PROPOSER_SETTING": "proposer-value-1", "MY_METRIC_SETTING": "metric-value-2"}
    reads = "{python} -c \\\"import os; os.environ['%s']\\\""
    config = sandbox_config("auto").replace('command = "true"', f'command = "{reads % "MY_PROPOSER_SETTING"}"')
    repo = number_repo(config)
    result = run_cli(repo, "run", env=env)
    out = result.stdout + result.stderr
    assert "KeyError: 'MY_PROPOSER_SETTING'" in out and 'add "MY_PROPOSER_SETTING" to [proposer] env' in out, out
    config = sandbox_config("auto").replace('command = "{python} bench.py"', f'command = "{reads % "MY_METRIC_SETTING"}"')
    repo = number_repo(config, name="metric")
    result = run_cli(repo, "run", env=env)
    out = result.stdout + result.stderr
    assert result.returncode != 0 and 'add "MY_METRIC_SETTING" to [sandbox] env' in out, out
    for folder in (repo, repo.parent / "repo"):
        logged = "".join(p.read_text(errors="replace") for p in (folder / ".ratchet").rglob("*") if p.is_file() and p.suffix != ".db")
        assert "value-" not in out + logged


# ---------------------------------------------------------------- doctor: guards and the sandbox




# ---------------------------------------------------------------- one process per command


def test_direct_argv_only_where_no_shell_is_needed():
    from ratchet.measure.sandbox import direct_argv

    assert direct_argv("python3 train.py --lr=0.1 'a b'") == ["python3", "train.py", "--lr=0.1", "a b"]
    assert direct_argv("cat value.txt") == ["cat", "value.txt"]
    for needs_shell in ("echo 1", "true", "a | b", "a && b", "x > f", "echo $HOME", "ls *.py", "FOO=1 prog", "cd x; y",
                        "prog ~/f", "a\nb", "prog # comment", "", "prog 'unbalanced"):  # fmt: skip
        assert direct_argv(needs_shell) is None, needs_shell


@pytest.mark.parametrize("sandboxed", [True, False])
def test_a_command_without_shell_syntax_runs_as_its_argv(checkout, sandboxed, request):
    if sandboxed:
        request.getfixturevalue("sandbox_required")
    (checkout / "argv.py").write_text("import os, sys\nprint(sys.argv[1:])\nprint(os.getppid())\n")
    result = run(contained(sandboxed), f'{sys.executable} argv.py a "b c"', checkout, env={"PATH": os.environ["PATH"]})
    assert result.ok, result.read("both")
    argv, parent = result.read().splitlines()
    assert argv == "['a', 'b c']"
    # Its parent: ratchet itself outside the sandbox; inside, the wrapper (the namespace's first
    # process, which names what is left), not a second shell.
    assert int(parent) == (1 if sandboxed else os.getpid())


def test_a_script_without_interpreter_line_still_runs_through_the_shell(checkout):
    script = checkout / "plain.sh"
    script.write_text("echo from-the-shell\n")
    script.chmod(0o755)
    result = run(contained(False), "./plain.sh", checkout)
    assert result.ok and result.read().strip() == "from-the-shell"
    missing = run(contained(False), "no-such-program-here", checkout)
    assert missing.exit_code == 127 and "not found" in missing.read("stderr")
