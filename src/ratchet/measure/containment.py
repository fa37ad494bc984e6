"""Running one untrusted command: sandboxed, bounded, with a clean environment, and nothing left.

:class:`Containment` gathers what applies to a kind of untrusted process (the measurements of a
run, or a proposer command): the sandbox (or none, with the reason), resource limits, and the
environment allowlist. :meth:`Containment.run` runs one command that way and returns the same
:class:`~ratchet.measure.runner.CommandResult` as :func:`~ratchet.measure.runner.run_command`:

- stdout and stderr go through pipes that ratchet drains as they fill; the logs keep the first
  and the last ``output`` bytes of each and say how much was cut, so a candidate printing
  gigabytes cannot fill the disk;
- ratchet is a child subreaper, so descendants that escape with ``setsid`` come back to it when
  their parents die; when the command ends, whatever it left (in its cgroup, re-parented to
  ratchet, or alive in the sandbox's PID namespace) is killed and named in the result.
"""

from __future__ import annotations

import collections
import collections.abc
import ctypes
import ctypes.util
import fcntl
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Callable, Mapping, Sequence

from ratchet.config import Config, SandboxSection
from ratchet.measure.environment import dropped_variable_hint, untrusted_env
from ratchet.measure.limits import Cgroup, Limits
from ratchet.measure.runner import (
    TERM_GRACE_SECONDS,
    CommandResult,
    read_tail,
    wait_for_exit,
)
from ratchet.measure.sandbox import (
    Sandbox,
    SandboxError,
    expand,
    hidden_path_hint,
    interpreter_paths,
    probe,
    repository_paths,
)
from ratchet.workspace.git import GitError, git

# After the command and everything it left are killed, how long the pipes get to reach EOF.
DRAIN_SECONDS = 2.0
_READ = 1024 * 1024
# How much of a failed command's output is searched for the cause (a dropped variable, a path
# the sandbox hides).
HINT_BYTES = 8000


@dataclass(frozen=True)
class Containment:
    """How one kind of untrusted process runs."""

    sandbox: Sandbox | None
    limits: Limits
    allow_env: tuple[str, ...] = ()
    # Why there is no sandbox, when there is none (one line for the start of a run and `status`).
    warning: str | None = None
    # Where the config names what ``allow_env`` passes, for the hint when a command fails for
    # want of a variable the allowlist dropped.
    env_setting: str = "[sandbox] env"
    # Folders of the checkout (relative: the committed Python modules' folders) whose
    # __pycache__ is removed before each command. Honest commands write none (no bytecode is
    # written, see environment()), so one found there was planted, by a proposer or an earlier
    # command, and Python would load it instead of the module's source: a harness module
    # rewritten behind the tamper check's back (which .gitignore'd __pycache__ folders pass).
    # A private PYTHONPYCACHEPREFIX would do the same, but Python would then compile all the
    # standard library and site-packages it imports afresh: 0.2 to 1 s per command.
    bytecode_folders: tuple[str, ...] = ()

    @classmethod
    def for_measurements(cls, config: Config, repo_root: Path) -> "Containment":
        section = config.sandbox
        return cls(
            sandbox=_sandbox(section, repo_root, network=section.network, writable=expand(section.writable, repo_root)),
            limits=Limits.from_config(section, measurement=True),
            allow_env=tuple(section.env),
            warning=sandbox_warning(section),
            env_setting="[sandbox] env",
            bytecode_folders=module_folders(repo_root),
        )

    @classmethod
    def for_proposer(
        cls, section: SandboxSection, *, network: bool, env: Sequence[str], writable: Sequence[str], base: Path
    ) -> "Containment":
        """``base``: the target's repository root (also where relative ``writable`` paths start)."""
        return cls(
            sandbox=_sandbox(section, base, network=network, writable=expand(writable, base)),
            limits=Limits.from_config(section, measurement=False),
            allow_env=tuple(env),
            warning=sandbox_warning(section),
            env_setting="[proposer] env",
        )

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = untrusted_env(extra, self.allow_env)
        if self.sandbox is not None:
            env["TMPDIR"] = "/tmp"  # the private one
        # No __pycache__ written into the checkout: in the harness it would be a change (the
        # candidate "tampered"), and honest commands must leave none there.
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def without_sandbox(self) -> "Containment":
        """The same limits and environment, outside the sandbox (doctor: is it the sandbox?)."""
        return replace(self, sandbox=None)

    def run(
        self,
        command: str,
        *,
        cwd: Path,
        timeout: float,
        log_prefix: Path,
        env: Mapping[str, str] | None = None,
        should_abandon: Callable[[], bool] | None = None,
        writable: Sequence[Path] = (),
    ) -> CommandResult:
        """Run ``command`` through the shell in ``cwd``, contained; ``env`` adds to the allowlist.

        A failed command's result carries a ``hint`` when its output names a variable the
        allowlist dropped or a path the sandbox hides."""
        environment = self.environment(env)
        drop_bytecode(cwd, self.bytecode_folders)
        result = _run(self, command, cwd, timeout, log_prefix, environment, should_abandon, tuple(writable))
        if result.exit_code in (None, 0):
            return result
        hint = self.failure_hint(result, cwd=cwd, writable=tuple(writable), path=environment.get("PATH", ""), extra=env)
        return replace(result, hint=hint) if hint else result

    def failure_hint(
        self, result: CommandResult, *, cwd: Path, writable: Sequence[Path] = (), path: str = "", extra: Mapping[str, str] | None = None
    ) -> str:
        """What the failed command's output says that containment caused, in one line (or "")."""
        output = read_tail(result.stderr_path, HINT_BYTES) + "\n" + read_tail(result.stdout_path, HINT_BYTES)
        hints = []
        dropped = dropped_variable_hint(output, self.allow_env, section=self.env_setting, passed=extra or {})
        if dropped:
            hints.append(dropped)
        if self.sandbox is not None:
            shown = hidden_path_hint(output, self.sandbox, workdir=cwd, writable=writable, command=result.command, env_path=path)
            if shown:
                hints.append(shown)
        return "; ".join(hints)


