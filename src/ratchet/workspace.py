"""Git, through its CLI: the run branch, the candidate worktree, scope checks, keep and discard.

The user's checkout, index and current branch are never written: every change happens in a
worktree under ``.ratchet/`` whose HEAD is the run branch ``ratchet/<run>``.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Sequence

from ratchet.proposers.base import Proposal
from ratchet.scope import Globs

STATE_DIR = ".ratchet"
BRANCH_PREFIX = "ratchet/"
EXPERIMENT_TRAILER = "Ratchet-Experiment"

# Every git call: no hooks (a candidate must not get code run by ratchet's own commits), no
# signing prompts, no background gc pauses between experiments.
_GIT_FLAGS = (
    "-c", "core.hooksPath=/dev/null",
    "-c", "commit.gpgsign=false",
    "-c", "gc.auto=0",
    "-c", "core.fsmonitor=false",
    "-c", "advice.detachedHead=false",
)  # fmt: skip

_FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "ratchet",
    "GIT_AUTHOR_EMAIL": "ratchet@localhost",
    "GIT_COMMITTER_NAME": "ratchet",
    "GIT_COMMITTER_EMAIL": "ratchet@localhost",
}


class GitError(Exception):
    """A git command failed; the message holds git's own words."""


class WorkspaceError(Exception):
    """The repository is not in a state a run can start from (one line for the user)."""


