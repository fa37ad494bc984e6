"""The optuna proposer on a real on-disk study, and the demo example it ships with."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest

import ratchet
from ratchet.config import OptunaProposerSection, load_config
from ratchet.experiment import Experiment, Verdict
from ratchet.proposers._params import discover_params, render_edits
from ratchet.proposers.base import Outcome, Proposal, ProposalContext, ProposerError
from ratchet.proposers.optuna import JOURNAL_FILE, STUDY_NAME, OptunaProposer

TRAIN = """\
import math
lr = 0.01  # ratchet: log 1e-4..1e-1
depth = 3  # ratchet: int 1..8
act = "relu"  # ratchet: choice relu, gelu
"""


def section(**overrides: object) -> OptunaProposerSection:
    return OptunaProposerSection.model_validate({"kind": "optuna", "seed": 0, **overrides})


def make_target(root: Path) -> Path:
    worktree = root / "worktree"
    worktree.mkdir()
    (worktree / "train.py").write_text(TRAIN)
    (worktree / "notes.py").write_text("x = 1  # no marker here\n")
    return worktree


def context(worktree: Path, state_dir: Path, *, champion: float | None = 1.0, history: tuple = (), it: int = 1) -> ProposalContext:
    return ProposalContext(
        run="test",
        iteration=it,
        worktree=worktree,
        brief="",
        scope=("*.py",),
        scope_files=tuple(sorted(p.name for p in worktree.glob("*.py"))),
        metric_name="loss",
        direction="minimize",
        champion_metric=champion,
        baseline_metric=champion,
        history=history,
        state_dir=state_dir,
        log_dir=state_dir.parent / "logs",
    )


def experiment(id: int, proposal: Proposal, verdict: Verdict | None, metric: float | None, state: str = "done") -> Experiment:
    return Experiment(
        run="test",
        id=id,
        parent_commit="0" * 40,
        proposer="optuna",
        started=time.time(),
        state=state,
        verdict=verdict,
        metric=metric,
        hypothesis=proposal.hypothesis,
        proposal_meta=dict(proposal.meta),
    )


def load(state_dir: Path) -> optuna.Study:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(state_dir / JOURNAL_FILE)))
    return optuna.load_study(study_name=STUDY_NAME, storage=storage)


def started(tmp_path: Path, **overrides: object) -> tuple[OptunaProposer, Path, Path]:
    worktree, state = make_target(tmp_path), tmp_path / "state"
    proposer = OptunaProposer(section(**overrides), direction="minimize")
    proposer.resume((), state)
    return proposer, worktree, state


# ---------------------------------------------------------------- proposing


def test_proposal_edits_only_marked_files_within_ranges(tmp_path: Path) -> None:
    proposer, worktree, state = started(tmp_path)
    proposal = proposer.propose(context(worktree, state))
    assert set(proposal.edits) == {"train.py"}
    params = proposal.meta["params"]
    assert set(params) == {"train.py:lr", "train.py:depth", "train.py:act"}
    assert 1e-4 <= params["train.py:lr"] <= 1e-1
    assert isinstance(params["train.py:depth"], int) and 1 <= params["train.py:depth"] <= 8
    assert params["train.py:act"] in ("relu", "gelu")
    # The edit holds exactly the proposed values, and the file is still valid Python.
    text = proposal.edits["train.py"]
    compile(text, "train.py", "exec")
    (worktree / "train.py").write_text(text)
    found = {p.name: p.value for p in discover_params(worktree, [], ["train.py"], True)}
    assert found == params
    assert re.fullmatch(r"optuna trial 1: lr=\S+, depth=\d, act=(relu|gelu)", proposal.hypothesis)


def test_first_proposal_seeds_the_study_with_the_champion(tmp_path: Path) -> None:
    proposer, worktree, state = started(tmp_path)
    proposal = proposer.propose(context(worktree, state, champion=0.75))
    trials = load(state).trials
    assert trials[0].state == optuna.trial.TrialState.COMPLETE
    assert trials[0].value == 0.75
    assert trials[0].params == {"train.py:lr": 0.01, "train.py:depth": 3, "train.py:act": "relu"}
    assert proposal.meta["trial"] == 1 == trials[1].number
    # Only the first proposal of a study does it.
    proposer.observe(Outcome(1, Verdict.DISCARD, 0.9, proposal))
    proposer.propose(context(worktree, state, champion=0.5))
    assert [t.value for t in load(state).trials if t.user_attrs.get("ratchet") == "champion"] == [0.75]


@pytest.mark.parametrize("champion", [None, float("nan"), float("inf")])
def test_no_champion_trial_without_a_finite_metric(tmp_path: Path, champion: float | None) -> None:
    proposer, worktree, state = started(tmp_path)
    assert proposer.propose(context(worktree, state, champion=champion)).meta["trial"] == 0


def test_no_champion_trial_when_current_value_is_out_of_range(tmp_path: Path) -> None:
    proposer, worktree, state = started(tmp_path)
    (worktree / "train.py").write_text(TRAIN.replace("lr = 0.01", "lr = 5.0"))
    assert proposer.propose(context(worktree, state, champion=1.0)).meta["trial"] == 0


def test_declared_params_are_proposed_too(tmp_path: Path) -> None:
    proposer, worktree, state = started(tmp_path, markers=False, params=[{"file": "cfg.toml", "key": "opt.lr", "range": "0..1"}])
    (worktree / "cfg.toml").write_text("[opt]\nlr = 0.5  # learning rate\n")
    ctx = context(worktree, state)
    ctx = ProposalContext(**{**ctx.__dict__, "scope_files": ("cfg.toml", "train.py")})
    proposal = proposer.propose(ctx)
    assert set(proposal.edits) == {"cfg.toml"}  # markers are off: train.py is not touched
    assert proposal.edits["cfg.toml"].endswith("  # learning rate\n")
    assert set(proposal.meta["params"]) == {"cfg.toml:opt.lr"}


def test_no_params_is_a_proposer_error_that_says_how_to_declare_them(tmp_path: Path) -> None:
    proposer, worktree, state = started(tmp_path)
    (worktree / "train.py").write_text("lr = 0.01\n")
    with pytest.raises(ProposerError, match=r"# ratchet: log 1e-4\.\.1e-1.*\[\[proposer\.params\]\]"):
        proposer.propose(context(worktree, state))


def test_bad_marker_is_a_proposer_error_naming_the_line(tmp_path: Path) -> None:
    proposer, worktree, state = started(tmp_path)
    (worktree / "train.py").write_text("lr = 0.01  # ratchet: log 1e-1..1e-4\n")
    with pytest.raises(ProposerError, match=r"^train\.py:1: "):
        proposer.propose(context(worktree, state))


def test_same_seed_same_proposals_and_different_seed_differs(tmp_path: Path) -> None:
    def first_params(root: Path, seed: int) -> dict:
        root.mkdir()
        proposer, worktree, state = started(root, seed=seed)
        return dict(proposer.propose(context(worktree, state)).meta["params"])

    a, b, c = first_params(tmp_path / "a", 0), first_params(tmp_path / "b", 0), first_params(tmp_path / "c", 1)
    assert a == b
    assert a != c


# ---------------------------------------------------------------- observing


def test_observe_tells_measured_values_and_fails_the_rest(tmp_path: Path) -> None:
    proposer, worktree, state = started(tmp_path)
    outcomes = [
        (Verdict.KEEP, 0.5),
        (Verdict.DISCARD, 2.0),
        (Verdict.CRASH, None),
        (Verdict.TIMEOUT, None),
        (Verdict.TAMPERED, 0.1),
        (Verdict.INVALID, None),
        (Verdict.DISCARD, None),
        (Verdict.DISCARD, float("nan")),
    ]
    numbers = []
    for i, (verdict, metric) in enumerate(outcomes, start=1):
        proposal = proposer.propose(context(worktree, state, champion=None, it=i))
        numbers.append(proposal.meta["trial"])
        proposer.observe(Outcome(i, verdict, metric, proposal))
    trials = {t.number: t for t in load(state).trials}
    assert [trials[n].value for n in numbers[:2]] == [0.5, 2.0]
    fail = optuna.trial.TrialState.FAIL
    assert [trials[n].state for n in numbers[2:]] == [fail] * 6


def test_observe_without_a_proposal_uses_the_pending_trial(tmp_path: Path) -> None:
    proposer, worktree, state = started(tmp_path)
    proposal = proposer.propose(context(worktree, state, champion=None))
    proposer.observe(Outcome(1, Verdict.INVALID, None, None))
    assert load(state).trials[proposal.meta["trial"]].state == optuna.trial.TrialState.FAIL


def test_maximize_study(tmp_path: Path) -> None:
    worktree, state = make_target(tmp_path), tmp_path / "state"
    proposer = OptunaProposer(section(), direction="maximize")
    proposer.resume((), state)
    for i, metric in enumerate([1.0, 3.0, 2.0], start=1):
        proposal = proposer.propose(context(worktree, state, champion=None, it=i))
        proposer.observe(Outcome(i, Verdict.DISCARD, metric, proposal))
    study = load(state)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.best_value == 3.0


# ---------------------------------------------------------------- resume


def crashed_session(tmp_path: Path) -> tuple[Proposal, Path, Path]:
    """A session that asked a trial and was killed before telling it."""
    proposer, worktree, state = started(tmp_path)
    first = proposer.propose(context(worktree, state, champion=None))
    proposer.observe(Outcome(1, Verdict.DISCARD, 1.5, first))
    pending = proposer.propose(context(worktree, state, champion=None, it=2))
    assert load(state).trials[pending.meta["trial"]].state == optuna.trial.TrialState.RUNNING
    return pending, worktree, state  # no observe, no close: the process "died"


@pytest.mark.parametrize("verdict", [Verdict.KEEP, Verdict.DISCARD])
def test_resume_tells_a_running_trial_the_ledgers_measurement(tmp_path: Path, verdict: Verdict) -> None:
    pending, _, state = crashed_session(tmp_path)
    history = (experiment(2, pending, verdict, 0.25),)
    OptunaProposer(section(), direction="minimize").resume(history, state)
    trial = load(state).trials[pending.meta["trial"]]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.value == 0.25


@pytest.mark.parametrize(
    ("verdict", "metric", "meta_patch"),
    [
        (None, None, {}),  # still running in the ledger
        (Verdict.ABANDONED, None, {}),
        (Verdict.CRASH, None, {}),
        (Verdict.TAMPERED, 0.1, {}),
        (Verdict.DISCARD, 0.25, {"study": "an-older-study"}),  # same number, another (deleted) study
    ],
)
def test_resume_fails_a_running_trial_the_ledger_has_no_measurement_for(
    tmp_path: Path, verdict: Verdict | None, metric: float | None, meta_patch: dict
) -> None:
    pending, _, state = crashed_session(tmp_path)
    patched = Proposal(hypothesis=pending.hypothesis, edits=pending.edits, meta={**pending.meta, **meta_patch})
    history = (experiment(2, patched, verdict, metric, state="running" if verdict is None else "done"),)
    OptunaProposer(section(), direction="minimize").resume(history, state)
    assert load(state).trials[pending.meta["trial"]].state == optuna.trial.TrialState.FAIL


def test_resume_with_empty_history_fails_the_running_trial(tmp_path: Path) -> None:
    pending, _, state = crashed_session(tmp_path)
    OptunaProposer(section(), direction="minimize").resume((), state)
    states = [t.state for t in load(state).trials]
    assert optuna.trial.TrialState.RUNNING not in states
    assert states[pending.meta["trial"]] == optuna.trial.TrialState.FAIL


def test_a_second_instance_continues_the_same_study(tmp_path: Path) -> None:
    proposer, worktree, state = started(tmp_path)
    numbers, proposed = [], []
    for i in range(3):
        proposal = proposer.propose(context(worktree, state, it=i + 1))
        proposer.observe(Outcome(i + 1, Verdict.DISCARD, 2.0 + i, proposal))
        numbers.append(proposal.meta["trial"])
        proposed.append(proposal.meta["params"])
    proposer.close()
    assert numbers == [1, 2, 3]  # trial 0 is the champion

    again = OptunaProposer(section(), direction="minimize")
    again.resume((), state)
    proposal = again.propose(context(worktree, state, it=4))
    assert proposal.meta["trial"] == 4
    study = load(state)
    assert len(study.trials) == 5
    assert [t.user_attrs.get("ratchet") for t in study.trials].count("champion") == 1
    # The resumed sampler does not replay the first session's first proposal.
    assert proposal.meta["params"] not in proposed


def test_resume_repairs_a_torn_journal_tail(tmp_path: Path) -> None:
    proposer, worktree, state = started(tmp_path)
    proposal = proposer.propose(context(worktree, state))
    proposer.observe(Outcome(1, Verdict.DISCARD, 2.0, proposal))
    with (state / JOURNAL_FILE).open("ab") as journal:
        journal.write(b'{"op_code": 4, "worker_id": "x", "trial_id": 1, "sta')  # killed mid-append
    again = OptunaProposer(section(), direction="minimize")
    again.resume((), state)
    again.observe(Outcome(2, Verdict.DISCARD, 3.0, again.propose(context(worktree, state, it=2))))
    assert [t.value for t in load(state).trials] == [1.0, 2.0, 3.0]


def test_resume_clears_a_stale_lock_left_by_a_kill(tmp_path: Path) -> None:
    proposer, worktree, state = started(tmp_path)
    proposer.observe(Outcome(1, Verdict.DISCARD, 2.0, proposer.propose(context(worktree, state))))
    (state / (JOURNAL_FILE + ".lock")).touch()  # what a kill -9 inside an append leaves
    said: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("optuna").addHandler(handler)
    try:
        again = OptunaProposer(section(), direction="minimize")
        again.resume((), state)
        again.observe(Outcome(2, Verdict.DISCARD, 3.0, again.propose(context(worktree, state, it=2))))
    finally:
        logging.getLogger("optuna").removeHandler(handler)
    # Cleared, not waited out: Optuna takes a stale lock over only after its grace period (5 s),
    # and says so when it does.
    assert not [line for line in said if "lock" in line.lower()], said
    assert [t.value for t in load(state).trials] == [1.0, 2.0, 3.0]


CHILD = """
import random, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from test_optuna import Outcome, OptunaProposer, Verdict, context, section
root = Path(sys.argv[1])
proposer = OptunaProposer(section(), direction="minimize")
proposer.resume((), root / "state")
for i in range(1, 100000):
    proposal = proposer.propose(context(root / "worktree", root / "state", it=i, champion=None))
    print(proposal.meta["trial"], flush=True)
    proposer.observe(Outcome(i, Verdict.DISCARD, random.random(), proposal))