def module_folders(repo_root: Path) -> tuple[str, ...]:
    """The folders of the Python modules committed in ``repo_root`` (read when the run starts),
    but those whose __pycache__ is committed too: it is then the project's own, in git's care."""
    try:
        files = git(repo_root, "ls-files", "-z").split("\0")
    except (GitError, OSError):
        return ()
    committed_caches = {PurePosixPath(path).parent.parent for path in files if PurePosixPath(path).parent.name == "__pycache__"}
    folders = {PurePosixPath(path).parent for path in files if path.endswith(".py")} - committed_caches
    return tuple(sorted(str(folder) for folder in folders))


def drop_bytecode(checkout: Path, folders: Sequence[str]) -> None:
    """Remove ``<folder>/__pycache__`` in ``checkout`` for each folder (a symlink is unlinked,
    never followed; nothing is touched through a folder a candidate turned into a symlink)."""
    root = os.path.realpath(checkout)
    for folder in folders:
        cache = checkout / folder / "__pycache__"
        if os.path.realpath(cache.parent) != os.path.normpath(os.path.join(root, folder)):
            continue  # a symlink on the way: it would lead out of the checkout
        try:
            if cache.is_symlink():
                cache.unlink()
            elif cache.is_dir():
                shutil.rmtree(cache, ignore_errors=True)
        except OSError:
            pass


def _sandbox(section: SandboxSection, repo_root: Path, *, network: bool, writable: tuple[Path, ...]) -> Sandbox | None:
    if section.mode == "off":
        return None
    found = probe()
    if not found.usable:
        if section.mode == "required":
            raise SandboxError(f'[sandbox] mode = "required", but {found.reason}')
        return None
    assert found.bwrap is not None
    readable = (*expand(section.readable, repo_root), *interpreter_paths())
    return Sandbox(found.bwrap, network=network, writable=writable, repository=repository_paths(repo_root), readable=readable)


def sandbox_warning(section: SandboxSection | Mapping[str, object]) -> str | None:
    """One line when untrusted processes will run without the sandbox, else None."""
    mode = section.mode if isinstance(section, SandboxSection) else section.get("mode", "auto")
    if mode == "off":
        return 'sandbox off ([sandbox] mode = "off"): proposers and candidates run with your permissions'
    found = probe()
    if found.usable:
        return None
    return f"no sandbox: {found.reason}; proposers and candidates run with your permissions"


# ---------------------------------------------------------------- running


