"""Git, through its CLI: the run branch, the candidate worktree, scope checks, keep and discard.

The user's checkout, index and current branch are never written: every change happens in a
worktree under ``.ratchet/`` whose HEAD is the run branch ``ratchet/<run>``.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import shutil
import stat
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Mapping

from ratchet.state import STATE_DIR
from ratchet.workspace.git import (
    BRANCH_PREFIX as BRANCH_PREFIX,  # defined beside run_champion; importable here as before
)
from ratchet.workspace.git import (
    GIT_ENV,
    Change,
    GitError,
    WorkspaceError,
    branch_tip,
    git,
    git_bytes,
    parse_porcelain,
    read_head,
    read_ref,
)
from ratchet.workspace.gitguard import GitGuard, restore_dotgit, worktree_gitdir
from ratchet.workspace.scope import Globs

if TYPE_CHECKING:  # a proposal is only read here: the proposers sit above the workspace
    from ratchet.proposers.base import Proposal

EXPERIMENT_TRAILER = "Ratchet-Experiment"

_FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "ratchet",
    "GIT_AUTHOR_EMAIL": "ratchet@localhost",
    "GIT_COMMITTER_NAME": "ratchet",
    "GIT_COMMITTER_EMAIL": "ratchet@localhost",
}


class ScopeViolation(Exception):
    """A proposal touched something outside the mutable scope."""


class GitTampered(ScopeViolation):
    """The proposer changed the repository's git hooks or config (put back before anything ran)."""


@dataclass(frozen=True)
class Original:
    """A path as the champion has it: a regular file's bytes (``mode``: its git mode, None when
    the file's mode was not touched) or a symlink's target."""

    data: bytes
    mode: int | None = None
    link: bool = False


@dataclass(frozen=True)
class Candidate:
    """The proposal as applied to the worktree."""

    paths: tuple[str, ...]  # every path the proposal changes
    new_paths: frozenset[str]  # those that did not exist at the champion
    # A unified diff; None for in-place changes until :meth:`Workspace.describe` (a keep needs
    # none: its commit is its diff).
    diff: str | None
    # The champion's side of each path (None for new files), when known: a discard puts them
    # back without a git process.
    originals: Mapping[str, Original | None] | None = None
    # The index holds the candidate (a patch that adds files is applied with --index): a keep
    # commits the index as it is, without a `git add` (no git command commits untracked files).
    staged: bool = False


@dataclass(frozen=True)
class Leftovers:
    """What a measurement left in the worktree besides the candidate (from one ``git status``)."""

    changed: tuple[Change, ...]
    # The repository's git hooks and config that changed (already put back; see gitguard.py).
    git_tampered: tuple[str, ...] = ()

    def tampered(self, harness: Globs) -> list[str]:
        # Ignored files ("!!", e.g. bench/__pycache__) are build products, not harness edits.
        return [c.path for c in self.changed if c.status != "!!" and harness.matches(c.path)] + list(self.git_tampered)

    def needs_reset(self, candidate: Candidate | None) -> bool:
        kept = set(candidate.paths) if candidate else set()
        return any(c.status not in ("??", "!!") and c.path not in kept for c in self.changed)

    def needs_clean(self, candidate: Candidate | None) -> bool:
        kept = candidate.new_paths if candidate else frozenset()
        return any(c.status in ("??", "!!") and c.path not in kept for c in self.changed)