"""


@pytest.mark.slow
def test_kill_9_at_any_moment_leaves_a_study_that_resumes(tmp_path: Path) -> None:
    worktree, state = make_target(tmp_path), tmp_path / "state"
    for kill in range(4):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path), str(Path(__file__).parent)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},  # find ratchet as we did
        )
        assert child.stdout is not None
        for _ in range(5 + 7 * kill):  # let it get some trials in, then kill it mid-flight
            child.stdout.readline()
        child.kill()
        child.wait()
        proposer = OptunaProposer(section(), direction="minimize")
        proposer.resume((), state)
        proposal = proposer.propose(context(worktree, state, it=1, champion=None))
        proposer.observe(Outcome(1, Verdict.DISCARD, 0.5, proposal))
        proposer.close()
        trials = load(state).trials
        assert trials[-1].value == 0.5
        assert all(t.state != optuna.trial.TrialState.RUNNING for t in trials)


# ---------------------------------------------------------------- several workers


def propose_at_once(proposer: OptunaProposer, tmp_path: Path, state: Path, iterations: list[int]) -> list[Proposal]:
    """Each iteration proposed from its own thread on its own worktree copy, all started together."""
    barrier = threading.Barrier(len(iterations))
    results: dict[int, Proposal | BaseException] = {}

    def worker(it: int) -> None:
        worktree = tmp_path / f"worktree-{it}"
        if not worktree.exists():
            shutil.copytree(tmp_path / "worktree", worktree)
        barrier.wait()
        try:
            results[it] = proposer.propose(context(worktree, state, it=it, champion=None))
        except BaseException as exc:  # noqa: BLE001 - reported below
            results[it] = exc

    threads = [threading.Thread(target=worker, args=(it,)) for it in iterations]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failed = {it: r for it, r in results.items() if not isinstance(r, Proposal)}
    assert not failed, failed
    return [results[it] for it in iterations]  # type: ignore[misc]


def test_optuna_proposes_concurrently(tmp_path: Path) -> None:
    assert OptunaProposer.concurrent is True


def test_four_concurrent_asks_draw_four_distinct_points_told_in_any_order(tmp_path: Path) -> None:
    proposer, worktree, state = started(tmp_path, startup_trials=2)
    for i, metric in enumerate([2.0, 1.0, 3.0], start=1):  # past the start-up trials: TPE samples
        proposer.observe(Outcome(i, Verdict.DISCARD, metric, proposer.propose(context(worktree, state, it=i, champion=None))))
    proposals = propose_at_once(proposer, tmp_path, state, [4, 5, 6, 7])
    numbers = [p.meta["trial"] for p in proposals]
    assert len(set(numbers)) == 4
    points = [tuple(sorted(p.meta["params"].items())) for p in proposals]
    assert len(set(points)) == 4, points  # the constant liar: no two running trials on one point
    trials = {t.number: t for t in load(state).trials}
    assert all(trials[n].state == optuna.trial.TrialState.RUNNING for n in numbers)
    for number, proposal in zip(numbers, proposals):  # each proposal writes its own trial's point (rounded)
        sampled = trials[number].params
        assert {k: pytest.approx(v, rel=1e-5) if isinstance(v, float) else v for k, v in sampled.items()} == proposal.meta["params"]
    # Told in another order than asked, one of them failed: each trial gets its own outcome.
    order = [2, 0, 3, 1]
    metrics = {0: 0.5, 2: 0.25, 3: 4.0}
    for k in order:
        verdict = Verdict.CRASH if k == 1 else Verdict.DISCARD
        proposer.observe(Outcome(4 + k, verdict, metrics.get(k), proposals[k]))
    trials = {t.number: t for t in load(state).trials}
    assert [trials[numbers[k]].value for k in (0, 2, 3)] == [0.5, 0.25, 4.0]
    assert trials[numbers[1]].state == optuna.trial.TrialState.FAIL
    # A later proposal goes on from there, with nothing left running.
    after = proposer.propose(context(worktree, state, it=8, champion=None))
    assert after.meta["trial"] == max(numbers) + 1
    assert [t.number for t in load(state).trials if t.state == optuna.trial.TrialState.RUNNING] == [after.meta["trial"]]


def test_concurrent_asks_with_the_same_seed_are_reproducible(tmp_path: Path) -> None:
    def draws(root: Path) -> list[dict]:
        root.mkdir()
        proposer, _, state = started(root, startup_trials=1)
        proposals = [proposer.propose(context(root / "worktree", state, it=i, champion=None)) for i in (1, 2, 3)]
        return [dict(p.meta["params"]) for p in proposals]

    a, b = draws(tmp_path / "a"), draws(tmp_path / "b")
    assert a == b  # asks serialized by the lock, so the seed still decides the draws
    assert len({tuple(sorted(d.items())) for d in a}) == 3


def test_an_outcome_without_a_proposal_fails_nothing_while_several_trials_are_open(tmp_path: Path) -> None:
    proposer, worktree, state = started(tmp_path)
    first = proposer.propose(context(worktree, state, it=1, champion=None))
    second = proposer.propose(context(worktree, state, it=2, champion=None))
    proposer.observe(Outcome(3, Verdict.INVALID, None, None))  # which trial? none can be named
    trials = load(state).trials
    assert [trials[p.meta["trial"]].state for p in (first, second)] == [optuna.trial.TrialState.RUNNING] * 2
    proposer.observe(Outcome(1, Verdict.DISCARD, 1.5, first))
    proposer.observe(Outcome(4, Verdict.INVALID, None, None))  # one left open: that one
    trials = load(state).trials
    assert trials[first.meta["trial"]].value == 1.5
    assert trials[second.meta["trial"]].state == optuna.trial.TrialState.FAIL


THREE_OPEN = """
import sys, threading
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from test_optuna import Outcome, OptunaProposer, Verdict, context, section
root = Path(sys.argv[1])
proposer = OptunaProposer(section(), direction="minimize")
proposer.resume((), root / "state")
proposer.observe(Outcome(1, Verdict.DISCARD, 2.0, proposer.propose(context(root / "worktree", root / "state", it=1, champion=None))))
def ask(it):
    proposal = proposer.propose(context(root / "worktree", root / "state", it=it, champion=None))
    print(it, proposal.meta["trial"], proposal.meta["study"], flush=True)
