"""The executor interface: where measurement happens.

The driver (the loop) is the only one that decides and commits; an executor only runs the
harness's commands in a given checkout and hands back what they printed and how they ended,
each result carrying the hardware fingerprint of the machine it ran on (and the node and
devices it used). With ``[run] workers = N`` the driver asks :meth:`Executor.worker` for one view
per worker slot and calls each from that slot's thread; ``ratchet.testing.ExecutorContract`` is
the suite every executor passes.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from ratchet.measure.runner import CommandResult


@dataclass(frozen=True)
class CommandSpec:
    name: str  # "metric", "guard-tests", ... (also the log file name)
    command: str
    timeout: float


@dataclass(frozen=True)
class JobSource:
    """What the job's worktree holds, for an executor that measures in a copy of it elsewhere
    (another machine): ``commit`` of the repository at ``repo_root`` with ``patch`` (a
    ``git diff --binary`` against it) applied; no patch for a clean checkout (the champion)."""

    repo_root: Path
    commit: str
    patch: str | None = None


class WorkerLost(Exception):
    """The worker or node measuring a job died (not the command's doing) and the job could not be
    run again elsewhere: the experiment is recorded as lost, never as a sample."""


@dataclass(frozen=True)
class Job:
    """Run ``commands`` in ``worktree``, in order, logging under ``log_dir``."""

    worktree: Path
    commands: tuple[CommandSpec, ...]
    log_dir: Path
    env: Mapping[str, str] | None = None
    # Stop at the first command that does not exit 0 (a failed guard makes the rest moot).
    stop_on_failure: bool = False
    # When the whole job must be over, as wall-clock time (``time.time()``: the same moment on
    # every worker of a scheduler). The command running then is killed as timed out; the
    # commands after it do not run. None: each command has only its own timeout.
    deadline: float | None = None
    # A trusted step (the harness's own scoring) runs as it is: no sandbox, ratchet's environment.
    trusted: bool = False
    # What ``worktree`` holds, for executors that measure in a copy (``measures_copies``).
    source: JobSource | None = None


class Executor(abc.ABC):
    # True for an executor that runs jobs in a copy of the worktree made from ``Job.source``
    # (elsewhere): the driver then gives every job its source, and trusts the result's
    # ``changed`` (what the commands changed in the copy) for the harness check.
    measures_copies: bool = False

    def worker(self, index: int) -> "Executor":
        """The executor as worker slot ``index`` (0-based) of a run uses it: each slot's jobs run
        from that slot's own thread. The default shares this one; an executor that hands each
        worker its own devices or cores returns a view that does."""
        return self

    @abc.abstractmethod
    def measure(self, job: Job, should_abandon: Callable[[], bool] | None = None) -> list[CommandResult]:
        """Run the job's commands; one result per command that ran, each with its ``fingerprint``.

        Stops after a command that timed out or was abandoned (``should_abandon()`` returned
        True while it ran: it is killed promptly), and after a failure with ``stop_on_failure``.
        Raises :class:`WorkerLost` when the machine measuring died and a retry (at most one,
        recorded in the result's ``attempt``) did not bring a result.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release workers."""
