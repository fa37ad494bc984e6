"""The guards and the holdout as measurement jobs: what to run, where, for how long.

The executor runs them like the metric; judging their results is the verdict's (guards' bounds,
the holdout's regression test), never the executor's.
"""

from __future__ import annotations

from pathlib import Path

from ratchet.config import Config
from ratchet.executors.base import CommandSpec, Job


def guard_job(config: Config, worktree: Path, log_dir: Path) -> Job:
    """Every guard, in order; the first that fails stops the rest (a would-be keep is lost anyway)."""
    return Job(
        worktree=worktree,
        commands=tuple(
            CommandSpec(f"guard-{guard.name}", guard.command, guard.timeout or config.budget.experiment_timeout)
            for guard in config.guards
        ),
        log_dir=log_dir,
        stop_on_failure=True,
    )


def holdout_job(config: Config, worktree: Path, log_dir: Path, name: str = "holdout") -> Job:
    """The holdout metric's one command (its logs named ``name``)."""
    spec = config.holdout
    assert spec is not None
    return Job(
        worktree=worktree,
        commands=(CommandSpec(name, spec.command, spec.timeout or config.budget.experiment_timeout),),
        log_dir=log_dir,
    )
