"""The proposer conformance suite: what the loop relies on from every proposer, built-in or yours.

Subclass :class:`ProposerContract` in a test module and give it a ``proposer`` fixture; pytest
runs every test below against it, on a small real git repository (the run branch, the candidate
worktree, the proposer's state and log folders laid out as a run lays them out)::

    import pytest
    from ratchet.testing import ProposerContract

    class TestMyProposer(ProposerContract):
        @pytest.fixture
        def proposer(self, repository):
            return MyProposer(root=repository)

The other fixtures have defaults; override them where your proposer needs it:

- ``target``: the repository's files, scope and harness (a :class:`ContractTarget`);
  the default has numbers marked for tuning in ``src/tune.py``;
- ``fresh_proposer``: a second instance made like ``proposer`` (default: a deep copy of
  ``proposer`` before it is used), resumed from the first one's state folder;
- ``failing_proposer`` and ``failing_context``: a proposer and a context with which ``propose``
  must fail cheaply (default: none, and that check is skipped with its reason).

A proposer that declares ``concurrent = True`` (it may propose while its other proposals are
in flight, ``[run] workers`` > 1) is also called from several threads at once, each on a worker
slot's own worktree, while the test observes earlier outcomes out of order; set the class
attributes ``concurrent_workers`` (how many at once, default 3) and ``concurrent_distinct``
(True where your proposer promises that no two proposals in flight are the same change).

Every check drives the proposer the way the loop does: ``resume`` once per session, then
``propose`` -> the workspace materializes the proposal -> ``observe`` the verdict.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from ratchet.experiment import Experiment, Verdict
from ratchet.proposers.base import (
    Outcome,
    Proposal,
    ProposalContext,
    Proposer,
    ProposerError,
    Usage,
)
from ratchet.state import STATE_DIR
from ratchet.workspace.git import GIT_ENV, exclude_state_dir, git
from ratchet.workspace.scope import Globs
from ratchet.workspace.slots import SlotWorkspace
from ratchet.workspace.worktree import (
    BRANCH_PREFIX,
    Candidate,
    ScopeViolation,
    Workspace,
)

__all__ = [
    "DEFAULT_TARGET",
    "OBSERVED_VERDICTS",
    "ContractTarget",
    "ProposerContract",
    "WriteWatch",
    "check_candidate",
    "check_concurrent_proposals",
    "check_proposal",
    "check_usage",
    "in_flight_record",
    "make_context",
    "make_target_repository",
    "materialize",
    "open_slots",
    "open_workspace",
    "record",
    "run_dir",
]

_T = TypeVar("_T")

_IDENTITY = {
    "GIT_AUTHOR_NAME": "ratchet contract",
    "GIT_AUTHOR_EMAIL": "contract@localhost",
    "GIT_COMMITTER_NAME": "ratchet contract",
    "GIT_COMMITTER_EMAIL": "contract@localhost",
}


@dataclass(frozen=True)
class ContractTarget:
    """The small target a contract runs on: files committed on ``main``, scope and harness globs."""

    files: Mapping[str, str]
    scope: tuple[str, ...]
    harness: tuple[str, ...]
    brief: str = "Make the number small.\n"
    metric_name: str = "number"
    direction: str = "minimize"
    champion_metric: float = 10.0
    run: str = "contract"


DEFAULT_TARGET = ContractTarget(
    files={
        # Marked literals (the optuna proposer's markers): something any kind of proposer can change.
        "src/tune.py": "rate = 0.5  # ratchet: 0.0..1.0\nsteps = 3  # ratchet: int 1..8\n",
        "src/notes.txt": "Nothing to tune in here.\n",
        "bench.py": (
            "import sys\nsys.path.insert(0, 'src')\nimport tune\nprint('metric:', 10 * tune.rate + tune.steps)\n"
        ),
        "program.md": "Make the number small.\n",
        "README.md": "Outside the scope: a proposer never changes this.\n",
    },
    scope=("src/**",),
    harness=("bench.py",),
)

# What each verdict's outcome carries in the loop: a metric only where something was measured.
_MEASURED_METRIC = {
    Verdict.KEEP: 9.0,
    Verdict.DISCARD: 11.0,
    Verdict.OVERFIT: 9.5,
    Verdict.NEEDS_REVIEW: 9.2,
    Verdict.TAMPERED: 8.0,
}
# Every verdict a proposer can be told of (the baseline is no proposal's verdict).
OBSERVED_VERDICTS = tuple(verdict for verdict in Verdict if verdict is not Verdict.BASELINE)


# ---------------------------------------------------------------- the target and the run's folders


def make_target_repository(root: Path, target: ContractTarget = DEFAULT_TARGET) -> Path:
    """A git repository at ``root`` with ``target.files`` committed on branch ``main``."""
    root.mkdir(parents=True, exist_ok=True)
    env = {**GIT_ENV, **_IDENTITY}
    git(root, "init", "-q", "--initial-branch=main", env=env)
    for path, text in target.files.items():
        full = root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_text(text)
    git(root, "add", "-A", env=env)
    git(root, "commit", "-q", "--no-verify", "-m", "the contract's target", env=env)
    exclude_state_dir(root)
    return root


def open_workspace(repository: Path, target: ContractTarget = DEFAULT_TARGET) -> Workspace:
    """The run branch ``ratchet/<run>`` and its candidate worktree, clean at the champion."""
    workspace = Workspace(repository, target.run, Globs(target.scope), Globs(target.harness))
    if not workspace.branch_exists():
        workspace.create_branch()
    workspace.open_worktree()
    return workspace


def open_slots(workspace: Workspace, count: int) -> list[SlotWorkspace]:
    """``count`` worker slots of the run (``.ratchet/worktrees/<run>.w<k>``), each a detached
    worktree at the champion, as a run with ``[run] workers`` gives each worker."""
    champion = workspace.champion()
    slots = [SlotWorkspace(workspace.repo_root, workspace.run, workspace.scope, workspace.harness, index) for index in range(count)]
    for slot in slots:
        slot.open_at(champion)
    return slots


def run_dir(workspace: Workspace) -> Path:
    return workspace.repo_root / STATE_DIR / "runs" / workspace.run


def make_context(
    workspace: Workspace,
    target: ContractTarget = DEFAULT_TARGET,
    *,
    iteration: int = 1,
    history: tuple[Experiment, ...] = (),
    rework: str | None = None,
    champion_metric: float | None = None,
    worktree: Path | None = None,
    in_flight: tuple[Experiment, ...] = (),
) -> ProposalContext:
    """The context the loop gives experiment ``iteration``: its log folder made, the proposer's
    state folder ``.ratchet/runs/<run>/proposer`` (made by the proposer if it needs one).
    ``worktree``: a worker slot's (default: the run's candidate worktree)."""
    log_dir = run_dir(workspace) / "logs" / f"{iteration:04d}"
    log_dir.mkdir(parents=True, exist_ok=True)
    return ProposalContext(
        run=target.run,
        iteration=iteration,
        worktree=workspace.worktree if worktree is None else worktree,
        brief=target.brief,
        scope=target.scope,
        scope_files=tuple(workspace.scope_files()),
        metric_name=target.metric_name,
        direction=target.direction,
        champion_metric=target.champion_metric if champion_metric is None else champion_metric,
        baseline_metric=target.champion_metric,
        history=history,
        state_dir=run_dir(workspace) / "proposer",
        log_dir=log_dir,
        rework=rework,
        in_flight=in_flight,
    )


def record(context: ProposalContext, proposal: Proposal | None, verdict: Verdict, metric: float | None) -> Experiment:
    """The ledger's row for the experiment ``context`` was made for, as a resumed run reads it
    back (``proposal.meta`` through JSON, as the ledger stores it)."""
    meta = json.loads(json.dumps(dict(proposal.meta), default=str)) if proposal is not None else {}
    now = time.time()
    return Experiment(
        run=context.run,
        id=context.iteration,
        parent_commit="0" * 40,
        proposer="contract",
        started=now,
        state="done",
        verdict=verdict,
        reason="" if proposal is not None else "proposer: failed",
        hypothesis=proposal.hypothesis if proposal is not None else "",
        metric=metric,
        proposal_meta=meta,
        ended=now,
        log_dir=str(context.log_dir),
    )


def in_flight_record(iteration: int, target: ContractTarget = DEFAULT_TARGET, proposal: Proposal | None = None) -> Experiment:
    """Experiment ``iteration`` as another worker's context lists it while it is in flight: its
    hypothesis and meta once proposed, none while it is still being proposed."""
    return Experiment(
        run=target.run,
        id=iteration,
        parent_commit="0" * 40,
        proposer="contract",
        started=time.time(),
        state="running",
        hypothesis="" if proposal is None else proposal.hypothesis,
        proposal_meta={} if proposal is None else json.loads(json.dumps(dict(proposal.meta), default=str)),
    )


def materialize(workspace: Workspace, context: ProposalContext, proposal: Proposal) -> Candidate:
    """Apply ``proposal`` as the loop does; fail the test (not error) when the workspace rejects it."""
    try:
        return workspace.materialize(proposal, context.log_dir / "proposal.patch", workspace.champion())
    except ScopeViolation as exc:
        pytest.fail(f"the workspace rejects the proposal ({proposal.hypothesis!r}): {exc}")


def check_proposal(proposal: object) -> Proposal:
    """What the loop reads of any proposal: its type, a str hypothesis, usage, meta for the ledger."""
    assert isinstance(proposal, Proposal), f"propose returned {type(proposal).__name__}, not a Proposal"
    assert isinstance(proposal.hypothesis, str), f"the hypothesis is a {type(proposal.hypothesis).__name__}"
    check_usage(proposal.usage)
    assert isinstance(proposal.meta, Mapping), "meta is not a mapping"
    # The ledger stores meta as JSON: keys come back as str, so only str keys survive a resume.
    assert all(isinstance(key, str) for key in proposal.meta), f"meta keys must be str: {list(proposal.meta)}"
    json.dumps(dict(proposal.meta), default=str)
    return proposal


def check_usage(usage: object) -> None:
    if usage is None:
        return
    assert isinstance(usage, Usage), f"usage is a {type(usage).__name__}, not a Usage"
    for name in ("tokens_in", "tokens_out"):
        value = getattr(usage, name)
        assert isinstance(value, int) and not isinstance(value, bool) and value >= 0, f"usage.{name} = {value!r}"
    assert isinstance(usage.cost_usd, (int, float)) and usage.cost_usd >= 0, f"usage.cost_usd = {usage.cost_usd!r}"


def check_candidate(candidate: Candidate, target: ContractTarget) -> None:
    scope, harness = Globs(target.scope), Globs(target.harness)
    assert candidate.paths, "the proposal changes nothing"
    outside = [path for path in candidate.paths if not scope.matches(path) or harness.matches(path)]
    assert not outside, f"the proposal changes paths outside the scope: {outside}"


def _propose_at_once(
    proposer: Proposer, contexts: list[ProposalContext], meanwhile: Callable[[], None] = lambda: None
) -> list[Proposal]:
    """``propose`` for every context, each from its own thread, all released together; the calling
    thread (the loop's driver) runs ``meanwhile`` as they propose."""
    barrier = threading.Barrier(len(contexts) + 1)
    results: list[Proposal | BaseException | None] = [None] * len(contexts)

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=60)
            results[index] = proposer.propose(contexts[index])
        except BaseException as exc:  # noqa: BLE001 - reported by the caller's thread
            results[index] = exc

    threads = [threading.Thread(target=worker, args=(index,), daemon=True) for index in range(len(contexts))]
    for thread in threads:
        thread.start()
    barrier.wait(timeout=60)
    meanwhile()
    for thread in threads:
        thread.join(timeout=600)
    failed = [
        f"experiment {context.iteration}: {type(result).__name__}: {result}"
        for context, result in zip(contexts, results)
        if not isinstance(result, Proposal)
    ]
    if failed:
        pytest.fail("proposing concurrently failed: " + "; ".join(failed))
    return [check_proposal(result) for result in results]


