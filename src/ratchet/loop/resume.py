"""Opening a run: made (with its branch) on first use; checked and repaired when resumed, so that a
kill -9 at any moment leaves a state the next ``ratchet run`` mends."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ratchet.config import Config
from ratchet.experiment import Experiment, Verdict
from ratchet.ledger import Ledger, RunInfo
from ratchet.loop.parts import Parts
from ratchet.state import RunError
from ratchet.workspace.git import GitError
from ratchet.workspace.preflight import run_blockers
from ratchet.workspace.slots import SlotWorkspace

# Settings that define what the run's numbers mean: changing them mid-run would compare apples
# with oranges, so a resumed run refuses.
FROZEN_SETTINGS = (
    "metric.command", "metric.run", "metric.score", "metric.direction", "metric.regex", "metric.json", "scope.harness",
)  # fmt: skip


def frozen_settings(config: Config) -> dict[str, Any]:
    return _frozen(config.model_dump(mode="json", by_alias=True))


def _frozen(dump: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for dotted in FROZEN_SETTINGS:
        section, key = dotted.split(".")
        out[dotted] = dump.get(section, {}).get(key)
    return out


def open_run(parts: Parts, ledger: Ledger) -> RunInfo:
    """The run's record: made (with its branch) on first use, checked when resumed."""
    ledger.record_hardware(parts.fingerprint, parts.hardware)
    info = ledger.get_run(parts.run_name)
    if info is None:
        return start_new_run(parts, ledger)
    if not any(e.verdict is Verdict.BASELINE for e in ledger.experiments(parts.run_name)):
        # The baseline never succeeded: nothing was measured that settings could contradict,
        # so the run starts again from today's HEAD and config (the fix is usually there).
        return start_new_run(parts, ledger, again=info)
    check_resumable(parts, info)
    return info


def start_new_run(parts: Parts, ledger: Ledger, again: RunInfo | None = None) -> RunInfo:
    ws, config = parts.workspace, parts.config
    if again is not None:
        for leftover in ledger.experiments(parts.run_name):  # a baseline killed mid-measurement
            set_aside_failed_baseline(parts, ledger, leftover)
        ws.remove_run(again.base_commit)
    if ws.branch_exists():
        raise RunError(
            f"branch {ws.branch} exists but the ledger has no run {parts.run_name!r}; "
            f"choose another [run] name or delete the branch (git branch -D {ws.branch})"
        )
    head = ws.user_head()
    # What `ratchet doctor` fails on without running a command stops the run here too:
    # a scope or harness glob that matches nothing would otherwise protect nothing, silently.
    for finding in run_blockers(config, parts.repo_root):
        raise RunError(f"{finding.what}: {finding.detail}; {finding.fix}")
    if not config.scope.harness and "harness" not in config.scope.model_fields_set:
        parts.observer.warning(
            "no [scope] harness: nothing checks that a candidate leaves the measurement alone "
            "(list the files the metric depends on, or write harness = [] to run without on purpose)"
        )
    for path in ws.uncommitted_in_user_checkout():
        parts.observer.warning(f"{path} has uncommitted changes; the run starts from HEAD ({head[:7]}) without them")
    # The ledger row comes first: a kill before the branch exists is repaired by resume.
    info = RunInfo(
        name=parts.run_name,
        created=time.time(),
        base_commit=head,
        branch=ws.branch,
        metric_name=config.metric.name,
        direction=config.metric.direction,
        config=config.model_dump(mode="json", by_alias=True),
    )
    if again is None:
        ledger.create_run(info)
    else:
        ledger.restart_run(info)
    ws.create_branch()
    return info


def set_aside_failed_baseline(parts: Parts, ledger: Ledger, experiment: Experiment) -> None:
    """A baseline that failed leaves no experiment row, branch or worktree behind: the attempt
    becomes a ``baseline-failed`` event (its logs moved beside), so the next ``ratchet run``
    measures experiment 0 afresh."""
    log_dir = Path(experiment.log_dir)
    if log_dir.is_dir():
        kept = log_dir.with_name(f"baseline-failed-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        log_dir.rename(kept)
        experiment.log_dir = str(kept)
    ledger.add_event(parts.run_name, "baseline-failed", experiment.to_json())
    ledger.delete(experiment)


def check_resumable(parts: Parts, info: RunInfo) -> None:
    stored, current = _frozen(info.config), frozen_settings(parts.config)
    changed = [name for name in FROZEN_SETTINGS if stored[name] != current[name]]
    if changed:
        raise RunError(
            f"{', '.join(changed)} changed since run {parts.run_name!r} started; its numbers would no longer "
            "compare. Start a new run ([run] name or --name) or restore the setting"
        )


def save_stopped_diffs(parts: Parts, ledger: Ledger) -> None:
    """An in-place candidate's diff is written when its experiment ends (a keep's commit is its
    diff): one stopped mid-measurement (a kill) has none yet. It is taken from the worktree the
    experiment was left in (its worker's, with several), before that worktree is cleaned."""
    for experiment in ledger.experiments(parts.run_name):
        if experiment.state == "done" or not experiment.log_dir:
            continue
        log_dir = Path(experiment.log_dir)
        if not log_dir.is_dir() or any((log_dir / name).exists() for name in ("proposal.diff", "proposal.patch")):
            continue
        worker = experiment.extra.get("worker")
        worktree = parts.workspace.worktree if worker is None else SlotWorkspace(
            parts.repo_root, parts.run_name, parts.scope, parts.harness, int(worker)).worktree
        try:
            diff = parts.workspace.diff_left_in(worktree, str(experiment.extra.get("built_on") or experiment.parent_commit))
        except GitError:
            continue  # nothing to tell: the worktree is cleaned as always
        if diff:
            (log_dir / "proposal.diff").write_text(diff, errors="surrogateescape")


def repair(parts: Parts, ledger: Ledger, info: RunInfo) -> None:
    """Make the ledger and the run branch agree after whatever stopped the last session."""
    ws = parts.workspace
    if not ws.branch_exists():  # killed between the ledger row and the branch
        ws.create_branch()
    kept_on_branch = ws.kept_experiments(info.base_commit)
    for experiment in ledger.experiments(parts.run_name):
        if experiment.state == "done":
            continue
        if experiment.state == "committing" and experiment.id in kept_on_branch:
            experiment.commit = kept_on_branch[experiment.id]
            experiment.state = "done"
            parts.observer.message(f"Repaired experiment {experiment.id}: its keep was committed, ledger updated.")
        else:
            experiment.verdict = Verdict.ABANDONED
            experiment.reason = (experiment.reason + "; " if experiment.reason else "") + "interrupted: ratchet stopped mid-experiment"
            experiment.commit = None
            experiment.state = "done"
            experiment.ended = experiment.ended or time.time()
            parts.observer.message(f"Experiment {experiment.id} was interrupted; recorded as abandoned.")
        ledger.update(experiment)
    ledger_keeps = {e.id: e.commit for e in ledger.experiments(parts.run_name) if e.verdict is Verdict.KEEP}
    if ledger_keeps != kept_on_branch:
        missing = sorted(set(ledger_keeps) - set(kept_on_branch))
        extra = sorted(set(kept_on_branch) - set(ledger_keeps))
        raise RunError(
            f"ledger and branch {ws.branch} disagree (kept in ledger, not on branch: {missing}; "
            f"on branch, not kept in ledger: {extra}); was the branch rewritten? Start a new run"
        )
    ws.reset_clean()