def _unified_diff(path: str, old: str | None, new: str | None, old_mode: int = 0o100644, new_mode: int = 0o100644) -> str:
    header = f"diff --git a/{path} b/{path}\n"
    if old is None:
        header += f"new file mode {new_mode:o}\n"
    elif new is None:
        header += f"deleted file mode {old_mode:o}\n"
    elif old_mode != new_mode:
        header += f"old mode {old_mode:o}\nnew mode {new_mode:o}\n"
    lines = difflib.unified_diff(
        (old or "").splitlines(keepends=True),
        (new or "").splitlines(keepends=True),
        fromfile=f"a/{path}" if old is not None else "/dev/null",
        tofile=f"b/{path}" if new is not None else "/dev/null",
    )
    return header + "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def _text(original: Original | None) -> str | None:
    """A file's bytes as text for a unified diff; None for binary (a NUL byte, or not UTF-8)."""
    if original is None or b"\0" in original.data[:8000]:
        return None
    try:
        return original.data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _tree_mode(tree: bytes, name: bytes, width: int) -> int | None:
    """The git mode of entry ``name`` in a raw tree object (``<mode> <name>\\0<id>`` each)."""
    at = 0
    while at < len(tree):
        space = tree.index(b" ", at)
        nul = tree.index(b"\0", space)
        if tree[space + 1 : nul] == name:
            return int(tree[at:space], 8)
        at = nul + 1 + width
    return None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _patch_paths(patch: str) -> list[str]:
    """The paths a patch names in its headers (``--- a/x``, ``+++ b/x``, ``rename to x``), as
    ``git apply -p1`` reads them; quoted or odd names are left out (git's --numstat then says)."""
    paths: list[str] = []
    for line in patch.splitlines():
        if line.startswith(("--- ", "+++ ")):
            name = line[4:].split("\t")[0].strip()
            if name != "/dev/null" and "/" in name and not name.startswith('"'):
                paths.append(name.split("/", 1)[1])
        elif line.startswith(("rename from ", "rename to ", "copy from ", "copy to ")):
            name = line.split(" ", 2)[2].strip()
            if not name.startswith('"'):
                paths.append(name)
    return list(dict.fromkeys(paths))


def _numstat_paths(out: str) -> list[str] | None:
    """The paths of ``git apply --numstat -z``: ``added\\tdeleted\\tpath\\0``, or for a rename
    ``added\\tdeleted\\t\\0old\\0new\\0``; None when it reads otherwise."""
    paths: list[str] = []
    fields = out.split("\0")
    at = 0
    while at < len(fields) and fields[at]:
        parts = fields[at].split("\t", 2)
        if len(parts) != 3:
            return None
        if parts[2]:
            paths.append(parts[2])
            at += 1
        else:
            if at + 2 >= len(fields):
                return None
            paths += [fields[at + 1], fields[at + 2]]
            at += 3
    return list(dict.fromkeys(paths))


