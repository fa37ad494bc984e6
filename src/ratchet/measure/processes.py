"""What a command left running when it ended: found, killed and named.

ratchet is a child subreaper, so descendants that escape the process group with ``setsid``
come back to it when their parents die; a ``pids`` cgroup (where one can be made) lists every
process of the command wherever it went; inside the sandbox a wrapper lists what is still alive
in the PID namespace on a pipe only ratchet reads. :class:`Leftovers` puts those together for
one command; the runner calls :meth:`Leftovers.collect` once the command has ended.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import time

from ratchet.measure.limits import Cgroup
from ratchet.measure.runner import pipe

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


class Leftovers:
    """Finds what one command left running: re-parented to ratchet, in its cgroup, or alive in
    the sandbox's PID namespace (``sandboxed``: the wrapper reports on :attr:`report_fd`).

    Made before the command starts (it notes ratchet's children then); :meth:`collect` kills
    what the command left and returns (name, where) of each process.
    """

    def __init__(self, cgroup: Cgroup | None, *, sandboxed: bool) -> None:
        become_subreaper()
        self.cgroup = cgroup
        # In the sandbox nothing can re-parent to ratchet (the PID namespace keeps it all): no scan.
        self.ours_before = None if sandboxed else children_of(os.getpid())
        self.report_fd = -1
        self.report_write_fd = -1
        if sandboxed:
            # Large: the wrapper writes it (as its stdin, see sandbox._WRAPPER) before ratchet reads.
            self.report_fd, self.report_write_fd = pipe()

    def collect(self) -> list[tuple[str, str]]:
        """Kill and name what the command left; the sandbox's report first (it names them as seen inside)."""
        survivors = [(name, "in the sandbox") for name in self._read_report()]
        survivors += [(name, f"pid {pid}") for pid, name in kill_leftovers(self.ours_before, self.cgroup)]
        return survivors

    def close(self) -> None:
        for fd in (self.report_fd, self.report_write_fd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.report_fd = self.report_write_fd = -1

    def _read_report(self) -> list[str]:
        if self.report_fd < 0:
            return []
        data = b""
        try:
            while chunk := os.read(self.report_fd, 65536):
                data += chunk
        except BlockingIOError:
            pass
        return data.decode(errors="replace").split()


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


def children_of(pid: int) -> set[int]:
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


def kill_leftovers(ours_before: set[int] | None, cgroup: Cgroup | None) -> list[tuple[int, str]]:
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
    killed = False
    for _ in range(20):  # each round kills one layer; their orphans come back to us
        found = _descendants(ours_before, cgroup, me)
        alive = False
        # All stopped first, then killed: killed one by one, a shell whose `sleep` died first
        # would run its next command (a `touch` seen under load) before its own kill arrived.
        for signum in (signal.SIGSTOP, signal.SIGKILL):
            for pid in found:
                if signum == signal.SIGSTOP:
                    info = _stat(pid)
                    if info is not None and info[1] != "Z":
                        alive = True
                        named.setdefault(pid, info[2])
                try:
                    os.kill(pid, signum)
                except (ProcessLookupError, PermissionError):
                    pass
        _reap(found - (ours_before or set()))
        # One more look after a round that killed: a killed process hands its children to us as it
        # exits, which can fall between our reading its children and ours (seen under load: a
        # daemon's `sleep` outlived it and ran on).
        if not alive and not killed:
            break
        killed = alive
        time.sleep(0.01)
    return sorted(named.items())


def _descendants(ours_before: set[int] | None, cgroup: Cgroup | None, me: int) -> set[int]:
    """The command's processes now: its cgroup's, ratchet's new children, and everything below those."""
    found = {pid for pid in cgroup.pids() if pid != me} if cgroup is not None else set()
    if ours_before is not None:
        found |= children_of(me) - ours_before
    frontier = set(found)
    while frontier:
        frontier = set().union(*(children_of(pid) for pid in frontier)) - found
        found |= frontier
    return found


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


__all__ = ["Leftovers", "become_subreaper", "children_of", "kill_leftovers"]
