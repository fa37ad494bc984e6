"""The one process runner: spawn, wait, timeout, group kill, capped logs, leftovers.

Every command ratchet runs for a target goes through :func:`run_process`: plainly with
:func:`run_command` (the trusted score step, proposer commands without containment), or wrapped
by :class:`~ratchet.measure.containment.Containment` (sandbox, limits, environment allowlist,
leftovers named). The command runs in its own session, so its own process group; on timeout
(or when asked to abandon) the whole group gets SIGTERM, then SIGKILL after a grace period; when
it ends, whatever it left in its group is killed too. stdout and stderr go through pipes that
are drained as they fill into log files (capped: the first and the last bytes), so a chatty
command can never block.
"""

from __future__ import annotations

import collections
import collections.abc
import fcntl
import os
import select
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from resource import struct_rusage
from typing import BinaryIO, Callable, Iterator, Mapping

# After SIGTERM, how long the process group gets to exit before SIGKILL.
TERM_GRACE_SECONDS = 1.0
# After the command and everything it left are killed, how long the pipes get to reach EOF.
DRAIN_SECONDS = 2.0
TAIL_BYTES = 4000
PIPE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_code: int | None  # None when killed for the timeout or an interrupt
    timed_out: bool
    interrupted: bool
    seconds: float
    stdout_path: Path
    stderr_path: Path
    max_rss_bytes: int | None
    # Processes the command left running after it ended (killed by ratchet); a command that
    # leaves any did not end cleanly, whatever its exit code.
    survivors: tuple[str, ...] = ()
    # When a contained command failed and its output names the cause containment put there (a
    # variable the allowlist dropped, a path the sandbox hides): one line naming the fix.
    hint: str = ""
    # The hardware fingerprint (measure.hardware) of the machine the command ran on, set by the
    # executor: a number is only comparable with numbers measured on the same machine.
    fingerprint: str | None = None
    # Where it ran: the node (host name, or the cluster's node id) and the devices it was given
    # (CUDA_VISIBLE_DEVICES as the command saw it; "" for none), set by the executor.
    node: str = ""
    devices: str = ""
    # 2 when the first attempt's worker died and the command was run again elsewhere.
    attempt: int = 1
    # For a command run in a copy of the worktree (an executor with ``measures_copies``): the
    # paths it changed there, from git status; None when it ran in the worktree itself.
    changed: tuple[str, ...] | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.survivors

    @property
    def problem(self) -> str:
        """Why the command failed, in words: its exit code, or what it left running (and the hint)."""
        hint = f"; {self.hint}" if self.hint else ""
        if not self.survivors:
            return f"exited with {self.exit_code}{hint}"
        count = len(self.survivors)
        names = ", ".join(f"{self.survivors.count(n)} {n}" if self.survivors.count(n) > 1 else n for n in sorted(set(self.survivors)))
        exited = f"exited with {self.exit_code} and " if self.exit_code else ""
        return f"{exited}left {count} process{'es' if count > 1 else ''} running after it ended ({names}); killed{hint}"

    def read(self, stream: str = "stdout") -> str:
        if stream == "both":
            return self.read("stdout") + self.read("stderr")
        path = self.stdout_path if stream == "stdout" else self.stderr_path
        try:
            return path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, limit: int = TAIL_BYTES) -> str:
        """The last lines of stdout and stderr, for the ledger and the proposer's feedback."""
        return self.log_tail(limit).read()

    def log_tail(self, limit: int = TAIL_BYTES) -> "LogTail":
        """Where :meth:`tail` reads from, to read it later (``Experiment.output_tail``): no text held."""
        return LogTail(str(self.stdout_path), str(self.stderr_path), limit)


@dataclass(frozen=True, slots=True)
class LogTail:
    """The tail of one command's stdout and stderr logs, read from disk each time it is asked for.

    Small on purpose (two path strings): a long run's history holds one per experiment.
    """

    stdout_path: str
    stderr_path: str
    limit: int = TAIL_BYTES

    def read(self) -> str:
        parts = []
        for name, path in (("stdout", self.stdout_path), ("stderr", self.stderr_path)):
            text = read_tail(Path(path), self.limit)
            if text.strip():
                parts.append(f"--- {name} ---\n{text.rstrip()}")
        return "\n".join(parts)