def _remove_empty_parents(folder: Path, stop: Path) -> None:
    while folder != stop and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


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
        self._common: Path | None = None
        self._git_guard: GitGuard | None = None

    # ------------------------------------------------------------ set-up

    def branch_exists(self) -> bool:
        return bool(branch_tip(self.repo_root, self.run))

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

    def remove_run(self, base_commit: str) -> None:
        """Remove the candidate worktree and the run branch of a run that never measured its
        baseline (nothing was kept: the branch is still at ``base_commit``)."""
        if self.worktree.exists():
            # Twice --force: a worktree left locked or half-made by a kill is removed too.
            git(self.repo_root, "worktree", "remove", "--force", "--force", str(self.worktree), check=False)
            shutil.rmtree(self.worktree, ignore_errors=True)
        git(self.repo_root, "worktree", "prune", check=False)
        tip = branch_tip(self.repo_root, self.run)
        if tip and tip == base_commit:
            git(self.repo_root, "branch", "-D", self.branch)

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
        self._git_guard = GitGuard(self._common_dir(), worktree_gitdir(self._dotgit, self.worktree), self.state_dir / "quarantine")

    def check_git(self) -> list[str]:
        """The repository's git files that changed since the run opened, put back (see gitguard)."""
        changed = []
        if self._dotgit is not None and restore_dotgit(self.worktree, self._dotgit):
            changed.append(".git (the worktree's .git file)")
        if self._git_guard is not None:
            changed += self._git_guard.check()
        return changed

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
            env = dict(GIT_ENV)
            # One git process for both (exit 1 when neither is set).
            found = git(self.repo_root, "config", "--get-regexp", r"^user\.(name|email)$", check=False)
            keys = {line.split(" ", 1)[0]: line.partition(" ")[2].strip() for line in found.splitlines()}
            name, email = keys.get("user.name", ""), keys.get("user.email", "")
            if not (name and email):
                env.update(_FALLBACK_IDENTITY)
            self._identity_env = env
        return self._identity_env

    # ------------------------------------------------------------ reading

    def champion(self) -> str:
        """The worktree's HEAD commit: from the ref files (no process), else from git."""
        head = self._head()
        if head is not None:
            kind, value = head
            sha = value if kind == "commit" else read_ref(self._common_dir(), value)
            if sha:
                return sha
        return git(self.worktree, "rev-parse", "HEAD").strip()

    def _head(self) -> tuple[str, str] | None:
        """The worktree's HEAD as its gitdir's HEAD file says; None when unsure."""
        try:
            dotgit = (self.worktree / ".git").read_bytes()
        except IsADirectoryError:
            return read_head(self.worktree / ".git")
        except OSError:
            return None
        gitdir = worktree_gitdir(dotgit, self.worktree)
        return read_head(gitdir) if gitdir is not None else None

    def tracked_files(self, commit: str = "HEAD", cwd: Path | None = None) -> list[str]:
        out = git(cwd or self.worktree, "ls-tree", "-r", "-z", "--name-only", "--full-tree", commit)
        return [path for path in out.split("\0") if path]

    def scope_files(self) -> list[str]:
        return self.scope.select(self.tracked_files())

    def status(self) -> list[Change]:
        return parse_porcelain(git(self.worktree, "status", "--porcelain", "-z", "--no-renames", "-uall"))

    def uncommitted_in_user_checkout(self) -> list[str]:
        """Scope or harness paths with uncommitted changes in the user's checkout (read only)."""
        changes = parse_porcelain(git(self.repo_root, "--no-optional-locks", "status", "--porcelain", "-z", "--no-renames", "-uno"))
        return [c.path for c in changes if self.scope.matches(c.path) or self.harness.matches(c.path)]

    # ------------------------------------------------------------ the candidate

    def materialize(self, proposal: Proposal, patch_file: Path, champion: str) -> Candidate:
        """Apply the proposal to the clean champion worktree.

        Raises :class:`ScopeViolation` when anything outside the scope would change. Edits are
        checked path by path before anything is written (so nothing outside the scope is ever
        written); patches and in-place changes are checked from git's view of the worktree.
        """
        # Before any git command: a proposer's hook or config must never run inside ratchet's git.
        if changed := self.check_git():
            raise GitTampered(f"the proposer changed the repository's git files: {', '.join(changed)} (put back)")
        if proposal.edits:
            return self._write_edits(proposal.edits)
        if proposal.patch is not None:
            return self._apply_patch(proposal.patch, patch_file)
        self._adopt_proposer_commits()
        self.adopt_commits_since(champion)
        changes = parse_porcelain(git(self.worktree, "status", "--porcelain", "-z", "--no-renames", "-uall", "--ignored=matching"))
        # What the program left in files git ignores is neither checked nor ever committed, yet
        # it would be measured: a sourceless `pathlib.pyc` at the root shadows the standard
        # library for the harness's own scripts. Only the candidate's visible changes are measured
        # (removed here, from the same git status: `git clean -X` would cost a process).
        self._remove([c.path for c in changes if c.status == "!!"])
        # The diff waits for the verdict: a keep's commit is its diff; a discard asks git once (describe).
        return self._scoped([c for c in changes if c.status != "!!"], diff=None)

    def _apply_patch(self, patch: str, patch_file: Path) -> Candidate:
        """``git apply``, which also names every path it changed (git's own view, --numstat);
        the champion's side of the paths the patch names is read first, for a discard without git."""
        patch_file.write_text(patch, errors="surrogateescape")
        before = self._snapshot(_patch_paths(patch))
        # A patch that adds files goes into the index as well: its keep is then one `git commit`
        # (its discard a `git reset --hard`, as git's own view of the change it is).
        staged = any(old is None for old in before.values())
        try:
            out = git_bytes(self.worktree, "apply", "--whitespace=nowarn", "--numstat", "-z", "--apply",
                            *(["--index"] if staged else []), str(patch_file))
        except GitError as exc:
            raise ScopeViolation(f"the patch does not apply: {exc}") from None
        paths = _numstat_paths(out.decode(errors="surrogateescape"))
        if paths is None or not set(paths) <= set(before):
            if staged:
                git(self.worktree, "reset", "--quiet")  # git status must see the patch as worktree changes
            return self.check_scope(diff=patch)  # a path the patch's headers did not name plainly: ask git status
        if not paths:
            raise ScopeViolation("the proposal changes nothing")
        status = ("A " if staged else "??", "M " if staged else " M")
        changes = [Change(status[0] if before[path] is None else status[1], path) for path in paths]
        candidate = self._scoped(changes, diff=patch)
        if staged:
            return replace(candidate, staged=True)  # a discard resets (the index holds the patch)
        return replace(candidate, originals={path: before[path] for path in paths})

    def _snapshot(self, paths: list[str]) -> dict[str, Original | None]:
        """The clean champion worktree's side of ``paths`` (None: absent); paths it cannot say are left out."""
        out: dict[str, Original | None] = {}
        for path in paths:
            if not is_safe_relative(path):
                continue
            full = self.worktree / path
            try:
                info = os.lstat(full)
            except FileNotFoundError:
                out[path] = None
                continue
            except OSError:
                continue
            if stat.S_ISLNK(info.st_mode):
                out[path] = Original(os.fsencode(os.readlink(full)), link=True)
            elif stat.S_ISREG(info.st_mode):
                out[path] = Original(full.read_bytes(), 0o100755 if info.st_mode & stat.S_IXUSR else 0o100644)
        return out

    def _write_edits(self, edits: Mapping[str, str | None]) -> Candidate:
        root = os.path.realpath(self.worktree)
        changes: list[tuple[str, str | None, str | None]] = []
        symlinks = False
        for path, text in edits.items():
            self._check_path(path)
            parent = os.path.realpath(self.worktree / PurePosixPath(path).parent)
            if parent != root and not parent.startswith(root + os.sep):
                raise ScopeViolation(f"{path}: a directory on its way is a symlink that leads out of the worktree")
            target = self.worktree / path
            if target.is_symlink():
                symlinks = True
                old: str | None = f"(symlink to {os.readlink(target)})"
            elif target.is_file():
                old = target.read_text(encoding="utf-8", errors="surrogateescape")
            elif target.exists():
                raise ScopeViolation(f"{path} is a directory")
            else:
                old = None
            if old != text:
                changes.append((path, old, text))
        if not changes:
            raise ScopeViolation("the proposal changes nothing")
        for path, old, text in changes:
            target = self.worktree / path
            if target.is_symlink() or (text is None and old is not None):
                target.unlink()
            if text is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8", errors="surrogateescape")
        restorable = not symlinks and all(new is not None for _, _, new in changes)
        originals = {path: None if old is None else Original(old.encode("utf-8", "surrogateescape")) for path, old, _ in changes}
        return Candidate(
            paths=tuple(path for path, _, _ in changes),
            new_paths=frozenset(path for path, old, _ in changes if old is None),
            diff="".join(_unified_diff(path, old, new) for path, old, new in changes),
            originals=originals if restorable else None,
        )

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
        if (self.worktree / ".git").read_bytes() != self._dotgit:
            raise ScopeViolation("the proposer changed the worktree's .git file")
        found = self._head()
        if found is not None:
            head = found[1] if found[0] == "ref" else ""
        else:
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

    def check_scope(self, diff: str | None) -> Candidate:
        """The worktree's changes (from git status) as a candidate inside the scope; with ``diff``
        None, git makes the diff."""
        candidate = self._scoped(self.status(), diff)
        if diff is None:
            changed = candidate.paths
            git(self.worktree, "add", "-A", "--", *changed)
            diff = git(self.worktree, "diff", "--cached", "--binary", "--no-ext-diff", "--no-textconv", "--", *changed)
            candidate = replace(candidate, diff=diff)
        return candidate

    def _scoped(self, changes: list[Change], diff: str | None) -> Candidate:
        """Raise :class:`ScopeViolation` unless every changed path is a plain path inside the scope
        (symlinks included: where they lead)."""
        changed, new = [], set()
        root = os.path.realpath(self.worktree)
        for change in changes:
            path = change.path
            self._check_path(path)
            full = self.worktree / path
            if full.is_symlink():
                target = os.path.realpath(full)
                relative = os.path.relpath(target, root)
                if relative.startswith("..") or not self.scope.matches(relative.replace(os.sep, "/")):
                    raise ScopeViolation(f"{path} is a symlink to {os.readlink(full)}, outside the mutable scope")
            changed.append(path)
            if change.status in ("??", "A ", "AM"):
                new.add(path)
        if not changed:
            raise ScopeViolation("the proposal changes nothing")
        return Candidate(paths=tuple(changed), new_paths=frozenset(new), diff=diff)

    def change_id(self, candidate: Candidate) -> str:
        """What the candidate makes of its paths, as one hash: the same for the same change
        on the same champion however it was proposed (a patch, edits, an agent's in-place
        work), whatever the diff's context lines or index headers say."""
        digest = hashlib.sha256()
        for path in sorted(candidate.paths):
            full = self.worktree / path
            if full.is_symlink():
                state = b"link:" + os.fsencode(os.readlink(full))
            elif full.is_file():
                executable = b"x" if os.access(full, os.X_OK) else b"-"
                state = b"file" + executable + b":" + hashlib.sha256(full.read_bytes()).digest()
            else:
                state = b"gone"
            digest.update(path.encode(errors="surrogateescape") + b"\0" + state + b"\0")
        return digest.hexdigest()[:32]

    def leftovers(self) -> Leftovers:
        """One look at the worktree after a measurement: harness edits, and what to clean up."""
        git_changed = self.check_git()  # first: git status must not run a candidate's config
        out = git(self.worktree, "status", "--porcelain", "-z", "--no-renames", "-uall", "--ignored=matching")
        return Leftovers(tuple(parse_porcelain(out)), tuple(git_changed))

    def tampered_harness(self) -> list[str]:
        """Harness paths that differ from the champion (new files included)."""
        return self.leftovers().tampered(self.harness) if self.harness else []

    def keep(self, candidate: Candidate, message: str, leftovers: Leftovers | None = None) -> str:
        """Commit the candidate's paths on the run branch; return the new champion."""
        env = self.identity_env()
        if candidate.staged:
            git(self.worktree, "commit", "--quiet", "--no-verify", "-m", message, env=env)
        elif candidate.new_paths:
            git(self.worktree, "add", "-A", "--", *candidate.paths)
            git(self.worktree, "commit", "--quiet", "--no-verify", "-m", message, env=env)
        elif leftovers is not None and not leftovers.needs_reset(candidate):
            # git saw no tracked change but the candidate's: `commit -a` commits exactly those.
            git(self.worktree, "commit", "--quiet", "--no-verify", "-a", "-m", message, env=env)
        else:
            # Only tracked files changed: one `git commit --only` stages and commits them.
            git(self.worktree, "commit", "--quiet", "--no-verify", "--only", "-m", message, "--", *candidate.paths, env=env)
        sha = self._branch_tip()
        self.cleanup(leftovers, candidate)  # drop what the measurement left behind
        return sha

    def hold(self, candidate: Candidate, message: str, branch: str, champion: str) -> str:
        """Commit the candidate on ``branch`` (on top of ``champion``) without moving the run
        branch: a would-be keep waiting for a person's review. Returns the commit; the
        worktree is left as it was (the caller discards the candidate)."""
        env = {**self.identity_env(), "GIT_INDEX_FILE": str(self.state_dir / f"review-{self.worktree.name}.index")}
        try:
            git(self.worktree, "read-tree", champion, env=env)
            git(self.worktree, "add", "-A", "--", *candidate.paths, env=env)
            tree = git(self.worktree, "write-tree", env=env).strip()
        finally:
            Path(env["GIT_INDEX_FILE"]).unlink(missing_ok=True)
        commit = git(self.worktree, "commit-tree", tree, "-p", champion, "-m", message, env=env).strip()
        git(self.repo_root, "update-ref", f"refs/heads/{branch}", commit)
        return commit

    def _branch_tip(self) -> str:
        # A commit always leaves a loose ref; reading it saves a git process per keep.
        ref = self._common_dir() / "refs" / "heads" / self.branch
        try:
            sha = ref.read_text().strip()
            if len(sha) in (40, 64):
                return sha
        except OSError:
            pass
        return self.champion()

    def _common_dir(self) -> Path:
        if self._common is None:
            common = Path(git(self.worktree, "rev-parse", "--git-common-dir").strip())
            self._common = common if common.is_absolute() else (self.worktree / common).resolve()
        return self._common

    def discard(self, leftovers: Leftovers | None = None, candidate: Candidate | None = None) -> None:
        if leftovers is not None and candidate is not None and self._restore(leftovers, candidate):
            return
        self.cleanup(leftovers, None)

    def describe(self, candidate: Candidate) -> Candidate:
        """The candidate with its diff and the champion's side of its paths (one ``git cat-file``),
        for an in-place candidate that will not be kept. Where the diff needs git's own format (a
        binary file, a symlink, a submodule), git makes it, and a discard then resets."""
        if candidate.diff is not None:
            return candidate
        champion = self.champion()
        originals = self._champion_side(champion, candidate.paths)
        parts: list[str] = []
        for path in candidate.paths if originals is not None else ():
            old = originals[path] if originals is not None else None
            new = self._snapshot([path]).get(path, "unreadable")
            if isinstance(new, str) or (old is not None and (old.link or old.mode not in (0o100644, 0o100755))):
                originals = None
                break
            if new is not None and new.link:
                originals = None
                break
            old_text, new_text = _text(old), _text(new)
            if (old is not None and old_text is None) or (new is not None and new_text is None):
                originals = None  # binary: git's diff
                break
            parts.append(_unified_diff(path, old_text, new_text, old.mode or 0o100644 if old else 0o100644,
                                       new.mode or 0o100644 if new else 0o100644))
        if originals is None:
            changed = candidate.paths
            git(self.worktree, "add", "-A", "--", *changed)
            diff = git(self.worktree, "diff", "--cached", "--binary", "--no-ext-diff", "--no-textconv", "--", *changed)
            return replace(candidate, diff=diff, originals=None)
        return replace(candidate, diff="".join(parts), originals=originals)

    def _champion_side(self, champion: str, paths: tuple[str, ...]) -> dict[str, Original | None] | None:
        """Each path's blob and git mode at ``champion`` (None: not there), from one ``cat-file --batch``
        asking for the blobs and their folders' trees; None when git's answer is not plain."""
        if any("\n" in path for path in paths):
            return None
        folders = sorted({os.path.dirname(path) for path in paths})
        requests = [f"{champion}:{path}" for path in paths] + [f"{champion}:{folder}" if folder else f"{champion}^{{tree}}" for folder in folders]
        out = git_bytes(self.worktree, "cat-file", "--batch", input=("\n".join(requests) + "\n").encode(errors="surrogateescape"))
        answers: list[bytes | None] = []
        at = 0
        for _ in requests:
            line_end = out.index(b"\n", at)
            header = out[at:line_end].split()
            at = line_end + 1
            if header[-1] == b"missing" or len(header) != 3:
                answers.append(None)
                continue
            size = int(header[2])
            answers.append(out[at : at + size])
            at += size + 1
        blobs, trees = answers[: len(paths)], dict(zip(folders, answers[len(paths) :]))
        width = len(champion) // 2  # the tree's binary object ids: 20 bytes (sha1) or 32 (sha256)
        result: dict[str, Original | None] = {}
        for path, blob in zip(paths, blobs):
            tree = trees.get(os.path.dirname(path))
            if blob is None:
                result[path] = None
                continue
            mode = _tree_mode(tree, os.path.basename(path).encode(errors="surrogateescape"), width) if tree is not None else None
            if mode is None:
                return None
            result[path] = Original(blob, mode, link=mode == 0o120000)
        return result

    def _restore(self, leftovers: Leftovers, candidate: Candidate) -> bool:
        """Put the candidate's paths back from their originals and remove what the measurement
        left untracked, in Python, when git saw nothing else change (saves a `git reset` and a `git clean`)."""
        originals = candidate.originals
        if originals is None or any(original is not None and original.link for original in originals.values()):
            return False
        stray: list[str] = []
        for change in leftovers.changed:
            original = originals.get(change.path, "absent")
            if original == "absent":
                if change.status not in ("??", "!!"):
                    return False  # a tracked file outside the candidate changed: git puts it back
                stray.append(change.path)
            elif change.status not in ("??" if original is None else (" M", " D")):
                return False
        for path, old in originals.items():
            target = self.worktree / path
            if not self._inside(target.parent):
                return False
            if old is None:
                self._remove([path])
                continue
            if os.path.lexists(target) and (target.is_symlink() or target.is_dir()):
                self._remove([path])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(old.data)
            if old.mode is not None:
                executable = old.mode == 0o100755
                current = os.stat(target).st_mode
                if bool(current & stat.S_IXUSR) != executable:
                    umask = _umask()
                    os.chmod(target, (current | (0o111 & ~umask)) if executable else (current & ~0o111))
        self._remove(stray)
        return True

    def cleanup(self, leftovers: Leftovers | None, kept: Candidate | None) -> None:
        """Back to the champion, clean. With ``leftovers`` known, skip the git calls that would do
        nothing, and remove untracked leftovers in Python."""
        if leftovers is None or leftovers.needs_reset(kept):
            git(self.worktree, "reset", "--quiet", "--hard")
        if leftovers is None:
            git(self.worktree, "clean", "-ffdxq")
        elif leftovers.needs_clean(kept):
            new = kept.new_paths if kept else frozenset()
            self._remove([c.path for c in leftovers.changed if c.status in ("??", "!!") and c.path not in new])

    def _inside(self, folder: Path) -> bool:
        root = os.path.realpath(self.worktree)
        real = os.path.realpath(folder)
        return real == root or real.startswith(root + os.sep)

    def _remove(self, paths: list[str]) -> None:
        """Remove untracked or ignored paths git listed (a folder with all it holds; a symlink, not
        what it leads to), then the folders they leave empty: what `git clean -ffdx` does for them."""
        for path in paths:
            path = path.rstrip("/")
            target = self.worktree / path
            if not is_safe_relative(path) or not self._inside(target.parent):
                continue
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target, ignore_errors=True)
            else:
                try:
                    target.unlink()
                except FileNotFoundError:
                    pass
            _remove_empty_parents(target.parent, self.worktree)

    def drop_leftovers(self, candidate: Candidate) -> None:
        """Remove what a measurement left in the worktree, keeping the candidate's own changes
        (before a proposer mends the candidate in place)."""
        kept = set(candidate.paths)
        stray = [c.path for c in self.status() if c.status not in ("??", "!!") and c.path not in kept]
        if stray:
            git(self.worktree, "checkout", "--quiet", "HEAD", "--", *stray)
        excludes = [arg for path in candidate.new_paths for arg in ("-e", "/" + path)]
        git(self.worktree, "clean", "-ffdxq", *excludes)

    def diff_left_in(self, worktree: Path, commit: str) -> str:
        """The scope's changes a stopped run left in ``worktree`` (at ``commit``): the diff of an
        in-place candidate whose experiment never ended; "" when there are none (or it moved on)."""
        if not (worktree / ".git").is_file():
            return ""
        head = git(worktree, "rev-parse", "--verify", "--quiet", "HEAD", check=False).strip()
        if head != commit:
            return ""
        changes = parse_porcelain(git(worktree, "status", "--porcelain", "-z", "--no-renames", "-uall"))
        paths = [c.path for c in changes if self.scope.matches(c.path) and not self.harness.matches(c.path)]
        if not paths:
            return ""
        # A throwaway index: the worktree's own is left for the clean-up that follows.
        env = {**GIT_ENV, "GIT_INDEX_FILE": str(self.state_dir / f"stopped-{worktree.name}.index")}
        try:
            git(worktree, "read-tree", commit, env=env)
            git(worktree, "add", "-A", "--", *paths, env=env)
            return git(worktree, "diff", "--cached", "--binary", "--no-ext-diff", "--no-textconv", commit, "--", *paths, env=env)
        finally:
            Path(env["GIT_INDEX_FILE"]).unlink(missing_ok=True)

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


def reference_checkout(repo_root: Path, folder: Path, commit: str) -> Path:
    """A detached worktree at ``commit`` (made once, then reset and cleaned): where the champion
    or the baseline is re-measured beside the candidate."""
    if not (folder / ".git").exists():
        git(repo_root, "worktree", "prune")
        folder.parent.mkdir(parents=True, exist_ok=True)
        git(repo_root, "worktree", "add", "--quiet", "--detach", str(folder), commit)
        return folder  # fresh: at the commit and clean already
    # --force puts every tracked file at the commit (what a `reset --hard` after it would do again).
    git(folder, "checkout", "--quiet", "--force", "--detach", commit)
    git(folder, "clean", "-ffdxq")
    return folder