threads = [threading.Thread(target=ask, args=(it,)) for it in (2, 3, 4)]
for t in threads: t.start()
for t in threads: t.join()
print("asked", flush=True)
threading.Event().wait()  # measuring, until killed
"""


def test_resume_after_a_kill_with_three_trials_open_repairs_all_three(tmp_path: Path) -> None:
    worktree, state = make_target(tmp_path), tmp_path / "state"
    child = subprocess.Popen(
        [sys.executable, "-c", THREE_OPEN, str(tmp_path), str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
    )
    assert child.stdout is not None
    lines = [child.stdout.readline().split() for _ in range(4)]
    assert lines[-1] == ["asked"], lines
    child.kill()  # SIGKILL with three trials asked and never told
    child.wait()
    opened = {int(it): (int(trial), token) for it, trial, token in lines[:3]}
    assert sorted(trial for trial, _ in opened.values()) == [1, 2, 3]
    running = optuna.trial.TrialState.RUNNING
    assert [t.number for t in load(state).trials if t.state == running] == [1, 2, 3]
    # The ledger, resumed: experiment 2 was measured, 3 crashed, 4 was still running (abandoned).
    def row(it: int, verdict: Verdict, metric: float | None) -> Experiment:
        trial, token = opened[it]
        proposal = Proposal(hypothesis=f"optuna trial {trial}", edits={"train.py": TRAIN}, meta={"trial": trial, "study": token})
        return experiment(it, proposal, verdict, metric)

    history = (row(2, Verdict.DISCARD, 0.75), row(3, Verdict.CRASH, None), row(4, Verdict.ABANDONED, None))
    proposer = OptunaProposer(section(), direction="minimize")
    proposer.resume(history, state)
    trials = {t.number: t for t in load(state).trials}
    assert trials[opened[2][0]].state == optuna.trial.TrialState.COMPLETE and trials[opened[2][0]].value == 0.75
    assert trials[opened[3][0]].state == optuna.trial.TrialState.FAIL
    assert trials[opened[4][0]].state == optuna.trial.TrialState.FAIL
    proposal = proposer.propose(context(worktree, state, it=5, champion=None))
    assert proposal.meta["trial"] == 4
    assert [t.number for t in load(state).trials if t.state == running] == [4]


def test_resume_refuses_a_study_of_the_other_direction(tmp_path: Path) -> None:
    _, _, state = started(tmp_path)
    with pytest.raises(ProposerError, match="minimize"):
        OptunaProposer(section(), direction="maximize").resume((), state)


def test_propose_without_resume_opens_the_study_itself(tmp_path: Path) -> None:
    worktree, state = make_target(tmp_path), tmp_path / "state"
    proposal = OptunaProposer(section(), direction="minimize").propose(context(worktree, state))
    assert (state / JOURNAL_FILE).exists()
    assert load(state).trials[proposal.meta["trial"]].state == optuna.trial.TrialState.RUNNING


# ---------------------------------------------------------------- the demo example

EXAMPLE = Path(ratchet.__file__).parent / "examples" / "regression"


def run_train(folder: Path) -> float:
    result = subprocess.run(
        [sys.executable, "-B", "train.py"], cwd=folder, capture_output=True, text=True, timeout=60, check=True
    )
    lines = result.stdout.strip().splitlines()
    match = re.fullmatch(r"val_loss: ([0-9.eE+-]+)", lines[-1])
    assert match, result.stdout
    return float(match.group(1))


def test_example_config_is_valid_and_its_files_exist() -> None:
    config = load_config(EXAMPLE / "ratchet.toml")
    assert config.proposer.kind == "optuna"
    for name in [*config.scope.mutable, *config.scope.harness, config.run.brief]:
        assert (EXAMPLE / name).is_file(), name
    assert re.search(config.metric.regex or "", "val_loss: 0.123")
    params = discover_params(EXAMPLE, [], config.scope.mutable, markers=True)
    assert len(params) == 5


def test_example_is_deterministic(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    shutil.copytree(EXAMPLE, folder)
    assert run_train(folder) == run_train(folder)


def test_example_good_params_beat_the_baseline(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    shutil.copytree(EXAMPLE, folder)
    baseline = run_train(folder)
    params = discover_params(folder, [], ["train.py"], markers=True)
    good = {
        "train.py:learning_rate": 0.03,
        "train.py:hidden_units": 32,
        "train.py:epochs": 500,
        "train.py:weight_decay": 1e-5,
        "train.py:activation": "tanh",
    }
    (folder / "train.py").write_text(render_edits(folder, params, good)["train.py"])
    improved = run_train(folder)
    assert improved < 0.1 * baseline
    assert improved > 0.005  # not below the noise floor: the harness still measures honestly


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_example_search_finds_a_clear_improvement_within_12_trials(tmp_path: Path, seed: int) -> None:
    """The demo's promise: the ratchet moves. A small loop: keep only if > 0.5% better."""
    champion_dir, state = tmp_path / "champion", tmp_path / "state"
    shutil.copytree(EXAMPLE, champion_dir)
    baseline = champion = run_train(champion_dir)
    proposer = OptunaProposer(load_config(EXAMPLE / "ratchet.toml").proposer.model_copy(update={"seed": seed}), direction="minimize")  # type: ignore[union-attr]
    proposer.resume((), state)
    keeps = 0
    for i in range(1, 13):
        ctx = context(champion_dir, state, champion=champion, it=i)
        ctx = ProposalContext(**{**ctx.__dict__, "scope_files": ("train.py",)})
        proposal = proposer.propose(ctx)
        candidate = tmp_path / f"candidate{i}"
        shutil.copytree(champion_dir, candidate)
        for path, text in proposal.edits.items():
            (candidate / path).write_text(text or "")
        metric = run_train(candidate)
        keep = metric < champion - 0.005 * champion
        if keep:
            keeps += 1
            champion = metric
            shutil.rmtree(champion_dir)
            candidate.rename(champion_dir)
        proposer.observe(Outcome(i, Verdict.KEEP if keep else Verdict.DISCARD, metric, proposal))
    assert keeps >= 2
    assert champion < 0.5 * baseline
