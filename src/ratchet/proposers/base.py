"""The proposer interface: what every kind of proposer (optuna, command, later llm/agent) implements.

A proposer is untrusted. It sees the champion's checkout and the history, and answers with a
:class:`Proposal`. The workspace, not the proposer, decides whether the proposal stays inside the
scope; the harness, not the proposer, measures it.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ratchet.experiment import Experiment, Verdict


class ProposerError(Exception):
    """The proposer could not produce a proposal (it crashed, timed out, or had nothing to say).

    The loop records this as an ``invalid`` experiment with the message as its reason; it does
    not stop the run. ``usage`` is what the failed attempt still cost (a malformed LLM answer).
    """

    def __init__(self, message: str, usage: "Usage | None" = None) -> None:
        super().__init__(message)
        self.usage = usage


class BudgetExhausted(ProposerError):
    """Proposing would exceed the token or money budget: the loop stops instead of recording."""


class FatalProposerError(ProposerError):
    """The proposer cannot make any further proposal (a rejected API key, a scope too large to
    send): the run stops with this message instead of recording the same failure again and again."""


@dataclass(frozen=True)
class Usage:
    """What producing a proposal cost (an LLM call's tokens and price)."""

    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(self.tokens_in + other.tokens_in, self.tokens_out + other.tokens_out, self.cost_usd + other.cost_usd)


@dataclass(frozen=True)
class Proposal:
    """A change to the champion and the one-line hypothesis behind it.

    Exactly one form is used:

    - ``edits``: path (relative to the repository root) -> new text, or ``None`` to delete;
    - ``patch``: a unified diff as ``git diff`` writes it;
    - ``in_place``: the proposer already edited the candidate worktree (a command or agent CLI).
    """

    hypothesis: str
    edits: Mapping[str, str | None] = field(default_factory=dict)
    patch: str | None = None
    in_place: bool = False
    # Anything the proposer wants to find again in the ledger (e.g. an Optuna trial number).
    meta: Mapping[str, Any] = field(default_factory=dict)
    # What making it cost; recorded in the ledger and counted against the budget.
    usage: Usage | None = None
    # Measure it even when the ledger already holds the same change for this champion
    # (`ratchet try --again`): otherwise a repeat is refused, so no lucky draw can be re-rolled.
    again: bool = False
    # The held experiment a person approved (`ratchet review approve`): measured against the
    # champion of now, not held again; a patch that no longer applies is `stale`.
    review_of: int | None = None

    def __post_init__(self) -> None:
        forms = sum([bool(self.edits), self.patch is not None, self.in_place])
        if forms != 1:
            raise ValueError("a Proposal has exactly one of edits, patch or in_place")


@dataclass(frozen=True)
class ProposalContext:
    """What a proposer may know when it proposes."""

    run: str
    iteration: int  # experiment id about to be made
    worktree: Path  # the candidate checkout, at the champion, clean
    brief: str  # the contents of program.md
    scope: tuple[str, ...]  # mutable globs
    scope_files: tuple[str, ...]  # files at the champion that the scope matches
    metric_name: str
    direction: str  # "minimize" | "maximize"
    champion_metric: float | None
    baseline_metric: float | None
    history: tuple[Experiment, ...]  # earlier experiments of this run, oldest first
    state_dir: Path  # a private folder for the proposer's own state (persists across resume)
    log_dir: Path  # this experiment's log folder
    # What is left of the run's token and money budgets (None: no such budget). A proposer
    # that would spend more must raise BudgetExhausted rather than overspend.
    tokens_left: int | None = None
    cost_left_usd: float | None = None
    # Set when the proposer is asked to mend its candidate (see Proposer.mend): why it failed.
    rework: str | None = None
    # The other experiments in flight now (several workers): their hypothesis and meta once
    # proposed, so a proposer does not propose the same thing twice.
    in_flight: tuple[Experiment, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """What the loop tells a proposer once its proposal has a verdict."""

    experiment_id: int
    verdict: Verdict
    metric: float | None
    proposal: Proposal | None
    # False when a guard failed: the metric is real but the candidate is not acceptable, so a
    # sampler should not learn it as a good value.
    guards_passed: bool = True


class Proposer(abc.ABC):
    """Base class of every proposer kind. Subclasses live one per module in this package."""

    #: the ``[proposer] kind`` this class implements
    kind: str = ""
    #: whether a change the ledger already measured on the same champion is refused (invalid)
    #: instead of measured again: for proposers whose changes come from outside ratchet's
    #: control (a person, an agent, a script), where a repeat is a re-roll of a lucky draw
    refuses_repeats: bool = False
    #: whether it proposes while its other proposals are in flight (``[run] workers`` > 1):
    #: ``propose`` may then be called from several threads at once, and ``observe`` from the
    #: driver's while others propose. A proposer that cannot keeps False and is called one
    #: call at a time (its measurements still run side by side).
    concurrent: bool = False

    @abc.abstractmethod
    def propose(self, context: ProposalContext) -> Proposal:
        """Return the next proposal, or raise :class:`ProposerError`."""

    def mend(self, context: ProposalContext) -> Proposal | None:
        """Mend a candidate that failed a guard; ``context.rework`` says how it failed.

        The candidate's changes are still in ``context.worktree``; the returned proposal is
        applied on top of them. Default: no rework (the candidate is discarded).
        """
        return None

    def observe(self, outcome: Outcome) -> None:  # noqa: B027 - optional hook
        """Learn from a verdict (a sampler updates its model). Default: nothing."""

    def resume(self, history: tuple[Experiment, ...], state_dir: Path) -> None:  # noqa: B027
        """Called once before the first proposal of a session, with the ledger so far.

        A proposer with persistent state repairs it here after a crash (e.g. an Optuna trial
        asked but never told).
        """

    def close(self) -> None:  # noqa: B027
        """Release resources at the end of a session."""


def describe(meta: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in meta.items())
