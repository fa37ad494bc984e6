"""The executor interface: where measurement happens.

The driver (the loop) is the only one that decides and commits; an executor only runs the
harness's commands in a given checkout and hands back what they printed and how they ended.
Today there is one local executor running one experiment at a time; a worker pool and a Ray
executor fit behind the same interface.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
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
    deadline: float | None = field(default=None)  # time.monotonic() by which all must end
    # A trusted step (the harness's own scoring) runs as it is: no sandbox, ratchet's environment.
    trusted: bool = False


class Executor(abc.ABC):
    @abc.abstractmethod
    def measure(self, job: Job, should_abandon: Callable[[], bool] | None = None) -> list[CommandResult]:
        """Run the job's commands; one result per command that ran."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release workers."""
