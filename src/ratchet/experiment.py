"""The records that flow through the loop: verdicts, guard results, experiments."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Verdict(str, enum.Enum):
    """What became of an experiment.

    Beyond the design's list, ``baseline`` marks experiment 0 (the starting champion) and
    ``abandoned`` an experiment cut short (a second Ctrl-C, or a kill repaired on resume):
    it is recorded, never counted as measured, never kept.
    """

    BASELINE = "baseline"
    KEEP = "keep"
    DISCARD = "discard"
    CRASH = "crash"
    TIMEOUT = "timeout"
    INVALID = "invalid"
    TAMPERED = "tampered"
    OVERFIT = "overfit"  # the metric improved but the holdout got worse beyond its bound
    ABANDONED = "abandoned"

    def __str__(self) -> str:
        return self.value

    @property
    def counts_as_iteration(self) -> bool:
        return self not in (Verdict.BASELINE, Verdict.ABANDONED)

    @property
    def is_failure(self) -> bool:
        """Failures that count toward the "K consecutive crashes" stop."""
        return self in (Verdict.CRASH, Verdict.TIMEOUT)


@dataclass(frozen=True)
class GuardResult:
    name: str
    passed: bool
    exit_code: int | None
    value: float | None = None
    reason: str = ""
    skipped: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "exit_code": self.exit_code,
            "value": self.value,
            "reason": self.reason,
            "skipped": self.skipped,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "GuardResult":
        return cls(**data)


@dataclass
class Experiment:
    """One row of the ledger."""

    run: str
    id: int
    parent_commit: str
    proposer: str
    started: float
    state: str = "running"  # running -> committing (keeps only) -> done
    verdict: Verdict | None = None
    reason: str = ""
    hypothesis: str = ""
    metric: float | None = None
    commit: str | None = None
    guards: list[GuardResult] = field(default_factory=list)
    proposal_meta: dict[str, Any] = field(default_factory=dict)
    ended: float | None = None
    log_dir: str = ""
    hardware: str = ""
    memory_gb: float | None = None
    output_tail: str = ""
    # What the proposer spent on this experiment (LLM tokens and money), when it reports it.
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    # Anything else a step wants on the record (verdict statistics, samples, flags).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "run": self.run,
            "verdict": str(self.verdict) if self.verdict else None,
            "metric": self.metric,
            "commit": self.commit,
            "parent_commit": self.parent_commit,
            "hypothesis": self.hypothesis,
            "reason": self.reason,
            "proposer": self.proposer,
            "guards": [guard.to_json() for guard in self.guards],
            "proposal": self.proposal_meta,
            "started": self.started,
            "ended": self.ended,
            "duration": self.duration,
            "memory_gb": self.memory_gb,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": self.cost_usd,
            "extra": self.extra,
            "log_dir": self.log_dir,
            "hardware": self.hardware,
            "state": self.state,
        }
