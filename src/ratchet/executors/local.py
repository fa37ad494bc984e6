"""Run measurements as local subprocesses, one command at a time."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from ratchet.config import Config
from ratchet.executors.base import Executor, Job
from ratchet.measure.containment import Containment
from ratchet.measure.runner import CommandResult, run_command


class LocalExecutor(Executor):
    """Runs each command here. With ``containment``, untrusted commands (all but trusted jobs)
    run in the sandbox, with resource limits and the environment allowlist."""

    def __init__(self, containment: Containment | None = None) -> None:
        self.containment = containment

    @classmethod
    def from_config(cls, config: Config, repo_root: Path) -> "LocalExecutor":
        """Contained as ``[sandbox]`` says; raises SandboxError when it is required but unusable."""
        return cls(Containment.for_measurements(config, repo_root))

    @property
    def warning(self) -> str | None:
        """One line when measurements run without the sandbox."""
        return self.containment.warning if self.containment is not None else None

    def measure(self, job: Job, should_abandon: Callable[[], bool] | None = None) -> list[CommandResult]:
        results: list[CommandResult] = []
        for spec in job.commands:
            timeout = spec.timeout
            if job.deadline is not None:
                timeout = min(timeout, max(0.0, job.deadline - time.monotonic()))
            # Trusted jobs (the score step) run plainly; everything else contained, when configured.
            runner = self.containment.run if self.containment is not None and not job.trusted else run_command
            result = runner(
                spec.command,
                cwd=job.worktree,
                timeout=timeout,
                log_prefix=job.log_dir / spec.name,
                env=job.env,
                should_abandon=should_abandon,
            )
            results.append(result)
            if result.interrupted or result.timed_out or (job.stop_on_failure and not result.ok):
                break
        return results
