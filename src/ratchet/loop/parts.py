"""The parts one run wires together, built once and handed to each step of the loop."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ratchet.budget import Budget
from ratchet.config import Config
from ratchet.events import RunObserver
from ratchet.executors import Executor
from ratchet.experiment import Experiment
from ratchet.ledger import Ledger
from ratchet.state import STATE_DIR
from ratchet.verdict import VerdictPolicy, log_scale_for, policy_for
from ratchet.verdict.stats import Noise, pooled_noise
from ratchet.workspace.scope import Globs
from ratchet.workspace.worktree import Workspace


@dataclass
class Parts:
    repo_root: Path
    config: Config
    observer: RunObserver
    executor: Executor
    budget: Budget
    workspace: Workspace
    hardware: dict[str, Any]
    fingerprint: str
    # What the noise calibration may change: a deterministic metric is decided by one measurement.
    policy: VerdictPolicy = field(init=False)
    deterministic: bool = field(init=False)
    # The run's noise estimate: the A/A checks' measurements and every comparison's champion samples,
    # each a group of one code version (None until the first group of two).
    noise: Noise | None = field(init=False, default=None)
    noise_groups: list[list[float]] = field(init=False, default_factory=list)
    # Several workers learn the noise at once (each comparison's champion samples).
    _noise_lock: threading.Lock = field(init=False, default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        verdict = self.config.verdict
        self.deterministic = verdict.deterministic == "yes"
        # auto told the metric is deterministic needs no A/A check to judge on one measurement.
        self.policy = policy_for(verdict, self.config.metric.direction, deterministic=verdict.mode == "auto" and self.deterministic)

    def learn_noise(self, samples: list[float]) -> Noise | None:
        """One group of measurements of one code version into the run's noise estimate; the estimate."""
        if len(samples) < 2:
            return self.noise
        with self._noise_lock:
            return self._learn_noise(samples)

    def _learn_noise(self, samples: list[float]) -> Noise | None:
        log_scale = self.noise.log_scale if self.noise is not None else log_scale_for(self.config.verdict, samples)
        if log_scale and not all(value > 0 for value in samples):
            return self.noise  # no logarithm of these: they cannot join a log-scale estimate
        self.noise_groups.append(list(samples))
        self.noise = pooled_noise(self.noise_groups, log_scale)
        return self.noise

    @property
    def run_name(self) -> str:
        return self.config.run.name

    @property
    def scope(self) -> Globs:
        return self.workspace.scope

    @property
    def harness(self) -> Globs:
        return self.workspace.harness

    @property
    def state_dir(self) -> Path:
        return self.repo_root / STATE_DIR

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "runs" / self.run_name

    def read_brief(self) -> str:
        path = self.repo_root / self.config.run.brief
        try:
            return path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def new_experiment(self, ledger: Ledger, champion: str, proposer: str, worker: int | None = None) -> Experiment:
        """An experiment with its id, its log folder and its ledger row (state "running"); with
        several workers, the one measuring it."""
        experiment_id = ledger.next_id(self.run_name)
        log_dir = self.run_dir / "logs" / f"{experiment_id:04d}"
        log_dir.mkdir(parents=True, exist_ok=True)
        experiment = Experiment(
            run=self.run_name,
            id=experiment_id,
            parent_commit=champion,
            proposer=proposer,
            started=time.time(),
            log_dir=str(log_dir),
            hardware=self.fingerprint,
        )
        if worker is not None:
            experiment.extra["worker"] = worker
        ledger.begin(experiment)
        return experiment
