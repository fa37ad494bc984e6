"""The executor interface: where measurement happens.

The driver (the loop) is the only one that decides and commits; an executor only runs the
harness's commands in a given checkout and hands back what they printed and how they ended,
each result carrying the hardware fingerprint of the machine it ran on. Today there is one
local executor running one experiment at a time; a worker pool and a Ray executor fit behind
the same interface, and ``ratchet.testing.ExecutorContract`` is the suite each one passes.
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


class Executor(abc.ABC):
    @abc.abstractmethod
    def measure(self, job: Job, should_abandon: Callable[[], bool] | None = None) -> list[CommandResult]:
        """Run the job's commands; one result per command that ran, each with its ``fingerprint``.

        Stops after a command that timed out or was abandoned (``should_abandon()`` returned
        True while it ran: it is killed promptly), and after a failure with ``stop_on_failure``.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release workers."""
