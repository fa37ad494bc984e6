"""Run measurements as local subprocesses, one command at a time."""

from __future__ import annotations

import time
from typing import Callable

from ratchet.executors.base import Executor, Job
from ratchet.measure import CommandResult, run_command


class LocalExecutor(Executor):
    def measure(self, job: Job, should_abandon: Callable[[], bool] | None = None) -> list[CommandResult]:
        results: list[CommandResult] = []
        for spec in job.commands:
            timeout = spec.timeout
            if job.deadline is not None:
                timeout = min(timeout, max(0.0, job.deadline - time.monotonic()))
            result = run_command(
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
