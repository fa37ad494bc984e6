"""One experiment as a state machine, from proposal to recorded verdict.

    started -> proposed -> materialized -> measuring -> decided -> kept | held | discarded
                     \\-------------\\--------------\\-----------> failed

Each transition is one method and moves :attr:`ExperimentRun.step`; whatever the path, the
worktree is left clean and the verdict is in the ledger. A scheduler holds many of these at once
(``shared`` set): each works on its own worker's worktree and a snapshot of the run's state, and
a would-be keep whose champion moved meanwhile goes back a step (decided -> materialized on the
new champion -> measuring) before it can be kept; only a comparison with the current champion
is ever committed.
"""

from __future__ import annotations

import enum
import time
from pathlib import Path

from ratchet.experiment import Experiment, Verdict
from ratchet.ledger import Ledger
from ratchet.loop.context import ContextBuilder
from ratchet.loop.measurement import Measurement
from ratchet.loop.parts import Parts
from ratchet.loop.rework import guard_failed, rework
from ratchet.executors import WorkerLost
from ratchet.loop.state import Interrupts, RunState, SharedState, measured_before
from ratchet.loop.usage import record_usage, set_usage
from ratchet.proposers import Proposal, ProposalContext, Proposer, ProposerError
from ratchet.proposers.base import BudgetExhausted, FatalProposerError
from ratchet.state import RunError
from ratchet.verdict import Decision
from ratchet.workspace.git import GitError
from ratchet.workspace.scope import Globs
from ratchet.workspace.slots import SlotWorkspace
from ratchet.workspace.worktree import (
    EXPERIMENT_TRAILER,
    Candidate,
    GitTampered,
    Leftovers,
    ScopeViolation,
)


class Step(enum.Enum):
    STARTED = "started"  # the experiment has its id and logs; the proposer is asked
    PROPOSED = "proposed"  # a proposal is in hand
    MATERIALIZED = "materialized"  # it is a candidate in the worktree, inside the scope
    MEASURING = "measuring"  # the executor is measuring it
    DECIDED = "decided"  # the verdict policy (and the guards, the holdout) have spoken
    KEPT = "kept"  # committed on the run branch: the new champion
    HELD = "held"  # committed on a review branch, waiting for a person
    DISCARDED = "discarded"  # measured and thrown away
    FAILED = "failed"  # ended before a verdict on its merit: proposer error, scope, tamper, crash


def review_branch(run: str, experiment_id: int) -> str:
    """Where a held candidate waits. Not under ``ratchet/<run>/``: git cannot have a branch
    ``ratchet/<run>`` and branches below it at once."""
    return f"ratchet-review/{run}/{experiment_id}"


