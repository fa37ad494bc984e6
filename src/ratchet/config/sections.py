"""The sections of ``ratchet.toml`` that say what is measured and how it is judged: run,
scope, metric, guards, holdout, review, verdict, budget, sandbox (the proposer's are in
:mod:`ratchet.config.proposers`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ratchet.config.values import Duration, Effect, EffectField, EnvName, Size


class _Section(BaseModel):
    # Unknown keys are errors: a typo in a budget must not silently mean "no budget".
    model_config = ConfigDict(extra="forbid")


class RunSection(_Section):
    name: str = "main"
    brief: str = "program.md"
    # Experiments in flight at once, each in a worktree of its own (`ratchet run --workers N`).
    workers: int = Field(default=1, ge=1, le=256)

    @field_validator("name")
    @classmethod
    def _valid_branch_name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name) or ".." in name or name.endswith(".lock"):
            raise ValueError(
                f"{name!r} is not a usable run name (letters, digits, '.', '_', '-'; it becomes the branch ratchet/<name>)"
            )
        return name


class ScopeSection(_Section):
    mutable: list[str] = Field(min_length=1)
    harness: list[str] = []

    @field_validator("mutable", "harness")
    @classmethod
    def _relative_globs(cls, globs: list[str]) -> list[str]:
        for glob in globs:
            if not glob.strip():
                raise ValueError("an empty glob")
            if glob.startswith("/") or ".." in Path(glob).parts:
                raise ValueError(f"{glob!r} must be relative to the repository root, without '..'")
        return globs


class Parser(_Section):
    """How a number is read from a command's output: exactly one of the three ways."""

    regex: str | None = None
    json_key: str | None = Field(default=None, alias="json")
    last_number: bool | None = None
    stream: Literal["stdout", "stderr", "both"] = "stdout"

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, regex: str | None) -> str | None:
        if regex is None:
            return None
        try:
            compiled = re.compile(regex)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        if compiled.groups < 1:
            raise ValueError("the regex needs a group around the number, e.g. 'loss: ([0-9.]+)'")
        return regex

    @property
    def parser_kind(self) -> str:
        if self.regex is not None:
            return "regex"
        if self.json_key is not None:
            return "json"
        return "last_number"

    def _check_one_parser(self) -> None:
        chosen = [self.regex is not None, self.json_key is not None, bool(self.last_number)]
        if sum(chosen) > 1:
            raise ValueError("choose one of regex, json and last_number")


class MetricSection(Parser):
    name: str = "metric"
    # One command that runs the candidate and prints the number...
    command: str | None = None
    # ...or trusted scoring in two steps: `run` (the candidate's code, untrusted) runs in the
    # candidate's checkout and leaves artifacts; `score` (trusted) runs from a pristine copy of
    # the harness taken from the run's base commit, outside the checkout, with the checkout's
    # path in $RATCHET_CANDIDATE; the number is read from `score`'s output only.
    run: str | None = None
    score: str | None = None
    direction: Literal["minimize", "maximize"]
    timeout: Duration | None = None

    @model_validator(mode="after")
    def _one_parser(self) -> "MetricSection":
        self._check_one_parser()
        if self.command is None and not (self.run and self.score):
            raise ValueError("needs a command (or both run and score for trusted scoring)")
        if self.command is not None and (self.run or self.score):
            raise ValueError("use either command, or run and score, not both")
        return self

    @property
    def trusted_scoring(self) -> bool:
        return self.command is None

    @field_validator("name")
    @classmethod
    def _simple_name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", name):
            raise ValueError(f"{name!r} is not a simple name (letters, digits, '_', '.', '-')")
        return name


class GuardSection(Parser):
    """A check a candidate must pass: exit 0, and optionally a parsed number within bounds."""

    name: str
    command: str
    timeout: Duration | None = None
    min: float | None = None
    max: float | None = None
    # How much worse than the champion's value the number may get; "worse" means larger
    # unless direction = "maximize".
    max_regression: EffectField | None = None
    direction: Literal["minimize", "maximize"] = "minimize"

    @model_validator(mode="after")
    def _one_parser(self) -> "GuardSection":
        self._check_one_parser()
        return self

    @property
    def parses_number(self) -> bool:
        return (
            self.regex is not None
            or self.json_key is not None
            or bool(self.last_number)
            or self.min is not None
            or self.max is not None
            or self.max_regression is not None
        )


