"""A worker's own worktree, for runs with several experiments in flight (``[run] workers``).

Each worker slot measures its candidates in a detached worktree of its own
(``.ratchet/worktrees/<run>.w<k>``), moved to the champion before each proposal. A keep commits
there and then moves the run branch with a compare-and-set (``git update-ref <new> <old>``):
the branch only ever moves from the champion the candidate was measured against, so a keep
decided against a champion that has since moved cannot land (the scheduler re-applies such a
candidate onto the new champion and measures it again first).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ratchet.workspace.git import GitError, WorkspaceError, git
from ratchet.workspace.gitguard import GitGuard, worktree_gitdir
from ratchet.workspace.scope import Globs
from ratchet.workspace.worktree import Candidate, Leftovers, ScopeViolation, Workspace


class SlotWorkspace(Workspace):
    """Worker slot ``index`` of a run: the run's scope and harness, a detached worktree of its own."""

    def __init__(self, repo_root: Path, run: str, scope: Globs, harness: Globs, index: int) -> None:
        super().__init__(repo_root, run, scope, harness)
        self.index = index
        self.worktree = self.state_dir / "worktrees" / f"{run}.w{index}"

    def open_worktree(self) -> None:
        raise TypeError("a worker slot opens at a champion: open_at(champion)")

    def open_at(self, champion: str) -> None:
        """Create the slot's worktree at ``champion`` (detached), or repair a reused one to it, clean."""
        self.state_dir.mkdir(exist_ok=True)
        if not (self.worktree / ".git").exists():
            git(self.repo_root, "worktree", "prune")
            shutil.rmtree(self.worktree, ignore_errors=True)  # half-made by a kill: made again
            self.worktree.parent.mkdir(parents=True, exist_ok=True)
            try:
                git(self.repo_root, "worktree", "add", "--quiet", "--detach", str(self.worktree), champion)
            except GitError as exc:
                raise WorkspaceError(f"cannot make worker {self.index}'s worktree: {exc}") from None
        else:
            self._remove_stale_locks()
            git(self.worktree, "checkout", "--quiet", "--force", "--detach", champion)
            self.reset_clean()
        self._dotgit = (self.worktree / ".git").read_bytes()
        self._git_guard = GitGuard(self._common_dir(), worktree_gitdir(self._dotgit, self.worktree), self.state_dir / "quarantine")

    def move_to(self, champion: str) -> None:
        """The clean worktree to ``champion`` (after another worker's keep moved it): one git process,
        none when it is there already."""
        if self.champion() != champion:
            git(self.worktree, "checkout", "--quiet", "--force", "--detach", champion)

    def _adopt_proposer_commits(self) -> None:
        # The slot's HEAD is detached at the champion; a proposer's commits move it (adopted by
        # adopt_commits_since), a branch switch is refused.
        if (self.worktree / ".git").read_bytes() != self._dotgit:
            raise ScopeViolation("the proposer changed the worktree's .git file")
        found = self._head()
        detached = found[0] == "commit" if found is not None else not git(self.worktree, "symbolic-ref", "--quiet", "HEAD", check=False).strip()
        if not detached:
            raise ScopeViolation(f"the proposer switched worker {self.index}'s worktree onto a branch")

    def keep(self, candidate: Candidate, message: str, leftovers: Leftovers | None = None) -> str:
        """Commit the candidate on the slot's HEAD, then move the run branch to it from the
        champion it was built on; raises :class:`WorkspaceError` if the branch had moved."""
        built_on = self.champion()
        sha = super().keep(candidate, message, leftovers)
        try:
            git(self.repo_root, "update-ref", "-m", f"ratchet: keep from worker {self.index}", f"refs/heads/{self.branch}", sha, built_on)
        except GitError as exc:
            git(self.worktree, "checkout", "--quiet", "--force", "--detach", built_on)
            raise WorkspaceError(f"the run branch moved under worker {self.index}'s keep: {exc}") from None
        return sha

    def _branch_tip(self) -> str:
        return self.champion()  # the detached HEAD, just committed (read from its file)

    def remove(self) -> None:
        """Remove the slot's worktree (its champion checkout is the measurement's)."""
        git(self.repo_root, "worktree", "remove", "--force", "--force", str(self.worktree), check=False)
        shutil.rmtree(self.worktree, ignore_errors=True)