def _run(
    containment: Containment,
    command: str,
    cwd: Path,
    timeout: float,
    log_prefix: Path,
    env: dict[str, str],
    should_abandon: Callable[[], bool] | None,
    writable: tuple[Path, ...],
) -> CommandResult:
    log_prefix.parent.mkdir(parents=True, exist_ok=True)
    stdout_path = log_prefix.with_name(log_prefix.name + ".stdout")
    stderr_path = log_prefix.with_name(log_prefix.name + ".stderr")
    limits = containment.limits
    sandbox = containment.sandbox
    become_subreaper()
    cgroup = Cgroup.create(limits.processes) if limits.processes is not None else None
    # In the sandbox nothing can re-parent to ratchet (the PID namespace keeps it all): no scan.
    ours_before = _children_of(os.getpid()) if sandbox is None else None
    out_r, out_w = _pipe()
    err_r, err_w = _pipe()
    report_r = report_w = -1
    if sandbox is not None:
        report_r, report_w = _pipe()  # large: the wrapper writes it before ratchet reads
        argv = sandbox.argv(command, workdir=cwd, writable=writable, path=env.get("PATH", ""))
    else:
        argv = ["/bin/sh", "-c", command]
    logs = {out_r: CappedLog(stdout_path, limits.output), err_r: CappedLog(stderr_path, limits.output)}
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=report_w if report_w >= 0 else subprocess.DEVNULL,  # see sandbox._WRAPPER
            stdout=out_w,
            stderr=err_w,
            start_new_session=True,
            # Only setrlimit and a write to the cgroup run in the child: no locks to deadlock on.
            preexec_fn=limits.preexec(cgroup),
        )
    except OSError:
        for fd in (out_r, err_r, report_r):
            if fd >= 0:
                os.close(fd)
        for log in logs.values():
            log.close()
        if cgroup is not None:
            cgroup.remove()
        raise
    finally:
        for fd in (out_w, err_w, report_w):
            if fd >= 0:
                os.close(fd)
    pgid = proc.pid
    status, rusage, timed_out, interrupted = _wait(proc.pid, started + timeout, should_abandon, logs)
    if status is None:
        _kill_group(pgid, signal.SIGTERM)
        status, rusage, _, _ = _wait(proc.pid, time.monotonic() + TERM_GRACE_SECONDS, None, logs)
        if status is None:
            _kill_group(pgid, signal.SIGKILL)
            _, status, rusage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # keeps Popen from waiting again
    # (name, where) of each process the command left: named before the group kill below.
    survivors = [(name, "in the sandbox") for name in _read_report(report_r)] if report_r >= 0 else []
    survivors += [(name, f"pid {pid}") for pid, name in _kill_leftovers(ours_before, cgroup)]
    _kill_group(pgid, signal.SIGKILL)
    _drain(logs, time.monotonic() + DRAIN_SECONDS)
    seconds = time.monotonic() - started
    failing = timed_out or interrupted
    note = ""
    if survivors:
        listed = ", ".join(f"{name} ({where})" for name, where in survivors)
        note = f"[ratchet: the command left {len(survivors)} process(es) running: {listed}; killed]\n"
    for fd, log in logs.items():
        log.close(note if fd == err_r else "")
        os.close(fd)
    if cgroup is not None:
        cgroup.remove()
    return CommandResult(
        command=command,
        exit_code=None if failing else proc.returncode,
        timed_out=timed_out and not interrupted,
        interrupted=interrupted,
        seconds=seconds,
        stdout_path=stdout_path,
        stderr_path=stderr_path,
        max_rss_bytes=rusage.ru_maxrss * 1024 if rusage is not None else None,
        survivors=() if failing else tuple(name for name, _ in survivors),
    )


def _pipe() -> tuple[int, int]:
    read, write = os.pipe()
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        try:
            fcntl.fcntl(read, fcntl.F_SETPIPE_SZ, _READ)  # fewer wake-ups for chatty commands
        except OSError:
            pass
    os.set_blocking(read, False)
    return read, write


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class _Pumps(collections.abc.Mapping):
    """The output pipes still open, each with what drains it: read afresh at every wake-up."""

    def __init__(self, logs: dict[int, "CappedLog"]) -> None:
        self.logs = logs

    def __getitem__(self, fd: int) -> Callable[[int], None]:
        return self.logs[fd].pump

    def __iter__(self):  # type: ignore[no-untyped-def]
        return (fd for fd, log in self.logs.items() if not log.eof)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _wait(
    pid: int, deadline: float, should_abandon: Callable[[], bool] | None, logs: dict[int, "CappedLog"]
) -> tuple[int | None, "os.struct_rusage | None", bool, bool]:
    """Wait for ``pid`` until ``deadline`` while draining its output; (status, rusage, timed_out, interrupted)."""
    return wait_for_exit(pid, deadline, should_abandon, _Pumps(logs))


def _drain(logs: dict[int, "CappedLog"], deadline: float) -> None:
    while True:
        open_fds = [fd for fd, log in logs.items() if not log.eof]
        remaining = deadline - time.monotonic()
        if not open_fds or remaining <= 0:
            return
        ready, _, _ = select.select(open_fds, [], [], remaining)
        for fd in ready:
            logs[fd].pump(fd)