class VerdictSection(_Section):
    # auto: the A/A check decides: a metric without spread is judged on one measurement, a noisy
    #   one by interleaved pairs with a futility boundary that keeps power (up to `max_pairs`,
    #   `max_pairs_cap` for a candidate still in between) and run-level error control.
    # single: one measurement of the candidate against the champion's recorded one.
    # repeat: `repeats` measurements of each (champion re-measured), medians compared.
    # sequential: interleaved pairs, a paired test after each from 3 to `max_pairs`.
    mode: Literal["auto", "single", "repeat", "sequential"] = "auto"
    min_effect: EffectField = Effect(value=0.0, relative=False)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    max_pairs: int = Field(default=10, ge=3, le=100)
    # auto: the most pairs for a candidate whose estimate is still between min_effect and the design effect.
    max_pairs_cap: int = Field(default=30, ge=3, le=100)
    # run: e-LOND sets each test's level so the expected share of false keeps in the run is at
    # most `fdr`; candidate: every test at `alpha`. auto: run under mode auto, else candidate.
    error_control: Literal["auto", "run", "candidate"] = "auto"
    fdr: float = Field(default=0.1, gt=0, lt=1)
    repeats: int = Field(default=5, ge=1, le=100)
    # Differences on a log scale (ratios) or absolute; auto: log for a relative min_effect.
    scale: Literal["auto", "log", "absolute"] = "auto"
    # A deterministic metric (an error count) needs no pairs; auto: detected by the A/A check.
    deterministic: Literal["auto", "yes", "no"] = "auto"
    # A/A measurement of the champion against itself: pairs at the start, and again every
    # `recalibrate_every` candidates (0: never again). 0 pairs: no calibration.
    # The A/A check stops once the noise's 95% interval is within +-30% of it, at most at this many pairs.
    calibrate_pairs: int = Field(default=10, ge=0, le=100)
    recalibrate_every: int = Field(default=25, ge=0)
    # End of run: the final champion against the baseline, in interleaved pairs (0: skip).
    confirm_pairs: int = Field(default=5, ge=0, le=100)
    # When a would-be keep fails a guard: how many times the proposer gets the guard's output
    # and may mend its candidate (re-measured in full each time) before it is discarded.
    rework: int = Field(default=0, ge=0, le=10)
    # Seed of the random order within each pair.
    seed: int = 0

    @model_validator(mode="after")
    def _consistent(self) -> "VerdictSection":
        if self.max_pairs_cap < self.max_pairs:
            raise ValueError(f"max_pairs_cap ({self.max_pairs_cap}) must be at least max_pairs ({self.max_pairs})")
        if self.error_control == "run" and self.mode in ("single", "repeat"):
            raise ValueError(f'error_control = "run" needs a sequential test: mode "auto" or "sequential", not {self.mode!r}')
        return self

    @property
    def run_level(self) -> bool:
        """Whether each test's level comes from the run's error control (e-LOND) instead of ``alpha``."""
        return self.error_control == "run" or (self.error_control == "auto" and self.mode == "auto")


class ReviewSection(_Section):
    """Would-be keeps a person must approve before they join the run branch (the review queue)."""

    # Globs (like [scope]): a would-be keep that changes any of these paths waits for review.
    paths: list[str] = []
    # "guard:NAME": a would-be keep that fails only these guards waits for review instead of
    # being discarded (a policy check a person may overrule).
    when: list[str] = []

    @field_validator("when")
    @classmethod
    def _guard_triggers(cls, triggers: list[str]) -> list[str]:
        for trigger in triggers:
            if not trigger.startswith("guard:") or not trigger[len("guard:") :].strip():
                raise ValueError(f"{trigger!r} is not a trigger; write \"guard:NAME\" for a [[guards]] name")
        return triggers

    def guards(self) -> set[str]:
        return {trigger[len("guard:") :].strip() for trigger in self.when}


