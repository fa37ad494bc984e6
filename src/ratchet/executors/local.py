"""Run measurements as local subprocesses, one command at a time per worker."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

from ratchet.config import Config
from ratchet.executors.base import CommandSpec, Executor, Job
from ratchet.measure.containment import Containment
from ratchet.measure.hardware import fingerprint, hardware_info
from ratchet.measure.limits import Limits
from ratchet.measure.runner import CommandResult, run_command
from ratchet.state import RunError

# The variables that say which accelerators a process may use: CUDA's, and ROCm's/HIP's.
DEVICE_VARIABLES = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES")


class LocalExecutor(Executor):
    """Runs each command here. Untrusted commands (all but trusted jobs) run contained: in the
    sandbox when ``containment`` has one, always with its resource limits, output cap, leftovers
    killed and named, and the environment allowlist. Without ``containment``: no sandbox, no
    limits, the default output cap."""

    def __init__(
        self, containment: Containment | None = None, *, gpus_per_worker: int = 0, cpus_per_worker: int = 0,
        devices: Sequence[str] | None = None, cpus: Sequence[int] | None = None,
    ) -> None:  # fmt: skip
        self.containment = containment if containment is not None else Containment(sandbox=None, limits=Limits())
        self.gpus_per_worker, self.cpus_per_worker = gpus_per_worker, cpus_per_worker
        # This worker's own devices and cores (None: whatever the machine gives every process).
        self.devices = tuple(devices) if devices is not None else None
        self.cpus = tuple(cpus) if cpus is not None else None
        self._fingerprint: str | None = None
        self._node = socket.gethostname()

    @classmethod
    def from_config(cls, config: Config, repo_root: Path) -> "LocalExecutor":
        """Contained as ``[sandbox]`` says; raises SandboxError when it is required but unusable."""
        section = config.executor
        return cls(
            Containment.for_measurements(config, repo_root),
            gpus_per_worker=section.gpus_per_experiment,
            cpus_per_worker=section.cpus_per_experiment,
        )

    def worker(self, index: int) -> "LocalExecutor":
        """Worker ``index``'s view: its own ``gpus_per_experiment`` devices (of those this process
        may use: CUDA_VISIBLE_DEVICES if set, else every GPU nvidia-smi lists) and its own
        ``cpus_per_experiment`` cores, disjoint from the other workers'. Raises RunError when the
        machine has too few."""
        devices = cpus = None
        if self.gpus_per_worker:
            devices = _share(_visible_devices(), self.gpus_per_worker, index, "GPU", "gpus_per_experiment")
        if self.cpus_per_worker:
            cores = [str(core) for core in sorted(os.sched_getaffinity(0))]
            cpus = [int(core) for core in _share(cores, self.cpus_per_worker, index, "core", "cpus_per_experiment")]
        view = LocalExecutor(self.containment, devices=devices, cpus=cpus)
        view._fingerprint = self._fingerprint
        return view

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
        if self.devices is not None:
            device_env = dict.fromkeys(DEVICE_VARIABLES, ",".join(self.devices))
            job = replace(job, env={**(job.env if job.env is not None else os.environ if job.trusted else {}), **device_env})
        devices = self.devices_seen(job)
        with self._pinned():
            for spec in job.commands:
                result = replace(self._run(job, spec, should_abandon), fingerprint=self.fingerprint, node=self._node, devices=devices)
                results.append(result)
                if result.interrupted or result.timed_out or (job.stop_on_failure and not result.ok):
                    break
        return results

    def devices_seen(self, job: Job) -> str:
        """The devices the job's commands may use, as CUDA_VISIBLE_DEVICES says ("" for no limit)."""
        if self.devices is not None:
            return ",".join(self.devices)
        return (job.env or {}).get("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES", ""))

    @contextlib.contextmanager
    def _pinned(self) -> Iterator[None]:
        # The affinity of the calling thread (Linux: per thread) is what the processes it starts
        # inherit: set for the job, then put back (the thread may be the driver's).
        if self.cpus is None:
            yield
            return
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, self.cpus)
        try:
            yield
        finally:
            os.sched_setaffinity(0, before)

    def _run(self, job: Job, spec: CommandSpec, should_abandon: Callable[[], bool] | None) -> CommandResult:
        timeout = spec.timeout
        if job.deadline is not None:
            # Past the job's deadline a command still starts, and times out at once: its result says so.
            timeout = min(timeout, max(0.0, job.deadline - time.time()))
        log_prefix = job.log_dir / spec.name
        if job.trusted:  # the score step runs plainly: outside the sandbox, in the environment it is given
            return run_command(spec.command, cwd=job.worktree, timeout=timeout, log_prefix=log_prefix, env=job.env, should_abandon=should_abandon)
        return self.containment.run(spec.command, cwd=job.worktree, timeout=timeout, log_prefix=log_prefix, env=job.env, should_abandon=should_abandon)


def _visible_devices() -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [device.strip() for device in visible.split(",") if device.strip()]
    from ratchet.measure.hardware import hardware_info

    return [str(index) for index in range(len(hardware_info().get("gpus", [])))]


def _share(items: list[str], per_worker: int, index: int, what: str, setting: str) -> list[str]:
    """Worker ``index``'s disjoint share of ``items``."""
    share = items[index * per_worker : (index + 1) * per_worker]
    if len(share) < per_worker:
        raise RunError(
            f"worker {index + 1} needs {per_worker} {what}{'s' if per_worker > 1 else ''} of its own "
            f"([executor] {setting}), but this machine has {len(items)} for all workers: fewer workers or fewer per experiment"
        )
    return share