class CappedLog:
    """A log file that keeps the first and the last ``keep`` bytes written to it."""

    def __init__(self, path: Path, keep: int) -> None:
        self.file = path.open("wb", buffering=0)
        self.keep = keep
        self.head_left = keep
        self.tail: collections.deque[bytes] = collections.deque()
        self.tail_size = 0
        self.cut = 0
        self.eof = False

    def pump(self, fd: int) -> None:
        """Read what ``fd`` has now (it is non-blocking)."""
        for _ in range(64):  # bounded, so one stream cannot starve the other or the timeout
            try:
                data = os.read(fd, _READ)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.eof = True
                return
            self.write(data)

    def write(self, data: bytes) -> None:
        if self.head_left > 0:
            head = data[: self.head_left]
            self.file.write(head)
            self.head_left -= len(head)
            data = data[len(head) :]
            if not data:
                return
        self.tail.append(data)
        self.tail_size += len(data)
        while self.tail and self.tail_size - len(self.tail[0]) >= self.keep:
            dropped = self.tail.popleft()
            self.tail_size -= len(dropped)
            self.cut += len(dropped)

    def close(self, note: str = "") -> None:
        if self.tail_size > self.keep:
            excess = self.tail_size - self.keep
            self.tail[0] = self.tail[0][excess:]
            self.tail_size -= excess
            self.cut += excess
        if self.cut:
            self.file.write(
                f"\n[ratchet: {self.cut} bytes of output cut here; the log keeps the first and last {self.keep} bytes]\n".encode()
            )
        for chunk in self.tail:
            self.file.write(chunk)
        if note:
            self.file.write(note.encode())
        self.file.close()


# ---------------------------------------------------------------- what the command left


_subreaper = False


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux), once."""
    global _subreaper
    if _subreaper or not sys.platform.startswith("linux"):
        return _subreaper
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        PR_SET_CHILD_SUBREAPER = 36
        _subreaper = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except OSError:
        _subreaper = False
    return _subreaper


def _stat(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, state, name) of a process, from /proc; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode(errors="replace")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 2:
        return None
    return int(fields[1]), fields[0], stat[stat.find("(") + 1 : stat.rfind(")")]


def _children_of(pid: int) -> set[int]:
    """Direct children of ``pid``: from /proc/<pid>/task/*/children where the kernel has it
    (a few small reads), else from a scan of every process."""
    children: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return children
    try:
        for tid in tasks:
            with open(f"/proc/{pid}/task/{tid}/children") as handle:
                children.update(int(child) for child in handle.read().split())
        return children
    except FileNotFoundError:  # a kernel without CONFIG_PROC_CHILDREN (or the task just ended)
        pass
    except OSError:
        pass
    for name in os.listdir("/proc"):
        if name.isdigit() and (info := _stat(int(name))) is not None and info[0] == pid:
            children.add(int(name))
    return children


def _kill_leftovers(ours_before: set[int] | None, cgroup: Cgroup | None) -> list[tuple[int, str]]:
    """Kill what the command left (re-parented to ratchet, or in its cgroup); name it.

    ``ours_before``: ratchet's children before the command started (None: do not look for
    re-parented orphans, as in the sandbox, where none can come back to ratchet).
    """
    me = os.getpid()
    named: dict[int, str] = {}
    if ours_before is None and cgroup is not None:
        # The sandbox's namespace is being torn down: give its processes a moment to go.
        settle = time.monotonic() + 1.0
        while cgroup.pids() and time.monotonic() < settle:
            time.sleep(0.005)
    for _ in range(20):  # each round kills one layer; their orphans come back to us
        found = {pid for pid in cgroup.pids() if pid != me} if cgroup is not None else set()
        if ours_before is not None:
            found |= _children_of(me) - ours_before
        frontier = set(found)  # ... and everything below those
        while frontier:
            frontier = set().union(*(_children_of(pid) for pid in frontier)) - found
            found |= frontier
        alive = False
        for pid in found:
            info = _stat(pid)
            if info is not None and info[1] != "Z":
                alive = True
                named.setdefault(pid, info[2])
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        _reap(found - (ours_before or set()))
        if not alive:
            break
        time.sleep(0.01)
    return sorted(named.items())


def _reap(pids: set[int]) -> None:
    for pid in pids:
        for _ in range(100):
            try:
                waited, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                break  # not ours: its own parent reaps it
            if waited:
                break
            time.sleep(0.001)


def _read_report(fd: int) -> list[str]:
    """The sandbox wrapper's list of what was still alive in the namespace."""
    os.set_blocking(fd, False)
    data = b""
    try:
        while chunk := os.read(fd, 65536):
            data += chunk
    except BlockingIOError:
        pass
    finally:
        os.close(fd)
    return data.decode(errors="replace").split()


__all__ = ["CappedLog", "Containment", "SandboxError", "become_subreaper", "sandbox_warning"]