class ScopeViolation(Exception):
    """A proposal touched something outside the mutable scope."""


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(LC_ALL="C", GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(name, None)  # set by a calling git hook, they would redirect every command
    return env


_ENV = _git_env()


def git(cwd: Path, *args: str, check: bool = True, env: dict[str, str] | None = None) -> str:
    """Run ``git args`` in ``cwd``; return stdout; raise :class:`GitError` on failure."""
    proc = subprocess.run(
        ["git", *_GIT_FLAGS, *args],
        cwd=cwd,
        env=env or _ENV,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="surrogateescape",
    )
    if check and proc.returncode != 0:
        message = (proc.stderr or proc.stdout).strip().splitlines()
        raise GitError(f"git {' '.join(args[:2])}: {message[-1] if message else f'exit {proc.returncode}'}")
    return proc.stdout


def find_repo_root(path: Path) -> Path:
    try:
        out = git(path, "rev-parse", "--show-toplevel")
    except (GitError, FileNotFoundError, NotADirectoryError):
        raise WorkspaceError(f"{path} is not inside a git repository (run `git init` first)") from None
    return Path(out.strip())


def exclude_state_dir(repo_root: Path) -> None:
    """Keep ``.ratchet/`` out of git through ``.git/info/exclude`` (not the tracked .gitignore)."""
    exclude = Path(git(repo_root, "rev-parse", "--git-path", "info/exclude").strip())
    if not exclude.is_absolute():
        exclude = repo_root / exclude
    line = f"/{STATE_DIR}/"
    existing = exclude.read_text().splitlines() if exclude.exists() else []
    if line not in existing:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with exclude.open("a") as handle:
            if existing and existing[-1] != "":
                handle.write("\n")
            handle.write(f"{line}\n")


@dataclass(frozen=True)
class Change:
    status: str  # porcelain XY, e.g. " M", "??", " D"
    path: str


def parse_porcelain(out: str) -> list[Change]:
    """Parse ``git status --porcelain -z --no-renames``."""
    changes = []
    for entry in out.split("\0"):
        if len(entry) > 3:
            changes.append(Change(entry[:2], entry[3:]))
    return changes


def is_safe_relative(path: str) -> bool:
    """A plain repository-relative path: not absolute, no ``..``, nothing inside ``.git``."""
    if not path or path.startswith("/") or "\\" in path or "\0" in path:
        return False
    parts = PurePosixPath(path).parts
    return all(part not in ("..", ".", ".git", "") for part in parts) and parts[0] != STATE_DIR


class Workspace:
    """The run branch and its candidate worktree."""

    def __init__(self, repo_root: Path, run: str, scope: Globs, harness: Globs) -> None:
        self.repo_root = repo_root
        self.run = run
        self.scope = scope
        self.harness = harness
        self.branch = BRANCH_PREFIX + run
        self.state_dir = repo_root / STATE_DIR
        self.worktree = self.state_dir / "worktrees" / run
        self._identity_env: dict[str, str] | None = None
        self._dotgit: bytes | None = None

    # ------------------------------------------------------------ set-up

    def branch_exists(self) -> bool:
        return bool(git(self.repo_root, "rev-parse", "--verify", "--quiet", f"refs/heads/{self.branch}", check=False).strip())

    def user_head(self) -> str:
        try:
            return git(self.repo_root, "rev-parse", "--verify", "HEAD").strip()
        except GitError:
            raise WorkspaceError(f"{self.repo_root} has no commit yet; commit your project first") from None

    def create_branch(self) -> str:
        """Make ``ratchet/<run>`` at the user's HEAD (without checking it out)."""
        head = self.user_head()
        git(self.repo_root, "branch", self.branch, head)
        return head

    def open_worktree(self) -> None:
        """Create the candidate worktree, or repair a reused one to the champion, clean."""
        self.state_dir.mkdir(exist_ok=True)
        if not (self.worktree / ".git").exists():
            git(self.repo_root, "worktree", "prune")
            self.worktree.parent.mkdir(parents=True, exist_ok=True)
            try:
                git(self.repo_root, "worktree", "add", "--quiet", str(self.worktree), self.branch)
            except GitError as exc:
                raise WorkspaceError(f"cannot make the run's worktree: {exc}") from None
        else:
            self._remove_stale_locks()
            head = git(self.worktree, "symbolic-ref", "--quiet", "HEAD", check=False).strip()
            if head != f"refs/heads/{self.branch}":
                git(self.worktree, "checkout", "--quiet", "--force", self.branch)
        self.reset_clean()
        self._dotgit = (self.worktree / ".git").read_bytes()

    def _remove_stale_locks(self) -> None:
        # A kill -9 in the middle of a git command leaves its lock files behind. Only this
        # run's worktree index and branch ref are ours to unlock (the run lock guarantees no
        # other ratchet process is using them).
        gitdir = Path(git(self.worktree, "rev-parse", "--git-dir").strip())
        common = Path(git(self.worktree, "rev-parse", "--git-common-dir").strip())
        for base in (gitdir, common):
            if not base.is_absolute():
                base = (self.worktree / base).resolve()
            for lock in (base / "index.lock", base / "HEAD.lock", base / "refs" / "heads" / f"{self.branch}.lock"):
                if lock.exists() and (base == gitdir or lock.name != "index.lock"):
                    lock.unlink()

    def identity_env(self) -> dict[str, str]:
        """The user's git identity if configured, otherwise "ratchet" (a fresh machine has none)."""
        if self._identity_env is None:
            env = dict(_ENV)
            name = git(self.repo_root, "config", "user.name", check=False).strip()
            email = git(self.repo_root, "config", "user.email", check=False).strip()
            if not (name and email):
                env.update(_FALLBACK_IDENTITY)
            self._identity_env = env
        return self._identity_env

    # ------------------------------------------------------------ reading

    def champion(self) -> str:
        return git(self.worktree, "rev-parse", "HEAD").strip()

    def tracked_files(self, commit: str = "HEAD", cwd: Path | None = None) -> list[str]:
        out = git(cwd or self.worktree, "ls-tree", "-r", "-z", "--name-only", "--full-tree", commit)
        return [path for path in out.split("\0") if path]

    def scope_files(self) -> list[str]:
        return self.scope.select(self.tracked_files())

    def status(self) -> list[Change]:
        return parse_porcelain(git(self.worktree, "status", "--porcelain", "-z", "--no-renames", "-uall"))

    def diff(self, paths: Sequence[str]) -> str:
        """The candidate's change as a patch (new files included), for the ledger's log."""
        if not paths:
            return ""
        git(self.worktree, "add", "-A", "--", *paths)
        return git(self.worktree, "diff", "--cached", "--binary", "--", *paths)

    def uncommitted_in_user_checkout(self) -> list[str]:
        """Scope or harness paths with uncommitted changes in the user's checkout (read only)."""
        changes = parse_porcelain(git(self.repo_root, "--no-optional-locks", "status", "--porcelain", "-z", "--no-renames", "-uno"))
        return [c.path for c in changes if self.scope.matches(c.path) or self.harness.matches(c.path)]

    # ------------------------------------------------------------ the candidate

    def materialize(self, proposal: Proposal, patch_file: Path, champion: str) -> list[str]:
        """Apply the proposal to the clean champion worktree; return the changed paths.

        Raises :class:`ScopeViolation` when anything outside the scope changed. Edits are
        checked before they are written; every kind of proposal is checked again from git's
        view of the worktree after it is applied.
        """
        if proposal.edits:
            self._write_edits(proposal.edits)
        elif proposal.patch is not None:
            patch_file.write_text(proposal.patch, errors="surrogateescape")
            try:
                git(self.worktree, "apply", "--whitespace=nowarn", str(patch_file))
            except GitError as exc:
                raise ScopeViolation(f"the patch does not apply: {exc}") from None
        else:
            self._adopt_proposer_commits()
            self.adopt_commits_since(champion)
        return self.check_scope()

    def _write_edits(self, edits: dict[str, str | None] | object) -> None:
        root = os.path.realpath(self.worktree)
        assert isinstance(edits, dict) or hasattr(edits, "items")
        for path in edits:  # type: ignore[union-attr]
            self._check_path(path)
            parent = os.path.realpath(self.worktree / PurePosixPath(path).parent)
            if parent != root and not parent.startswith(root + os.sep):
                raise ScopeViolation(f"{path}: a directory on its way is a symlink that leads out of the worktree")
        for path, text in edits.items():  # type: ignore[union-attr]
            target = self.worktree / path
            if target.is_symlink() or (text is None and target.exists()):
                target.unlink()
            if text is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8", errors="surrogateescape")

    def _check_path(self, path: str) -> None:
        if not is_safe_relative(path):
            raise ScopeViolation(f"{path!r} is not a plain path inside the repository")
        if not self.scope.matches(path):
            raise ScopeViolation(f"{path} is outside the mutable scope")
        if self.harness.matches(path):
            raise ScopeViolation(f"{path} is a harness file")

    def _adopt_proposer_commits(self) -> None:
        # Some agents commit (aider does by default) or even switch branches. Commits on top
        # of the champion become part of the proposal; anything else is refused.
        head = git(self.worktree, "symbolic-ref", "--quiet", "HEAD", check=False).strip()
        if head != f"refs/heads/{self.branch}":
            raise ScopeViolation(f"the proposer moved the worktree off {self.branch}")
        if (self.worktree / ".git").read_bytes() != self._dotgit:
            raise ScopeViolation("the proposer changed the worktree's .git file")

    def adopt_commits_since(self, champion: str) -> None:
        tip = self.champion()
        if tip != champion:
            base = git(self.worktree, "merge-base", champion, tip, check=False).strip()
            if base != champion:
                raise ScopeViolation("the proposer rewrote the run branch's history")
            git(self.worktree, "reset", "--quiet", "--soft", champion)

    def check_scope(self) -> list[str]:
        changed = []
        root = os.path.realpath(self.worktree)
        for change in self.status():
            path = change.path
            self._check_path(path)
            full = self.worktree / path
            if full.is_symlink():
                target = os.path.realpath(full)
                relative = os.path.relpath(target, root)
                if relative.startswith("..") or not self.scope.matches(relative.replace(os.sep, "/")):
                    raise ScopeViolation(f"{path} is a symlink to {os.readlink(full)}, outside the mutable scope")
            changed.append(path)
        if not changed:
            raise ScopeViolation("the proposal changes nothing")
        return changed

    def tampered_harness(self) -> list[str]:
        """Harness paths that differ from the champion after a measurement (new files included)."""
        if not self.harness:
            return []
        tampered = [c.path for c in self.status() if self.harness.matches(c.path)]
        if (self.worktree / ".git").read_bytes() != self._dotgit:
            tampered.append(".git")
        return tampered

    def keep(self, paths: Sequence[str], message: str) -> str:
        """Commit the proposal's paths on the run branch; return the new champion."""
        git(self.worktree, "add", "-A", "--", *paths)
        git(self.worktree, "commit", "--quiet", "--no-verify", "-m", message, env=self.identity_env())
        sha = self.champion()
        self.reset_clean()  # drop what the measurement left behind
        return sha

    def discard(self) -> None:
        self.reset_clean()

    def reset_clean(self) -> None:
        git(self.worktree, "reset", "--quiet", "--hard")
        git(self.worktree, "clean", "-ffdxq")

    # ------------------------------------------------------------ recovery

    def kept_experiments(self, base: str) -> dict[int, str]:
        """Experiment id -> commit, for the run-branch commits that carry ratchet's trailer."""
        out = git(
            self.repo_root,
            "log",
            "--format=%H%x00%(trailers:key=" + EXPERIMENT_TRAILER + ",valueonly,separator=%x2C)%x00",
            f"{base}..{self.branch}",
        )
        kept: dict[int, str] = {}
        fields = out.split("\0")
        for sha, trailer in zip(fields[0::2], fields[1::2]):
            value = trailer.strip()
            if value.isdigit():
                kept[int(value)] = sha.strip()
        return kept

    def reset_branch(self, commit: str) -> None:
        git(self.worktree, "reset", "--quiet", "--hard", commit)