def check_concurrent_proposals(
    proposer: Proposer, workspace: Workspace, target: ContractTarget = DEFAULT_TARGET, *, workers: int = 3, distinct: bool = False
) -> None:
    """Drive a concurrent proposer as a run with ``workers`` workers does.

    Two waves of ``workers`` proposals, each proposal from its own thread on a worker slot's own
    worktree, its context's ``in_flight`` naming the others (the first wave's once proposed); the
    driver observes the first wave, in reverse order, while the second proposes; then the second,
    in another order; then one more proposal must still be valid. Every proposal must pass the
    real workspace's scope check in its own slot; with ``distinct``, no two may be the same change.
    """
    slots = open_slots(workspace, 2 * workers)
    first = list(range(1, workers + 1))
    second = list(range(workers + 1, 2 * workers + 1))
    proposer.resume((), run_dir(workspace) / "proposer")

    def contexts(wave: list[int], known: dict[int, Proposal]) -> list[ProposalContext]:
        made = []
        for iteration in wave:
            others = tuple(in_flight_record(i, target, known.get(i)) for i in [*known, *wave] if i != iteration)
            worktree = slots[iteration - 1].worktree
            made.append(make_context(workspace, target, iteration=iteration, worktree=worktree, in_flight=others))
        return made

    changes: dict[int, dict[str, str | None]] = {}
    history: list[Experiment] = []

    def measure(context: ProposalContext, proposal: Proposal) -> None:
        slot = slots[context.iteration - 1]
        if not proposal.in_place:
            assert slot.status() == [], f"experiment {context.iteration}: a proposal of edits or a patch, yet its worktree changed"
        candidate = materialize(slot, context, proposal)
        check_candidate(candidate, target)
        changes[context.iteration] = {
            path: (slot.worktree / path).read_text(errors="replace") if (slot.worktree / path).is_file() else None
            for path in candidate.paths
        }

    def observe(context: ProposalContext, proposal: Proposal, index: int) -> None:
        verdict = (Verdict.DISCARD, Verdict.CRASH)[index % 2]
        metric = 11.0 + context.iteration if verdict is Verdict.DISCARD else None
        proposer.observe(Outcome(context.iteration, verdict, metric, proposal, True))
        history.append(record(context, proposal, verdict, metric))

    first_contexts = contexts(first, {})
    first_proposals = _propose_at_once(proposer, first_contexts)
    for context, proposal in zip(first_contexts, first_proposals):
        measure(context, proposal)
    known = dict(zip(first, first_proposals))
    second_contexts = contexts(second, known)

    def observe_first() -> None:  # the driver, as the first wave's verdicts come in (last first)
        for index, (context, proposal) in enumerate(reversed(list(zip(first_contexts, first_proposals)))):
            observe(context, proposal, index)

    second_proposals = _propose_at_once(proposer, second_contexts, observe_first)
    for context, proposal in zip(second_contexts, second_proposals):
        measure(context, proposal)
    order = second[1::2] + second[::2]  # neither the order proposed nor its reverse
    for index, iteration in enumerate(order):
        k = second.index(iteration)
        observe(second_contexts[k], second_proposals[k], index)
    if distinct:
        seen: dict[str, int] = {}
        for iteration, change in sorted(changes.items()):
            key = json.dumps(change, sort_keys=True)
            assert key not in seen, f"experiments {seen[key]} and {iteration} were in flight together with the same change"
            seen[key] = iteration
    # After outcomes told in any order, the proposer goes on.
    last = 2 * workers + 1
    slot = slots[0]
    slot.reset_clean()
    context = make_context(workspace, target, iteration=last, history=tuple(history), worktree=slot.worktree)
    check_candidate(materialize(slot, context, check_proposal(proposer.propose(context))), target)
    proposer.close()