class ExperimentRun:
    """One experiment of a run on the current champion (``state.champion``)."""

    def __init__(
        self, parts: Parts, ledger: Ledger, measurement: Measurement, contexts: ContextBuilder, state: RunState,
        interrupts: Interrupts, proposer: Proposer, *, shared: SharedState | None = None,
        in_flight: tuple[Experiment, ...] = (), worker: int | None = None,
    ) -> None:  # fmt: skip
        self.parts, self.ledger, self.measurement, self.contexts = parts, ledger, measurement, contexts
        self.workspace = measurement.workspace
        self.state, self.interrupts, self.proposer = state, interrupts, proposer
        self.shared, self.in_flight = shared, in_flight
        self.experiment = parts.new_experiment(ledger, state.champion, proposer=proposer.kind, worker=worker)
        self.log_dir = Path(self.experiment.log_dir)
        self.step = Step.STARTED
        self.proposal: Proposal | None = None
        self.context: ProposalContext | None = None
        self.candidate: Candidate | None = None
        self.decision: Decision | None = None
        self.leftovers: Leftovers | None = None
        parts.observer.experiment_started(self.experiment)

    def run(self) -> Experiment:
        """Every step in order, as far as the experiment gets. Raises :class:`BudgetExhausted`
        (nothing was proposed: the experiment is removed) and :class:`RunError` (the run cannot go on)."""
        try:
            if self.propose() and self.materialize():
                self.measure()
                self.conclude()
            return self.experiment
        except WorkerLost as exc:  # the guards' or the holdout's worker died (the samples' is a verdict already)
            self.fail(Decision(Verdict.LOST, f"the worker measuring it was lost: {exc}"))
            return self.experiment
        except GitError as exc:
            # git failing under us (disk full, a lock held by someone else) is not the
            # candidate's fault and not safe to go on from.
            self.fail(Decision(Verdict.ABANDONED, f"git failed: {exc}"))
            raise RunError(f"git failed during experiment {self.experiment.id}: {exc}") from None

    # ------------------------------------------------------------ transitions

    def propose(self) -> bool:
        """started -> proposed, or failed (recorded) when the proposer gives nothing to measure."""
        experiment, proposer = self.experiment, self.proposer
        self.context = self.contexts.context(experiment, self.state, self.workspace, self.in_flight)
        try:
            proposal = proposer.propose(self.context)
        except BudgetExhausted as exc:
            # Nothing was proposed: the experiment did not happen; its row is removed so the
            # ledger only holds experiments.
            self.ledger.delete(experiment)
            record_usage(self.ledger, self.parts.run_name, exc.usage)
            raise
        except FatalProposerError as exc:  # e.g. a rejected API key: no use trying again
            self.ledger.delete(experiment)
            record_usage(self.ledger, self.parts.run_name, exc.usage)
            raise RunError(f"the {proposer.kind} proposer cannot go on: {exc}") from None
        except ProposerError as exc:
            set_usage(experiment, exc.usage)
            return self.fail(Decision(Verdict.INVALID, f"proposer: {exc}"))
        except Exception as exc:  # a bug in a proposer is recorded; K in a row stop the run
            return self.fail(Decision(Verdict.INVALID, f"proposer: crashed: {type(exc).__name__}: {exc}"))
        self.proposal = proposal
        self.step = Step.PROPOSED
        experiment.hypothesis = proposal.hypothesis
        experiment.proposal_meta = dict(proposal.meta)
        set_usage(experiment, proposal.usage)
        self.ledger.update(experiment)
        if self.interrupts.abandon:
            return self.fail(Decision(Verdict.ABANDONED, "abandoned (Ctrl-C)"))
        return True

    def materialize(self) -> bool:
        """proposed -> materialized: the proposal applied to the champion's worktree, inside the scope."""
        assert self.proposal is not None
        proposal, workspace = self.proposal, self.workspace
        try:
            candidate = workspace.materialize(proposal, self.log_dir / "proposal.patch", self.state.champion)
        except ScopeViolation as exc:
            verdict = Verdict.TAMPERED if isinstance(exc, GitTampered) else Verdict.INVALID
            if proposal.review_of is not None and "does not apply" in str(exc):
                # The champion moved since the review was asked for, and the change conflicts.
                reason = f"the change of experiment #{proposal.review_of} no longer applies to the champion: {exc}"
                return self.fail(Decision(Verdict.STALE, reason))
            return self.fail(Decision(verdict, f"rejected before measuring: {exc}"))
        self.candidate = candidate
        self.save_diff(candidate)
        self.experiment.extra["change_id"] = change_id = workspace.change_id(candidate)
        self.measure_copies_of(candidate)
        if self.proposer.refuses_repeats and not proposal.again and (earlier := measured_before(self.state, change_id)):
            reason = (  # "proposer:": a proposer stuck on one change counts toward the failures-in-a-row stop
                f"proposer: the same change as experiment #{earlier.id} on this champion ({earlier.verdict}); "
                "not measured again (`ratchet try --again` re-measures a change on purpose)"
            )
            return self.fail(Decision(Verdict.INVALID, reason))
        self.step = Step.MATERIALIZED
        return True

    def measure(self) -> None:
        """materialized -> measuring -> decided: the samples judged; failed guards may be mended."""
        self.step = Step.MEASURING
        self.decision, self.leftovers = self.measurement.measure_and_decide(self.experiment, self.state, self.log_dir, self.interrupts)
        if self.parts.config.verdict.rework and guard_failed(self.experiment, self.decision):
            rework(self)
        self.step = Step.DECIDED

    def conclude(self) -> None:
        """decided -> kept, held (for review) or discarded (or failed, for a crash or a tamper).

        With other experiments in flight, would-be keeps are decided one at a time, in the order
        they became would-be keeps, each under the run's lock and only against the champion of
        that moment: one whose champion moved meanwhile is re-applied onto the new champion and
        measured again first (or recorded stale). The champion cannot move while it is, so a
        candidate is re-measured at most once."""
        assert self.decision is not None
        shared = self.shared
        if self.decision.verdict is not Verdict.KEEP or shared is None:
            return self._conclude()
        with shared.turn(self.experiment.id, lambda: self.interrupts.abandon) as my_turn:
            if not my_turn:
                self.fail(Decision(Verdict.ABANDONED, "abandoned (Ctrl-C) waiting for its verdict"))
                return
            with shared.lock:
                moved = None if shared.state.champion == self.state.champion else shared.snapshot_locked()
            if moved is not None:
                if not self.rebase(moved):
                    return
                self.measure()
            with shared.lock:
                assert shared.state.champion == self.state.champion  # nobody commits out of turn
                self._conclude()
                if self.step is Step.KEPT:
                    shared.state.take_champion(self.experiment, self.parts.fingerprint)

    def _conclude(self) -> None:
        assert self.decision is not None and self.proposal is not None and self.candidate is not None
        if self.decision.verdict is not Verdict.KEEP:
            self.finish(self.decision, Step.DISCARDED if self.decision.verdict is Verdict.DISCARD else Step.FAILED)
        elif self.proposal.review_of is None and (why := self.review_needed()):
            self.hold(why)
        else:
            self.keep()

    def rebase(self, champion: RunState) -> bool:
        """decided (a keep against a champion that has moved) -> materialized on ``champion``:
        the candidate's change re-applied there, its first measurement kept in the ledger."""
        assert self.candidate is not None and self.decision is not None
        experiment = self.experiment
        candidate = self.workspace.describe(self.candidate)
        assert candidate.diff is not None
        moved_by = champion.champion_id
        experiment.extra.setdefault("built_on", experiment.parent_commit)
        rebases: list[dict[str, object]] = experiment.extra.setdefault("rebased", [])
        rebases.append({"from": self.state.champion, "to": champion.champion, "by": moved_by, "metric": experiment.metric,
                        "reason": self.decision.reason, "samples": experiment.extra.get("samples")})  # fmt: skip
        self.workspace.discard(self.leftovers, candidate)
        self.candidate = self.leftovers = self.decision = None
        assert isinstance(self.workspace, SlotWorkspace)  # a shared run's workers each have one
        self.workspace.move_to(champion.champion)
        self.state = champion
        experiment.parent_commit = champion.champion
        experiment.guards = []
        self.ledger.update(experiment)
        patch_file = self.log_dir / f"rebased-{len(rebases)}.patch"
        try:
            # Whole-file edits (an Optuna trial) say what the files become: applied as they are, not as
            # a patch against the old champion that would no longer apply.
            again = self.proposal if self.proposal is not None and self.proposal.edits else Proposal(experiment.hypothesis, patch=candidate.diff)
            self.candidate = self.workspace.materialize(again, patch_file, champion.champion)
        except ScopeViolation as exc:
            by = f" (by experiment #{moved_by})" if moved_by is not None else ""
            return self.fail(Decision(Verdict.STALE, f"the champion moved{by} while it was measured and the change no longer applies: {exc}"))
        self.measure_copies_of(self.candidate)
        self.step = Step.MATERIALIZED
        return True

    # ------------------------------------------------------------ endings

    def keep(self) -> None:
        assert self.decision is not None and self.candidate is not None
        experiment = self.experiment
        experiment.verdict = self.decision.verdict
        experiment.reason = self.decision.reason
        experiment.state = "committing"  # the verdict is on disk before the commit exists
        experiment.ended = time.time()
        self.ledger.update(experiment)
        experiment.commit = self.workspace.keep(self.candidate, self.commit_message(), self.leftovers)
        self.contexts.kept(experiment.commit, self.candidate, self.workspace)
        experiment.state = "done"
        self.ledger.update(experiment)
        self.step = Step.KEPT

    def hold(self, why: str) -> None:
        """A would-be keep a person must approve: committed on a review branch of its own (the run
        branch does not move, later candidates do not build on it) and recorded as needs-review."""
        assert self.decision is not None and self.candidate is not None
        branch = review_branch(self.parts.run_name, self.experiment.id)
        commit = self.workspace.hold(self.candidate, self.commit_message(), branch, self.state.champion)
        self.experiment.extra["review"] = {"state": "pending", "branch": branch, "commit": commit, "why": why}
        self.finish(Decision(Verdict.NEEDS_REVIEW, f"{self.decision.reason}; waits for review: {why} (ratchet review)"), Step.HELD)

    def fail(self, decision: Decision) -> bool:
        """Ended before a verdict on the candidate's merit. Returns False: no further step."""
        self.finish(decision, Step.FAILED)
        return False

    def finish(self, decision: Decision, step: Step) -> None:
        experiment = self.experiment
        experiment.verdict = decision.verdict
        experiment.reason = decision.reason
        experiment.state = "done"
        experiment.ended = time.time()
        if decision.verdict in (Verdict.TAMPERED, Verdict.ABANDONED):
            # A discarded candidate's metric is real and worth keeping; a tampered or
            # abandoned one's is not to be trusted or compared.
            experiment.metric = None
        self.ledger.update(experiment)
        if self.candidate is not None and self.candidate.diff is None:
            # An in-place candidate's diff is made only now that it will not be kept (a keep's
            # commit is its diff): the same git call gives what a discard puts back.
            self.candidate = self.workspace.describe(self.candidate)
            self.save_diff(self.candidate)
        self.workspace.discard(self.leftovers, self.candidate)
        self.measurement.candidate_patch = None
        self.step = step

    # ------------------------------------------------------------ helpers of the steps

    def measure_copies_of(self, candidate: Candidate) -> None:
        """An executor that measures in copies elsewhere needs the candidate as a patch now."""
        if self.measurement.executor.measures_copies:
            if candidate.diff is None:
                self.candidate = candidate = self.workspace.describe(candidate)
                self.save_diff(candidate)
            self.measurement.candidate_patch = candidate.diff

    def save_diff(self, candidate: Candidate) -> None:
        if candidate.diff is not None:
            (self.log_dir / "proposal.diff").write_text(candidate.diff, errors="surrogateescape")

    def review_needed(self) -> str:
        """Why a would-be keep must wait for a person ([review]), or "" when it need not."""
        assert self.candidate is not None
        review = self.parts.config.review
        reasons = []
        if review.paths:
            touched = Globs(review.paths).select(list(self.candidate.paths))
            if touched:
                reasons.append(f"it changes {', '.join(touched[:5])} ([review] paths)")
        if because := self.experiment.extra.get("review_because"):
            reasons.append(f"{because} ([review] when)")
        return "; ".join(reasons)

    def commit_message(self) -> str:
        experiment, champion = self.experiment, self.state.champion_metric
        assert experiment.metric is not None
        change = f" ({(experiment.metric - champion) / abs(champion):+.2%})" if champion else ""
        title = " ".join(experiment.hypothesis.split())[:200] or f"experiment {experiment.id}"
        return (
            f"{title}\n\n"
            f"{self.parts.config.metric.name}: {experiment.metric:.6g}, was {champion:.6g}{change}\n\n"
            f"Ratchet-Run: {self.parts.run_name}\n{EXPERIMENT_TRAILER}: {experiment.id}\n"
        )
