"""Run one command with a timeout that kills its whole process group; parse a number from it."""

from __future__ import annotations

import json
import math
import os
import re
import select
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from ratchet.config import Parser

# After SIGTERM, how long the process group gets to exit before SIGKILL.
TERM_GRACE_SECONDS = 1.0
TAIL_BYTES = 4000


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
        parts = []
        for name, path in (("stdout", self.stdout_path), ("stderr", self.stderr_path)):
            text = read_tail(path, limit)
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


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_command(
    command: str,
    *,
    cwd: Path,
    timeout: float,
    log_prefix: Path,
    env: Mapping[str, str] | None = None,
    should_abandon: Callable[[], bool] | None = None,
) -> CommandResult:
    """Run ``command`` through the shell in its own session (so its own process group).

    stdout and stderr go straight to ``<log_prefix>.stdout`` / ``.stderr`` (no pipes, so a
    chatty command can never block). On timeout the whole group gets SIGTERM, then SIGKILL
    after a grace period; when the command ends, whatever it left running in its group is
    killed too. The peak RSS comes from ``wait4`` (the command and its waited-for children).
    """
    log_prefix.parent.mkdir(parents=True, exist_ok=True)
    stdout_path = log_prefix.with_name(log_prefix.name + ".stdout")
    stderr_path = log_prefix.with_name(log_prefix.name + ".stderr")
    started = time.monotonic()
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    pgid = proc.pid
    deadline = started + timeout
    status, rusage, timed_out, interrupted = wait_for_exit(proc.pid, deadline, should_abandon)
    if status is None:
        timed_out = not interrupted
        _kill_group(pgid, signal.SIGTERM)
        status, rusage, _, _ = wait_for_exit(proc.pid, time.monotonic() + TERM_GRACE_SECONDS, None)
        if status is None:
            _kill_group(pgid, signal.SIGKILL)
            _, status, rusage = os.wait4(proc.pid, 0)
    # Nothing of the command outlives its measurement (daemons that setsid escape this;
    # the sandbox's PID namespace closes that gap where it is available).
    _kill_group(pgid, signal.SIGKILL)
    proc.returncode = os.waitstatus_to_exitcode(status)  # keeps Popen from waiting again
    seconds = time.monotonic() - started
    exit_code = None if (timed_out or interrupted) else proc.returncode
    return CommandResult(
        command=command,
        exit_code=exit_code,
        timed_out=timed_out,
        interrupted=interrupted,
        seconds=seconds,
        stdout_path=stdout_path,
        stderr_path=stderr_path,
        max_rss_bytes=rusage.ru_maxrss * 1024 if rusage is not None else None,
    )


def wait_for_exit(
    pid: int,
    deadline: float,
    should_abandon: Callable[[], bool] | None,
    readers: Mapping[int, Callable[[int], None]] | None = None,
) -> tuple[int | None, "os.struct_rusage | None", bool, bool]:
    """Wait for ``pid`` until ``deadline``; return (status, rusage, timed_out, interrupted).

    ``readers`` maps file descriptors to call when they become readable while waiting (the
    containment drains its output pipes this way); the mapping may shrink as streams end.
    """
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    readers = readers or {}
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
            if watch:
                ready, _, _ = select.select(watch, [], [], step)
            else:
                time.sleep(step)
                ready = []
            for fd in ready:
                if fd in readers:
                    readers[fd](fd)
    finally:
        if pidfd is not None:
            os.close(pidfd)


# ---------------------------------------------------------------- parsing

_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf(?:inity)?)\b", re.IGNORECASE)


class MetricParseError(ValueError):
    """The output holds no usable number (missing, NaN or infinite)."""


def parse_number(output: str, parser: Parser) -> float:
    """Read one finite number from a command's output, the way ``parser`` says."""
    kind = parser.parser_kind
    if kind == "regex":
        assert parser.regex is not None
        matches = list(re.finditer(parser.regex, output, re.MULTILINE))
        if not matches:
            raise MetricParseError(f"the regex {parser.regex!r} matched nothing in the output")
        text = matches[-1].group(1)
    elif kind == "json":
        assert parser.json_key is not None
        text = _json_value(output, parser.json_key)
    else:
        numbers = _NUMBER.findall(output)
        if not numbers:
            raise MetricParseError("the output holds no number")
        text = numbers[-1]
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise MetricParseError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise MetricParseError(f"the metric is {value} (not a finite number)")
    return value


def _json_value(output: str, key: str) -> str:
    """The value at dotted ``key`` in the whole output as JSON, else in the last JSON line that has it."""
    candidates = [output] + [line for line in reversed(output.splitlines()) if line.strip().startswith("{")]
    for candidate in candidates:
        try:
            node = json.loads(candidate)
        except ValueError:
            continue
        for part in key.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                node = None
                break
        if node is not None:
            if isinstance(node, bool) or not isinstance(node, (int, float, str)):
                raise MetricParseError(f"the JSON key {key!r} holds {node!r}, not a number")
            return str(node)
    raise MetricParseError(f"no JSON object in the output has the key {key!r}")