def read_tail(path: Path, limit: int) -> str:
    """The last ``limit`` bytes of a log file as text ("…" first when cut); "" when missing."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            data = handle.read()
    except OSError:
        return ""
    text = data.decode(errors="replace")
    return text if size <= limit else "…" + text


@dataclass(frozen=True)
class Launch:
    """How one command starts: the plain shell, or what containment wraps around it."""

    argv: tuple[str, ...]
    env: Mapping[str, str] | None = None  # None: ratchet's own environment
    output_cap: int | None = None  # bytes kept from the start and from the end of each stream; None: all
    # Run in the child before the command (limits, joining a cgroup): only async-signal-safe work.
    preexec: Callable[[], None] | None = None
    stdin: int | None = None  # a descriptor the child gets as stdin (its owner closes it); else /dev/null

    @classmethod
    def shell(cls, command: str, env: Mapping[str, str] | None = None) -> "Launch":
        return cls(argv=("/bin/sh", "-c", command), env=env)


def run_command(
    command: str,
    *,
    cwd: Path,
    timeout: float,
    log_prefix: Path,
    env: Mapping[str, str] | None = None,
    should_abandon: Callable[[], bool] | None = None,
) -> CommandResult:
    """Run ``command`` plainly through the shell: ``env`` (or ratchet's environment), full logs,
    the group killed at the end. Logs go to ``<log_prefix>.stdout`` / ``.stderr``."""
    return run_process(command, Launch.shell(command, env), cwd=cwd, timeout=timeout, log_prefix=log_prefix, should_abandon=should_abandon)


def run_process(
    command: str,
    launch: Launch,
    *,
    cwd: Path,
    timeout: float,
    log_prefix: Path,
    should_abandon: Callable[[], bool] | None = None,
    leftovers: Callable[[], list[tuple[str, str]]] | None = None,
) -> CommandResult:
    """Run ``launch`` in ``cwd`` in its own process group until it ends, ``timeout`` passes or
    ``should_abandon()`` says so; ``command`` is what the result names.

    ``leftovers`` is called once the command has ended: it kills what the command left running
    and returns (name, where) of each, which the result names (see :mod:`ratchet.measure.processes`).
    The peak RSS comes from ``wait4`` (the command and its waited-for children).
    """
    streams = _Streams(log_prefix, launch.output_cap)
    started = time.monotonic()
    try:
        proc = _spawn(launch, cwd, streams)
    except OSError:
        streams.close()
        raise
    status, rusage, timed_out, interrupted = _wait_or_kill(proc.pid, started + timeout, should_abandon, streams)
    proc.returncode = os.waitstatus_to_exitcode(status)  # keeps Popen from waiting again
    # Named before the group kill below, while they can still be seen.
    survivors = leftovers() if leftovers is not None else []
    # Nothing of the command outlives its measurement (daemons that setsid escape the group:
    # ``leftovers`` finds those, and the sandbox's PID namespace keeps them in).
    _kill_group(proc.pid, signal.SIGKILL)
    streams.drain(time.monotonic() + DRAIN_SECONDS)
    note = ""
    if survivors:
        listed = ", ".join(f"{name} ({where})" for name, where in survivors)
        note = f"[ratchet: the command left {len(survivors)} process(es) running: {listed}; killed]\n"
    streams.close(note)
    failing = timed_out or interrupted
    return CommandResult(
        command=command,
        exit_code=None if failing else proc.returncode,
        timed_out=timed_out and not interrupted,
        interrupted=interrupted,
        seconds=time.monotonic() - started,
        stdout_path=streams.stdout_path,
        stderr_path=streams.stderr_path,
        max_rss_bytes=rusage.ru_maxrss * 1024 if rusage is not None else None,
        survivors=() if failing else tuple(name for name, _ in survivors),
    )


def _spawn(launch: Launch, cwd: Path, streams: "_Streams") -> "subprocess.Popen[bytes]":
    try:
        return subprocess.Popen(
            list(launch.argv),
            cwd=cwd,
            env=dict(launch.env) if launch.env is not None else None,
            stdin=launch.stdin if launch.stdin is not None else subprocess.DEVNULL,
            stdout=streams.out_write,
            stderr=streams.err_write,
            start_new_session=True,
            preexec_fn=launch.preexec,
        )
    finally:
        streams.spawned()


def _kill_group(pgid: int, sig: int) -> None:
    """The one kill: ``sig`` to the command's whole process group (gone already: nothing to do)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# (exit status, resource usage, timed out, interrupted); no status while the command still runs.
_Wait = tuple[int | None, struct_rusage | None, bool, bool]


def _wait_or_kill(
    pid: int, deadline: float, should_abandon: Callable[[], bool] | None, streams: "_Streams"
) -> tuple[int, struct_rusage | None, bool, bool]:
    """Wait for the command; past ``deadline`` or abandoned: SIGTERM to its group, then SIGKILL.
    Returns (status, rusage, timed_out, interrupted)."""
    status, rusage, timed_out, interrupted = _wait_for_exit(pid, deadline, should_abandon, streams.pumps)
    if status is None:
        _kill_group(pid, signal.SIGTERM)
        status, rusage, _, _ = _wait_for_exit(pid, time.monotonic() + TERM_GRACE_SECONDS, None, streams.pumps)
        if status is None:
            _kill_group(pid, signal.SIGKILL)
            _, status, rusage = os.wait4(pid, 0)
    return status, rusage, timed_out, interrupted


def _wait_for_exit(
    pid: int, deadline: float, should_abandon: Callable[[], bool] | None, readers: Mapping[int, Callable[[int], None]]
) -> _Wait:
    """Wait for ``pid`` until ``deadline`` while draining ``readers`` (descriptors to call when
    readable; the mapping may shrink as streams end); (status, rusage, timed_out, interrupted)."""
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    try:
        while True:
            waited, status, rusage = os.wait4(pid, os.WNOHANG)
            if waited == pid:
                return status, rusage, False, False
            if should_abandon is not None and should_abandon():
                return None, None, False, True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None, None, True, False
            # A pidfd becomes readable when the process exits: no polling latency. Wake at
            # least every 0.2 s to notice an abandon request (every 5 ms without a pidfd).
            watch = [*readers, *([pidfd] if pidfd is not None else [])]
            step = min(remaining, 0.2 if pidfd is not None else 0.005)
            ready, _, _ = select.select(watch, [], [], step)
            for fd in ready:
                if fd in readers:
                    readers[fd](fd)
    finally:
        if pidfd is not None:
            os.close(pidfd)


# ---------------------------------------------------------------- output


def pipe() -> tuple[int, int]:
    """A pipe with a large buffer (fewer wake-ups for chatty commands) and a non-blocking read end."""
    read, write = os.pipe()
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        try:
            fcntl.fcntl(read, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:
            pass
    os.set_blocking(read, False)
    return read, write


class _Streams:
    """stdout and stderr of one command: pipes drained into (capped) log files."""

    def __init__(self, log_prefix: Path, cap: int | None) -> None:
        log_prefix.parent.mkdir(parents=True, exist_ok=True)
        self.stdout_path = log_prefix.with_name(log_prefix.name + ".stdout")
        self.stderr_path = log_prefix.with_name(log_prefix.name + ".stderr")
        out_read, self.out_write = pipe()
        self.err_read, self.err_write = pipe()
        self.logs = {out_read: CappedLog(self.stdout_path, cap), self.err_read: CappedLog(self.stderr_path, cap)}
        self.pumps = _Pumps(self.logs)

    def spawned(self) -> None:
        """The child has its copies of the write ends (or never will): close ours, so EOF can come."""
        for fd in (self.out_write, self.err_write):
            if fd >= 0:
                os.close(fd)
        self.out_write = self.err_write = -1

    def drain(self, deadline: float) -> None:
        while True:
            open_fds = list(self.pumps)
            remaining = deadline - time.monotonic()
            if not open_fds or remaining <= 0:
                return
            ready, _, _ = select.select(open_fds, [], [], remaining)
            for fd in ready:
                self.logs[fd].pump(fd)

    def close(self, note: str = "") -> None:
        """Close the logs (``note`` ends stderr) and the pipes."""
        self.spawned()
        for fd, log in self.logs.items():
            log.close(note if fd == self.err_read else "")
            os.close(fd)


class _Pumps(collections.abc.Mapping[int, Callable[[int], None]]):
    """The output pipes still open, each with what drains it: read afresh at every wake-up."""

    def __init__(self, logs: dict[int, "CappedLog"]) -> None:
        self.logs = logs

    def __getitem__(self, fd: int) -> Callable[[int], None]:
        return self.logs[fd].pump

    def __iter__(self) -> Iterator[int]:
        return (fd for fd, log in self.logs.items() if not log.eof)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class CappedLog:
    """A log file that keeps the first and the last ``keep`` bytes written to it (all: ``keep`` None).

    The file is made on the first byte: a command that prints nothing leaves no file (a missing
    log reads as empty everywhere), and a log left by an earlier command of the same name is removed.
    """

    def __init__(self, path: Path, keep: int | None) -> None:
        self.path = path
        path.unlink(missing_ok=True)
        self._file: BinaryIO | None = None
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
                data = os.read(fd, PIPE_BYTES)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.eof = True
                return
            self.write(data)

    @property
    def file(self) -> BinaryIO:
        if self._file is None:
            self._file = self.path.open("wb", buffering=0)
        return self._file

    def write(self, data: bytes) -> None:
        if self.keep is None or self.head_left is None:
            self.file.write(data)
            return
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
        if self.keep is not None and self.tail_size > self.keep:
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
        if self._file is not None:
            self._file.close()


__all__ = ["CappedLog", "CommandResult", "Launch", "LogTail", "read_tail", "run_command", "run_process"]
