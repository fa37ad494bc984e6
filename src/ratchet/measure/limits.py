"""Resource limits of one untrusted command: memory, CPU time, processes, file size.

Memory, CPU time and file size are rlimits set in the child before it runs the command (they
are inherited by everything it starts). The process count is the one rlimit that does not
work: ``RLIMIT_NPROC`` counts all of the user's processes and does not bind root at all, so
where a ``pids`` cgroup can be made under ratchet's own, the command runs in one of its own
(which also names every process it left behind); else the rlimit is the fallback.
"""

from __future__ import annotations

import itertools
import os
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # only named: `ratchet status` imports this module without the config's models
    from ratchet.config import SandboxSection

CGROUP_ROOT = Path("/sys/fs/cgroup")
_counter = itertools.count()
_swept: set[Path] = set()


@dataclass(frozen=True)
class Limits:
    memory: int | None = None  # bytes of address space per process
    cpu_time: float | None = None  # seconds of CPU per process
    processes: int | None = None  # processes alive at once
    file_size: int | None = None  # bytes per file written
    output: int = 1024 * 1024  # bytes kept from the start and from the end of each stream

    @classmethod
    def from_config(cls, section: SandboxSection, *, measurement: bool = True) -> "Limits":
        # Proposers (agent CLIs, often node) reserve huge address spaces and think for long:
        # only measurements get the memory and CPU limits.
        return cls(
            memory=section.memory if measurement else None,
            cpu_time=section.cpu_time if measurement else None,
            processes=section.processes,
            file_size=section.file_size,
            output=section.output,
        )

    def rlimits(self, cgroup: "Cgroup | None") -> list[tuple[int, int, int]]:
        """(resource, soft, hard) to set in the child, never above the current hard limits."""
        wanted: list[tuple[int, int, int]] = []
        if self.memory is not None:
            wanted.append((resource.RLIMIT_AS, self.memory, self.memory))
        if self.cpu_time is not None:
            seconds = max(1, int(self.cpu_time + 0.999))
            wanted.append((resource.RLIMIT_CPU, seconds, seconds + 1))  # SIGXCPU, then SIGKILL
        if self.file_size is not None:
            wanted.append((resource.RLIMIT_FSIZE, self.file_size, self.file_size))
        if self.processes is not None and cgroup is None and os.getuid() != 0:
            # The rlimit counts every process of the user: allow what runs now, plus the limit.
            mine = _processes_of(os.getuid())
            wanted.append((resource.RLIMIT_NPROC, mine + self.processes, mine + self.processes))
        out = []
        for res, soft, hard in wanted:
            _, current_hard = resource.getrlimit(res)
            if current_hard != resource.RLIM_INFINITY:
                soft, hard = min(soft, current_hard), min(hard, current_hard)
            out.append((res, soft, hard))
        return out

    def preexec(self, cgroup: "Cgroup | None") -> Callable[[], None] | None:
        """What the child runs before the command: join the cgroup, set the rlimits."""
        limits = self.rlimits(cgroup)
        procs_fd = cgroup.procs_fd if cgroup is not None else None
        if not limits and procs_fd is None:
            return None

        def apply() -> None:
            if procs_fd is not None:
                try:
                    os.write(procs_fd, b"0")  # "0": the writing process itself
                except OSError:
                    pass
            for res, soft, hard in limits:
                resource.setrlimit(res, (soft, hard))

        return apply


def _processes_of(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc") if os.path.isdir("/proc") else ():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count


def _own_cgroup(controller: str) -> Path | None:
    """ratchet's own cgroup folder for ``controller`` (v1), or its unified one (v2)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return CGROUP_ROOT / controller / path.lstrip("/")
    for line in lines:
        if line.startswith("0::"):
            return CGROUP_ROOT / line[3:].lstrip("/")
    return None


class Cgroup:
    """A ``pids`` cgroup for one command, nested under ratchet's own: caps the number of
    processes, and lists every process the command left, wherever it went."""

    def __init__(self, path: Path, procs_fd: int) -> None:
        self.path = path
        self.procs_fd = procs_fd

    @classmethod
    def create(cls, max_pids: int) -> "Cgroup | None":
        parent = _own_cgroup("pids")
        if parent is None or not parent.is_dir():
            return None
        if parent not in _swept:
            _swept.add(parent)
            _remove_stale(parent)
        path = parent / f"ratchet-{os.getpid()}-{next(_counter)}"
        try:
            path.mkdir()
        except OSError:
            return None
        try:
            (path / "pids.max").write_text(str(max_pids))
            procs_fd = os.open(path / "cgroup.procs", os.O_WRONLY)
        except OSError:
            _rmdir(path)
            return None
        return cls(path, procs_fd)

    def pids(self) -> list[int]:
        try:
            return [int(line) for line in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def remove(self) -> None:
        os.close(self.procs_fd)
        _rmdir(self.path)


def _rmdir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def _remove_stale(parent: Path) -> None:
    # A ratchet killed with -9 leaves its (empty) cgroups behind; remove those of dead pids.
    try:
        entries = list(parent.glob("ratchet-*-*"))
    except OSError:
        return
    for entry in entries:
        pid = entry.name.split("-")[1]
        if pid.isdigit() and int(pid) != os.getpid() and not os.path.exists(f"/proc/{pid}"):
            _rmdir(entry)


def cgroup_support() -> str:
    """One line for ``ratchet doctor``: how the process limit is enforced here."""
    probe = Cgroup.create(64)
    if probe is not None:
        probe.remove()
        return f"pids cgroup under {probe.path.parent}"
    if os.getuid() == 0:
        return ""
    return "RLIMIT_NPROC (counts all of your processes)"


__all__ = ["Cgroup", "Limits", "cgroup_support"]