# ---------------------------------------------------------------- where a proposer writes


@dataclass
class WriteWatch:
    """What changed under ``root`` while the proposer ran, outside the places it may write.

    A proposer may write in the candidate worktree, its state folder and the experiment's log
    folder; an in-place proposer's git use inside the worktree (its index, objects, commits on
    the run branch, which the loop adopts) is git's bookkeeping, not a write of the proposer's.
    """

    root: Path
    allowed: list[Path] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)

    @classmethod
    def for_run(cls, root: Path, workspace: Workspace, context: ProposalContext) -> WriteWatch:
        common = workspace.repo_root / ".git"
        bookkeeping = [
            common / "objects",
            common / "worktrees" / workspace.run,
            common / "refs" / "heads" / BRANCH_PREFIX.rstrip("/"),
            common / "logs" / "refs" / "heads" / BRANCH_PREFIX.rstrip("/"),
        ]
        return cls(root, [workspace.worktree, context.state_dir, context.log_dir, *bookkeeping])

    def snapshot(self) -> dict[str, tuple[int, int, int]]:
        seen: dict[str, tuple[int, int, int]] = {}
        for folder, dirs, files in os.walk(self.root):
            for name in [*dirs, *files]:
                path = os.path.join(folder, name)
                try:
                    info = os.lstat(path)
                except FileNotFoundError:
                    continue
                # A folder's own mtime moves when an entry is added: that entry is what counts.
                size = 0 if name in dirs else info.st_size
                seen[path] = (info.st_mode, size, 0 if name in dirs else info.st_mtime_ns)
        return seen

    def call(self, action: Callable[[], _T]) -> _T:
        """Run one proposer call, noting what it changed outside the allowed places."""
        before = self.snapshot()
        try:
            return action()
        finally:
            after = self.snapshot()
            changed = {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}
            self.strays += sorted(path for path in changed if not self._allowed(Path(path)))

    def _allowed(self, path: Path) -> bool:
        return any(path == place or place in path.parents for place in self.allowed)