class HoldoutSection(Parser):
    """A metric the proposer never sees, measured for every would-be keep."""

    command: str
    direction: Literal["minimize", "maximize"]
    timeout: Duration | None = None
    # How much worse than the champion's holdout value a keep may make it.
    max_regression: EffectField = Effect(value=0.0, relative=False)
    # discard: an overfit candidate is discarded (verdict `overfit`); flag: kept, flagged.
    action: Literal["discard", "flag"] = "discard"

    @model_validator(mode="after")
    def _one_parser(self) -> "HoldoutSection":
        self._check_one_parser()
        return self


class BudgetSection(_Section):
    iterations: int | None = Field(default=None, ge=0)
    wall: Duration | None = None
    experiment_timeout: Duration = 600.0
    target: float | None = None
    max_consecutive_crashes: int | None = Field(default=5, ge=1)
    # Proposer spending (LLM tokens in + out, and dollars), summed over the run.
    tokens: int | None = Field(default=None, ge=0)
    cost_usd: float | None = Field(default=None, ge=0)


class ExecutorSection(_Section):
    """Where the measurements run: here (``local``) or on a Ray cluster (``ray``)."""

    kind: Literal["local", "ray"] = "local"
    # ray: "auto" joins the cluster this machine is part of; "ray://host:port" a remote one;
    # unset starts a private one-machine cluster.
    address: str | None = None
    # ray: the logical resources each measurement asks the scheduler for.
    num_cpus: float = Field(default=1.0, ge=0)
    num_gpus: float = Field(default=0.0, ge=0)
    resources: dict[str, float] = {}
    # local: each worker gets its own K devices (CUDA_VISIBLE_DEVICES and the ROCm/HIP names)
    # and its own C cores (CPU affinity), disjoint from the other workers'.
    gpus_per_experiment: int = Field(default=0, ge=0)
    cpus_per_experiment: int = Field(default=0, ge=0)
    # A measurement whose worker or node died is run once more elsewhere (0: recorded as lost).
    retries: int = Field(default=1, ge=0, le=1)


class SandboxSection(_Section):
    """How untrusted processes run: proposer commands and every measurement command."""

    # auto: bubblewrap where it works, else a warning; required: refuse to run without it;
    # off: no sandbox (resource limits, the environment allowlist and process cleanup stay).
    mode: Literal["auto", "required", "off"] = "auto"
    network: bool = False  # whether measurements reach the network
    env: list[EnvName] = []  # environment variables passed besides the allowlist ("CUDA_*" ok)
    writable: list[str] = []  # paths measurements may write besides the checkout and /tmp
    # Paths under /tmp or /dev/shm that sandboxed commands (measurements and proposers) read:
    # the sandbox's own /tmp hides the host's. Bound read-only. Not needed for ratchet's
    # interpreter, the folders on PATH and the paths a command line names: those come along.
    readable: list[str] = []
    # Per measurement command. memory is address space per process (leave it unset for GPU
    # programs, which reserve far more than they use); processes is enforced with a pids
    # cgroup where ratchet can make one (moving each command into it costs 5 to 45 ms on
    # cgroup v1), else RLIMIT_NPROC; output is what the logs keep from the start and from
    # the end of each stream.
    memory: Size | None = None
    cpu_time: Duration | None = None
    processes: int | None = Field(default=None, ge=1)
    file_size: Size | None = None
    output: Size = 1024 * 1024

    @field_validator("readable")
    @classmethod
    def _not_all_of_tmp(cls, paths: list[str]) -> list[str]:
        # Bound read-only over the private /tmp, it would leave commands nowhere to write.
        for path in paths:
            if path.rstrip("/") in ("/tmp", "/dev/shm", ""):
                raise ValueError(f"{path!r} as a whole cannot be readable (commands write to their own); name the folders under it")
        return paths
