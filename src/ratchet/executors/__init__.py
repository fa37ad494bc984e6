"""Executors: where the harness's commands run."""

from ratchet.executors.base import CommandSpec, Executor, Job
from ratchet.executors.local import LocalExecutor

__all__ = ["CommandSpec", "Executor", "Job", "LocalExecutor"]
