"""Run measurements as local subprocesses, one command at a time."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from ratchet.config import Config
from ratchet.executors.base import CommandSpec, Executor, Job
from ratchet.measure.containment import Containment
from ratchet.measure.hardware import fingerprint, hardware_info
from ratchet.measure.limits import Limits
from ratchet.measure.runner import CommandResult, run_command


class LocalExecutor(Executor):
    """Runs each command here. Untrusted commands (all but trusted jobs) run contained: in the
    sandbox when ``containment`` has one, always with its resource limits, output cap, leftovers
    killed and named, and the environment allowlist. Without ``containment``: no sandbox, no
    limits, the default output cap."""

    def __init__(self, containment: Containment | None = None) -> None:
        self.containment = containment if containment is not None else Containment(sandbox=None, limits=Limits())
        self._fingerprint: str | None = None

    @classmethod
    def from_config(cls, config: Config, repo_root: Path) -> "LocalExecutor":
        """Contained as ``[sandbox]`` says; raises SandboxError when it is required but unusable."""
        return cls(Containment.for_measurements(config, repo_root))

    @property
    def warning(self) -> str | None:
        """One line when measurements run without the sandbox."""
        return self.containment.warning

    @property
    def fingerprint(self) -> str:
        """This machine's hardware fingerprint, which every result carries."""
        if self._fingerprint is None:
            self._fingerprint = fingerprint(hardware_info())
        return self._fingerprint

    def measure(self, job: Job, should_abandon: Callable[[], bool] | None = None) -> list[CommandResult]:
        results: list[CommandResult] = []
        for spec in job.commands:
            result = replace(self._run(job, spec, should_abandon), fingerprint=self.fingerprint)
            results.append(result)
            if result.interrupted or result.timed_out or (job.stop_on_failure and not result.ok):
                break
        return results

    def _run(self, job: Job, spec: CommandSpec, should_abandon: Callable[[], bool] | None) -> CommandResult:
        timeout = spec.timeout
        if job.deadline is not None:
            # Past the job's deadline a command still starts, and times out at once: its result says so.
            timeout = min(timeout, max(0.0, job.deadline - time.time()))
        log_prefix = job.log_dir / spec.name
        if job.trusted:  # the score step runs plainly: outside the sandbox, in the environment it is given
            return run_command(spec.command, cwd=job.worktree, timeout=timeout, log_prefix=log_prefix, env=job.env, should_abandon=should_abandon)
        return self.containment.run(spec.command, cwd=job.worktree, timeout=timeout, log_prefix=log_prefix, env=job.env, should_abandon=should_abandon)
