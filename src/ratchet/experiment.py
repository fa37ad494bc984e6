"""The records that flow through the loop: verdicts, guard results, experiments."""

from __future__ import annotations

import enum
import statistics
from dataclasses import dataclass, field
from typing import Any, Protocol


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
    # A would-be keep touching what a person must approve ([review]): held on a branch of its
    # own, not built upon; `ratchet review approve` re-measures it against the champion of then.
    NEEDS_REVIEW = "needs-review"
    # An approved review whose change no longer applies to the champion that moved meanwhile.
    STALE = "stale"
    # The worker or node measuring it died and the retry elsewhere failed too: no verdict on
    # its merit (with several workers, a candidate whose champion moved and no longer applies is stale).
    LOST = "lost"

    def __str__(self) -> str:
        return self.value

    @property
    def counts_as_iteration(self) -> bool:
        return self not in (Verdict.BASELINE, Verdict.ABANDONED, Verdict.LOST)

    @property
    def judged_on_metric(self) -> bool:
        """The candidate was measured and judged on its metric alone (kept or discarded): its
        number is one a proposer can learn from."""
        return self in (Verdict.KEEP, Verdict.DISCARD)

    @property
    def is_failure(self) -> bool:
        """Failures that count toward the "K consecutive crashes" stop."""
        return self in (Verdict.CRASH, Verdict.TIMEOUT, Verdict.LOST)


class TailSource(Protocol):
    """Where an experiment's output tail can be read when someone asks for it: its log files on
    disk (:class:`ratchet.measure.runner.LogTail`), the ledger's row."""

    def read(self) -> str: ...


class OutputTail:
    """``Experiment.output_tail``: a string, or a :class:`TailSource` read each time it is asked for.

    A long run keeps every experiment in its history; the tails (4 KB each, twice that as
    text with a "…") are read by few: the ledger's row, the last failure a proposer is told,
    the report. So the loop sets the source and nothing holds the text. (Also
    ``GuardResult.output_tail``: a frozen dataclass sets it through the descriptor too.)
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = "_" + name

    def __get__(self, instance: object | None, owner: type) -> str:
        if instance is None:
            return ""  # the dataclass field's default
        value: str | TailSource = instance.__dict__.get(self.slot, "")
        return value if isinstance(value, str) else value.read()

    def __set__(self, instance: object, value: str | TailSource) -> None:
        instance.__dict__[self.slot] = value


@dataclass(frozen=True)
class GuardResult:
    name: str
    passed: bool
    exit_code: int | None
    value: float | None = None
    reason: str = ""
    skipped: bool = False
    # The end of a failing guard's output (capped): what a person or an agent needs to see
    # why it failed, shown wherever the verdict is. Empty when it passed. Text, or where to read it.
    output_tail: OutputTail = OutputTail()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "exit_code": self.exit_code,
            "value": self.value,
            "reason": self.reason,
            "skipped": self.skipped,
            "output_tail": self.output_tail,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "GuardResult":
        return cls(**data)

    def failure_text(self) -> str:
        """``guard tests failed: exit 1`` and the output's tail, indented; "" when it passed."""
        if self.passed:
            return ""
        head = f"guard {self.name} failed: {self.reason}"
        if not self.output_tail.strip():
            return head
        return head + "\n" + "\n".join("    " + line for line in self.output_tail.rstrip().splitlines())


def guard_failures(guards: "list[GuardResult]") -> str:
    """Every failing guard (not the skipped ones) with its output's tail, for the verdict's readers."""
    return "\n".join(g.failure_text() for g in guards if not g.passed and not g.skipped)


@dataclass(frozen=True)
class Comparison:
    """What the verdict compared: the candidate against the champion *as the verdict saw it*.

    Policies that measure the champion again (repeat, sequential) compare medians of fresh
    samples, not the champion's recorded score, which was one lucky draw: a headline computed
    from the recorded score can say +36% beside a verdict that saw -3.8%.
    """

    candidate: float
    champion: float
    remeasured: bool  # the champion was measured again for this verdict (medians of samples)
    samples: int  # the candidate's samples behind ``candidate``

    @property
    def change(self) -> float | None:
        """(candidate - champion) / |champion|, or None at zero."""
        return None if self.champion == 0 else (self.candidate - self.champion) / abs(self.champion)

    def describe(self) -> str:
        """E.g. ``-3.79% vs champion 0.5598, re-measured: medians of 5 pairs``."""
        change = f"{self.change:+.2%} " if self.change is not None else ""
        if self.remeasured:
            how = f", re-measured: medians of {self.samples} pair{'s' if self.samples != 1 else ''}"
        else:
            how = ", its recorded score"
        return f"{change}vs champion {self.champion:.6g}{how}"


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
    # The end of the last candidate measurement's output: text, or where to read it (TailSource).
    output_tail: OutputTail = OutputTail()
    # What the proposer spent on this experiment (LLM tokens and money), when it reports it.
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    # Anything else a step wants on the record (verdict statistics, samples, flags).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    def comparison(self, recorded_champion: float | None) -> Comparison | None:
        """The comparison the verdict made: against the champion's recorded score it was judged
        against (``extra["champion_metric"]``; else ``recorded_champion``, for older ledgers).

        The re-measured champion's samples when the policy took them, else the recorded score;
        None when the experiment has no metric (a crash, an invalid proposal).
        """
        candidate = self.extra.get("candidate_samples") or []
        champion = self.extra.get("champion_samples") or []
        if self.metric is None:
            return None
        if champion and candidate:
            return Comparison(statistics.median(candidate), statistics.median(champion), True, len(candidate))
        recorded = self.extra.get("champion_metric", recorded_champion)  # as the verdict saw it, when known
        if recorded is None:
            return None
        return Comparison(self.metric, float(recorded), False, max(len(candidate), 1))

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


def measured_count(experiments: "list[Experiment] | tuple[Experiment, ...]") -> int:
    """How many experiments a run has measured, the one count every view shows (and the budget
    spends): not the baseline, not abandoned or running ones."""
    return sum(1 for e in experiments if e.verdict is not None and e.verdict.counts_as_iteration)


@dataclass(frozen=True)
class Pending:
    """A would-be keep waiting for a person ([review]): where it is held and why."""

    experiment: Experiment
    branch: str
    commit: str
    why: str


def pending_reviews(experiments: "list[Experiment] | tuple[Experiment, ...]") -> list[Pending]:
    """The held candidates still waiting for `ratchet review approve` or `reject`, oldest first."""
    out = []
    for e in experiments:
        review = e.extra.get("review") or {}
        if e.verdict is Verdict.NEEDS_REVIEW and review.get("state") == "pending":
            out.append(Pending(e, review["branch"], review["commit"], review.get("why", "")))
    return out