# ---------------------------------------------------------------- the contract


class ProposerContract:
    """Tests every proposer must pass: subclass it and give a ``proposer`` fixture (see the module)."""

    #: how many proposals the concurrency check has in flight at once (a ``concurrent`` proposer)
    concurrent_workers: int = 3
    #: whether the proposer promises that no two proposals in flight together are the same change
    concurrent_distinct: bool = False

    # ------------------------------------------------------------ fixtures a subclass may override

    @pytest.fixture
    def proposer(self) -> Proposer:
        raise NotImplementedError("subclass ProposerContract and give it a `proposer` fixture")

    @pytest.fixture
    def fresh_proposer(self, proposer: Proposer) -> Proposer:
        """A second proposer made like ``proposer``: a deep copy taken before either is used."""
        return copy.deepcopy(proposer)

    @pytest.fixture
    def failing_proposer(self) -> Proposer | None:
        """A proposer whose ``propose`` (with ``failing_context``) fails cheaply; None: no such check."""
        return None

    @pytest.fixture
    def failing_context(self, context: ProposalContext) -> ProposalContext:
        return context

    @pytest.fixture
    def target(self) -> ContractTarget:
        return DEFAULT_TARGET

    @pytest.fixture
    def repository(self, tmp_path: Path, target: ContractTarget) -> Path:
        """The target's git repository (the user's checkout; a run never changes it)."""
        return make_target_repository(tmp_path / "target", target)

    @pytest.fixture
    def workspace(self, repository: Path, target: ContractTarget) -> Workspace:
        return open_workspace(repository, target)

    @pytest.fixture
    def context(self, workspace: Workspace, target: ContractTarget) -> ProposalContext:
        """The context of the run's first experiment."""
        return make_context(workspace, target)

    # ------------------------------------------------------------ what the loop relies on

    def test_kind_is_a_name(self, proposer: Proposer) -> None:
        assert isinstance(proposer.kind, str) and proposer.kind.strip(), f"kind = {proposer.kind!r}"
        assert proposer.kind == proposer.kind.strip() and "\n" not in proposer.kind
        assert isinstance(proposer.refuses_repeats, bool)

    def test_propose_returns_a_proposal(self, proposer: Proposer, context: ProposalContext) -> None:
        proposer.resume((), context.state_dir)
        check_proposal(proposer.propose(context))
        proposer.close()

    def test_proposal_changes_something_inside_the_scope(
        self, proposer: Proposer, context: ProposalContext, workspace: Workspace, target: ContractTarget, repository: Path
    ) -> None:
        user_files = {path: (repository / path).read_text() for path in target.files}
        proposer.resume((), context.state_dir)
        proposal = check_proposal(proposer.propose(context))
        if not proposal.in_place:
            # Edits and patches are the loop's to apply: the candidate checkout is untouched until then.
            assert workspace.status() == [], f"a proposal of edits or a patch, yet the worktree changed: {workspace.status()}"
        check_candidate(materialize(workspace, context, proposal), target)
        assert {path: (repository / path).read_text() for path in target.files} == user_files, "the user's checkout changed"
        proposer.close()

    def test_observe_accepts_every_verdict(self, proposer: Proposer, workspace: Workspace, target: ContractTarget) -> None:
        history: list[Experiment] = []
        outcomes = [(verdict, verdict in _MEASURED_METRIC) for verdict in OBSERVED_VERDICTS]
        outcomes.append((Verdict.DISCARD, False))  # measured, but a guard failed
        context = make_context(workspace, target)
        proposer.resume((), context.state_dir)
        for iteration, (verdict, guards_passed) in enumerate(outcomes, start=1):
            context = make_context(workspace, target, iteration=iteration, history=tuple(history))
            proposal = check_proposal(proposer.propose(context))
            candidate = materialize(workspace, context, proposal)
            metric = _MEASURED_METRIC.get(verdict)
            workspace.discard(workspace.leftovers(), candidate)
            proposer.observe(Outcome(iteration, verdict, metric, proposal, guards_passed))
            history.append(record(context, proposal, verdict, metric))
        # A proposal that failed (ProposerError) is observed without one.
        proposer.observe(Outcome(len(outcomes) + 1, Verdict.INVALID, None, None, True))
        history.append(record(make_context(workspace, target, iteration=len(outcomes) + 1), None, Verdict.INVALID, None))
        context = make_context(workspace, target, iteration=len(outcomes) + 2, history=tuple(history))
        check_candidate(materialize(workspace, context, check_proposal(proposer.propose(context))), target)
        proposer.close()

    def test_resume_with_an_empty_history_in_a_new_state_dir(self, proposer: Proposer, context: ProposalContext) -> None:
        assert not context.state_dir.exists()  # the first session of a run: the folder is the proposer's to make
        proposer.resume((), context.state_dir)
        check_proposal(proposer.propose(context))
        proposer.close()

    def test_a_fresh_proposer_resumed_from_the_state_dir_goes_on(
        self, proposer: Proposer, fresh_proposer: Proposer, workspace: Workspace, target: ContractTarget
    ) -> None:
        assert fresh_proposer is not proposer, "fresh_proposer must be a second instance"
        history: list[Experiment] = []
        first = make_context(workspace, target, iteration=1)
        proposer.resume((), first.state_dir)
        for iteration, verdict in ((1, Verdict.DISCARD), (2, Verdict.CRASH)):
            context = make_context(workspace, target, iteration=iteration, history=tuple(history))
            proposal = check_proposal(proposer.propose(context))
            candidate = materialize(workspace, context, proposal)
            workspace.discard(workspace.leftovers(), candidate)
            metric = _MEASURED_METRIC.get(verdict)
            proposer.observe(Outcome(iteration, verdict, metric, proposal, True))
            history.append(record(context, proposal, verdict, metric))
        proposer.close()
        # The next session: a new process, the ledger so far, the same state folder.
        context = make_context(workspace, target, iteration=3, history=tuple(history))
        fresh_proposer.resume(tuple(history), context.state_dir)
        proposal = check_proposal(fresh_proposer.propose(context))
        check_candidate(materialize(workspace, context, proposal), target)
        fresh_proposer.close()

    def test_resume_after_a_proposal_never_observed(
        self, proposer: Proposer, fresh_proposer: Proposer, workspace: Workspace, target: ContractTarget
    ) -> None:
        # A kill -9 between propose and observe: the ledger repairs the experiment to abandoned.
        context = make_context(workspace, target, iteration=1)
        proposer.resume((), context.state_dir)
        proposal = check_proposal(proposer.propose(context))
        workspace.reset_clean()
        history = (record(context, proposal, Verdict.ABANDONED, None),)
        context = make_context(workspace, target, iteration=2, history=history)
        fresh_proposer.resume(history, context.state_dir)
        check_candidate(materialize(workspace, context, check_proposal(fresh_proposer.propose(context))), target)
        fresh_proposer.close()

    def test_mend_returns_none_or_a_proposal_inside_the_scope(
        self, proposer: Proposer, context: ProposalContext, workspace: Workspace, target: ContractTarget
    ) -> None:
        proposer.resume((), context.state_dir)
        candidate = materialize(workspace, context, check_proposal(proposer.propose(context)))
        workspace.drop_leftovers(candidate)
        feedback = "guard tests failed: exit 1\n--- stdout ---\nFAILED test_tune.py::test_rate - AssertionError"
        rework = dataclasses.replace(context, rework=feedback, log_dir=context.log_dir / "rework-1")
        rework.log_dir.mkdir(parents=True, exist_ok=True)
        mended = proposer.mend(rework)
        assert mended is None or isinstance(mended, Proposal), f"mend returned {type(mended).__name__}"
        if mended is not None:
            check_proposal(mended)
            try:
                workspace.materialize(mended, rework.log_dir / "proposal.patch", workspace.champion())
            except ScopeViolation as exc:
                assert "changes nothing" in str(exc), f"the workspace rejects the mended proposal: {exc}"
            check_candidate(workspace.check_scope(diff=None), target)  # the candidate, mended: all its changes
        proposer.close()

    def test_close_can_be_called_twice(self, proposer: Proposer, context: ProposalContext) -> None:
        proposer.resume((), context.state_dir)
        check_proposal(proposer.propose(context))
        proposer.close()
        proposer.close()

    def test_close_without_resume(self, proposer: Proposer) -> None:
        # A session that fails before its first proposal still closes its proposer.
        proposer.close()
        proposer.close()

    def test_a_failure_is_a_proposer_error(self, failing_proposer: Proposer | None, failing_context: ProposalContext) -> None:
        if failing_proposer is None:
            pytest.skip(f"{type(self).__name__} gives no failing_proposer: nothing provokes a failure cheaply")
        with pytest.raises(ProposerError) as caught:
            # A check in resume (a missing key) counts as well: the loop reports it the same way.
            failing_proposer.resume(failing_context.history, failing_context.state_dir)
            failing_proposer.propose(failing_context)
        assert str(caught.value).strip(), "a ProposerError without a message: the ledger's reason would be empty"
        check_usage(caught.value.usage)
        failing_proposer.close()

    def test_proposes_concurrently_while_others_are_in_flight(
        self, proposer: Proposer, workspace: Workspace, target: ContractTarget
    ) -> None:
        if not proposer.concurrent:
            pytest.skip(f"{type(proposer).__name__}.concurrent is False: the loop calls it one call at a time")
        check_concurrent_proposals(proposer, workspace, target, workers=self.concurrent_workers, distinct=self.concurrent_distinct)

    def test_writes_stay_in_the_worktree_state_dir_and_log_dir(
        self, proposer: Proposer, context: ProposalContext, workspace: Workspace, tmp_path: Path
    ) -> None:
        watch = WriteWatch.for_run(tmp_path, workspace, context)
        (tmp_path / "elsewhere").mkdir(exist_ok=True)
        (tmp_path / "elsewhere" / "keep.txt").write_text("not the proposer's\n")
        watch.call(lambda: proposer.resume((), context.state_dir))
        proposal = check_proposal(watch.call(lambda: proposer.propose(context)))
        candidate = materialize(workspace, context, proposal)
        rework = dataclasses.replace(context, rework="guard tests failed: exit 1", log_dir=context.log_dir / "rework-1")
        rework.log_dir.mkdir(parents=True, exist_ok=True)
        workspace.drop_leftovers(candidate)
        watch.call(lambda: proposer.mend(rework))
        workspace.reset_clean()
        watch.call(lambda: proposer.observe(Outcome(context.iteration, Verdict.DISCARD, 11.0, proposal, True)))
        watch.call(proposer.close)
        assert watch.strays == [], f"the proposer wrote outside the worktree, its state_dir and its log_dir: {watch.strays}"
