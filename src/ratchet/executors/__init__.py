"""Executors: where the harness's commands run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ratchet.executors.base import CommandSpec, Executor, Job, JobSource, WorkerLost
from ratchet.executors.local import LocalExecutor

if TYPE_CHECKING:
    from ratchet.config import Config


def create_executor(config: Config, repo_root: Path) -> Executor:
    """The executor ``[executor] kind`` names (Ray imported only when asked for)."""
    if config.executor.kind == "ray":
        from ratchet.executors.ray import RayExecutor

        return RayExecutor.from_config(config, repo_root)
    return LocalExecutor.from_config(config, repo_root)


__all__ = ["CommandSpec", "Executor", "Job", "JobSource", "LocalExecutor", "WorkerLost", "create_executor"]
