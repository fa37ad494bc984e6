"""``ratchet review``: the human review queue.

A would-be keep that touches paths a person must approve (``[review] paths``), or that fails
only guards a person may overrule (``[review] when``), is recorded as ``needs-review`` and
committed on a branch of its own; the run branch does not move and the run goes on. Here a
person lists what waits, approves (the change is measured again, against the champion of
*now*, under the run's verdict policy, and kept only if it still wins; a change that no longer
applies is ``stale``) or rejects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ratchet.config import Config
from ratchet.experiment import Experiment, Pending
from ratchet.experiment import pending_reviews as pending
from ratchet.ledger import LEDGER_FILE, Ledger
from ratchet.loop import Loop, RunError
from ratchet.proposers.base import Proposal
from ratchet.report.terminal import Display
from ratchet.state import STATE_DIR
from ratchet.workspace.git import GitError, WorkspaceError, git


class ReviewError(Exception):
    """Nothing was reviewed (one line for the user)."""


def diff_of(root: Path, item: Pending) -> str:
    try:
        return git(root, "diff", "--binary", "--full-index", "--no-renames", item.experiment.parent_commit, item.commit)
    except GitError:
        return ""


def pending_json(root: Path, item: Pending) -> dict[str, Any]:
    """A held experiment as ``ratchet review --json`` lists it: where it is held, why, its diff."""
    return {**item.experiment.to_json(), "branch": item.branch, "review_commit": item.commit, "why": item.why, "diff": diff_of(root, item)}


class Reviewer:
    """Approves or rejects the held candidates of one run."""

    def __init__(self, root: Path, config: Config, display: Display | None = None) -> None:
        self.root = root
        self.config = config
        self.run = config.run.name
        self.display = display
        self.ledger_path = root / STATE_DIR / LEDGER_FILE

    def queue(self) -> list[Pending]:
        if not self.ledger_path.exists():
            return []
        ledger = Ledger(self.ledger_path)
        try:
            return pending(ledger.experiments(self.run))
        finally:
            ledger.close()

    def _find(self, experiment_id: int) -> Pending:
        for item in self.queue():
            if item.experiment.id == experiment_id:
                return item
        waiting = ", ".join(f"#{item.experiment.id}" for item in self.queue()) or "none"
        raise ReviewError(f"experiment {experiment_id} of run {self.run!r} is not waiting for review (waiting: {waiting})")

    def approve(self, experiment_id: int) -> Experiment:
        """Measure the held change against the current champion; keep it only if it still wins."""
        item = self._find(experiment_id)
        patch = diff_of(self.root, item)
        if not patch.strip():
            raise ReviewError(f"the review branch {item.branch} is gone or empty; reject #{experiment_id} instead")
        proposal = Proposal(
            hypothesis=f"approved review of #{experiment_id}: {item.experiment.hypothesis}",
            patch=patch, again=True, review_of=experiment_id,
        )  # fmt: skip
        try:
            result = Loop(self.root, self.config, observer=self.display).try_proposal(proposal, kind="review")
        except (RunError, WorkspaceError, GitError) as exc:
            raise ReviewError(str(exc)) from None
        self._close(item, {"state": "approved", "measured_as": result.id, "result": str(result.verdict)})
        return result

    def reject(self, experiment_id: int, why: str = "") -> None:
        item = self._find(experiment_id)
        self._close(item, {"state": "rejected", "why_rejected": why})

    def _close(self, item: Pending, update: dict[str, object]) -> None:
        ledger = Ledger(self.ledger_path)
        try:
            experiment = ledger.experiment(self.run, item.experiment.id)
            assert experiment is not None
            experiment.extra["review"] = {**experiment.extra.get("review", {}), **update}
            ledger.update(experiment)
        finally:
            ledger.close()
        # The ledger holds the decision; the branch only held the change while it waited.
        git(self.root, "branch", "-D", item.branch, check=False)


__all__ = ["Pending", "ReviewError", "Reviewer", "diff_of", "pending", "pending_json"]
