"""``ratchet try``: an agent (or a person) edits the checkout; ratchet judges the change.

The proposal is the working tree's changes inside the scope, relative to the run's champion
(or a patch). The loop's own one-experiment step measures it: scope checks, the run's verdict
policy, keep or discard, the ledger. Then the working tree's scope files move to the champion
that results, so the next change starts from it. The user's index, HEAD and branch are never
written, and no file outside the scope is ever touched.
"""

from __future__ import annotations

import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from pydantic import BaseModel

from ratchet.config import CONFIG_FILE, Config
from ratchet.events import RunObserver
from ratchet.experiment import Experiment, Verdict, guard_failures
from ratchet.loop import Loop, RunError, run_lock
from ratchet.proposers.base import Proposal
from ratchet.report.agent_view import (
    AgentRow,
    AgentView,
    champion_before,
    history_lines,
    proposer_reason,
    rows,
)
from ratchet.report.formatting import format_change, format_metric
from ratchet.state import STATE_DIR
from ratchet.workspace.git import (
    GIT_ENV,
    GitError,
    WorkspaceError,
    exclude_state_dir,
    git_bytes,
    parse_porcelain,
    run_git,
)
from ratchet.workspace.scope import Globs
from ratchet.workspace.worktree import is_safe_relative

# The exit codes of `ratchet try`: what a shell loop branches on.
EXIT_KEPT = 0
EXIT_DISCARDED = 1  # discard, crash, timeout, overfit, abandoned
EXIT_INVALID = 2  # invalid, tampered: the change broke a rule, nothing of it was judged on merit
EXIT_NOT_TRIED = 3  # nothing was measured: a run holds the lock, the config is broken, ...

_INVALID = (Verdict.INVALID, Verdict.TAMPERED)


class TryRefused(Exception):
    """Nothing was tried (one line for the user); ``exit_code`` says how to exit."""

    def __init__(self, message: str, exit_code: int = EXIT_NOT_TRIED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def exit_code_of(verdict: Verdict) -> int:
    if verdict is Verdict.KEEP:
        return EXIT_KEPT
    return EXIT_INVALID if verdict in _INVALID else EXIT_DISCARDED


# ---------------------------------------------------------------- git, bytes in and out


def _nul_list(out: bytes) -> list[str]:
    return [item.decode(errors="surrogateescape") for item in out.split(b"\0") if item]


def _tree(root: Path, commit: str) -> dict[str, tuple[str, str]]:
    """path -> (mode, object id) of every file of ``commit``."""
    entries: dict[str, tuple[str, str]] = {}
    for item in _nul_list(git_bytes(root, "ls-tree", "-r", "-z", "--full-tree", commit)):
        meta, path = item.split("\t", 1)
        mode, _, sha = meta.split()
        entries[path] = (mode, sha)
    return entries


# ---------------------------------------------------------------- the working tree's change


@dataclass(frozen=True)
class WorkingChange:
    """The user's working tree against the champion, as a proposal sees it."""

    patch: str  # the scope's changes, `git diff --binary` (empty: nothing changed)
    paths: tuple[str, ...]  # the scope paths the patch touches
    outside: tuple[str, ...]  # changes the loop rejects: tracked files outside the scope, any harness file
    untracked: tuple[str, ...]  # new files outside the scope and the harness: left out of the proposal


def working_change(root: Path, champion: str, scope: Globs, harness: Globs, exempt: Iterable[str] = ()) -> WorkingChange:
    """Diff the working tree's scope files against ``champion`` without writing the user's index.

    Scope files are compared with the champion (a kept change is already there); everything
    else with HEAD (`git status`), since the user's own commits since the run began are not
    the agent's doing.
    """
    exempt = set(exempt)
    outside: list[str] = []
    untracked: list[str] = []
    status = git_bytes(root, "--no-optional-locks", "status", "--porcelain", "-z", "--no-renames", "-uall")
    for change in parse_porcelain(status.decode(errors="surrogateescape")):
        path = change.path
        if scope.matches(path) and not harness.matches(path):
            continue
        if harness.matches(path):
            outside.append(path)
        elif path in exempt:
            continue
        elif change.status == "??":
            untracked.append(path)
        else:
            outside.append(path)
    champion_files = set(scope.select(list(_tree(root, champion))))
    listed = _nul_list(git_bytes(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"))
    present = {path for path in scope.select(listed) if os.path.lexists(root / path)}
    paths = sorted(path for path in champion_files | present if is_safe_relative(path) and not harness.matches(path))
    patch = ""
    touched: tuple[str, ...] = ()
    if paths:
        # A private index at the champion, the scope's files added to it: its diff is the
        # proposal (new files, deletions, modes and binary files included).
        with tempfile.TemporaryDirectory(prefix="ratchet-try-") as folder:
            env = {**GIT_ENV, "GIT_INDEX_FILE": str(Path(folder) / "index"), "GIT_LITERAL_PATHSPECS": "1"}
            git_bytes(root, "read-tree", champion, env=env)
            listing = b"".join(path.encode(errors="surrogateescape") + b"\0" for path in paths)
            git_bytes(root, "add", "-A", "--pathspec-from-file=-", "--pathspec-file-nul", input=listing, env=env)
            touched = tuple(_nul_list(git_bytes(root, "diff", "--cached", "--name-only", "-z", "--no-renames", champion, env=env)))
            if touched:
                raw = git_bytes(root, "diff", "--cached", "--binary", "--no-renames", "--no-ext-diff", "--no-textconv", "--full-index", champion, env=env)
                patch = raw.decode(errors="surrogateescape")
    return WorkingChange(patch, tuple(touched), tuple(sorted(outside)), tuple(sorted(untracked)))


def patch_problem(root: Path, commit: str, patch: str) -> str | None:
    """Why ``patch`` would not apply to ``commit`` (git's words), or None; checked in a private index."""
    with tempfile.TemporaryDirectory(prefix="ratchet-try-") as folder:
        env = {**GIT_ENV, "GIT_INDEX_FILE": str(Path(folder) / "index")}
        try:
            git_bytes(root, "read-tree", commit, env=env)
        except GitError as exc:
            return str(exc)
        # The flags of the loop's own `git apply` (Workspace.materialize), against the same tree.
        proc = run_git(root, "apply", "--check", "--cached", "--whitespace=nowarn", "-", input=patch.encode(errors="surrogateescape"), env=env)
    if proc.returncode == 0:
        return None
    lines = [line.removeprefix("error: ") for line in proc.stderr.decode(errors="replace").splitlines() if line.strip()]
    return "; ".join(lines[:3]) or f"git apply exit {proc.returncode}"


def sync_scope(root: Path, commit: str, paths: Iterable[str], scope: Globs) -> list[str]:
    """Make ``paths`` (scope paths only) of the working tree what they are at ``commit``:
    written from it, or removed when it has no such file. Returns the paths that changed."""
    wanted = sorted({p for p in paths if scope.matches(p) and is_safe_relative(p)})
    if not wanted:
        return []
    tree = _tree(root, commit)
    blobs = [tree[p][1] for p in wanted if p in tree and tree[p][0] != "160000"]
    contents = _read_blobs(root, blobs)
    real_root = os.path.realpath(root)
    changed = []
    for path in wanted:
        target = root / path
        parent = os.path.realpath(target.parent)
        if parent != real_root and not parent.startswith(real_root + os.sep) and target.parent.exists():
            continue  # a folder on the way leads out of the checkout: not ours to write through
        if path not in tree:
            if os.path.lexists(target) and not target.is_dir():
                target.unlink()
                _remove_empty_parents(target.parent, root)
                changed.append(path)
            continue
        mode, sha = tree[path]
        if mode == "160000":
            continue  # a submodule: left alone
        if _write(target, mode, contents[sha]):
            changed.append(path)
    return changed


def _read_blobs(root: Path, shas: list[str]) -> dict[str, bytes]:
    if not shas:
        return {}
    out = git_bytes(root, "cat-file", "--batch", input="".join(f"{sha}\n" for sha in shas).encode())
    contents: dict[str, bytes] = {}
    at = 0
    while at < len(out):
        header_end = out.index(b"\n", at)
        sha, _, size = out[at:header_end].decode().split()
        start = header_end + 1
        contents[sha] = out[start : start + int(size)]
        at = start + int(size) + 1
    return contents


def _write(target: Path, mode: str, data: bytes) -> bool:
    """Write one file as git would check it out; False when it already is so."""
    if mode == "120000":
        link = os.fsdecode(data)
        if target.is_symlink() and os.readlink(target) == link:
            return False
        _clear(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(link, target)
        return True
    executable = mode == "100755"
    if target.is_file() and not target.is_symlink():
        current = target.stat().st_mode
        if target.read_bytes() == data and bool(current & stat.S_IXUSR) == executable:
            return False
    _clear(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    current = target.stat().st_mode
    exec_bits = stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
    target.chmod((current | (exec_bits & ~_umask())) if executable else (current & ~exec_bits))
    return True


def _clear(target: Path) -> None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        target.unlink()
    elif target.is_dir():
        raise GitError(f"{target} is a folder where the champion has a file; move it away and try again")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove_empty_parents(folder: Path, stop: Path) -> None:
    while folder != stop and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


# ---------------------------------------------------------------- one try


class TryReport(BaseModel):
    """The outcome of one try, as printed by `ratchet try --json` and returned by the MCP `try` tool."""

    experiment: int
    verdict: str
    kept: bool
    exit_code: int
    metric: float | None
    # The champion's value the verdict compared with: the median of its re-measured samples
    # when the policy measures it again (repeat, sequential), else its recorded score.
    champion_before: float | None
    champion_remeasured: bool = False
    change: str  # the candidate's change against `champion_before`, e.g. "-3.79%" (negative = went down)
    compared: str = ""  # the same in words, e.g. "-3.79% vs champion 0.5598 re-measured (medians of 5 pairs)"
    reason: str
    guard_output: str = ""  # the failing guards' output tails, when a guard failed
    commit: str | None  # the new champion's commit, when kept
    champion_commit: str  # the champion after this try
    working_tree: str  # what happened to the working tree's scope files
    notes: list[str] = []
    history: list[AgentRow] = []

    def lines(self, metric_name: str) -> list[str]:
        """The human report: verdict and delta, reason, the working tree, a short history."""
        against = f" ({self.compared})" if self.compared else ""
        out = [f"{self.verdict}: {metric_name} {format_metric(self.metric)}{against} — experiment #{self.experiment}"]
        if self.reason:
            out.append(f"reason: {self.reason}")
        if self.guard_output:
            out += self.guard_output.splitlines()
        out.append(f"working tree: {self.working_tree}")
        out += [f"note: {note}" for note in self.notes]
        if self.history:
            out.append("recent experiments:")
            out += history_lines(self.history)
        return out


class Referee:
    """Judges changes made outside the loop against one run's champion."""

    def __init__(self, root: Path, config: Config, *, display: RunObserver | None = None, config_path: Path | None = None) -> None:
        self.root = root
        self.config = config
        self.display = display
        self.config_path = config_path
        self.view = AgentView(root, config)
        self.scope = Globs(config.scope.mutable)
        self.harness = Globs(config.scope.harness)

    def try_change(self, hypothesis: str, patch: str | None = None, *, again: bool = False) -> TryReport:
        """Measure the working tree's scope changes (or ``patch``) against the champion; keep or discard.

        A change the ledger already measured on this champion is refused (invalid, naming the
        earlier experiment) unless ``again``: re-measuring until a lucky draw wins is no test.
        Raises :class:`TryRefused` when nothing could be tried.
        """
        hypothesis = " ".join(hypothesis.split())
        if not hypothesis:
            raise TryRefused("a hypothesis is required: say in one line what you changed and why it should help")
        try:
            exclude_state_dir(self.root)
            with run_lock(self.root / STATE_DIR, self.view.run):  # refuse before looking at anything
                pass
            champion = self.view.champion_commit()
            change = working_change(self.root, champion, self.scope, self.harness, self._exempt())
        except RunError as exc:
            raise TryRefused(f"{exc} (`ratchet try` judges one change at a time, never beside a `ratchet run`)") from None
        except GitError as exc:
            raise TryRefused(str(exc)) from None
        notes: list[str] = []
        if change.untracked:
            notes.append(f"left out (new files outside the scope): {_names(change.untracked)}")
        follow = False  # whether the working tree follows the champion after the verdict
        if patch is not None:
            if not patch.strip():
                raise TryRefused("the patch is empty", EXIT_INVALID)
            proposal = Proposal(hypothesis=hypothesis, patch=patch if patch.endswith("\n") else patch + "\n", again=again)
            # A patch that is no diff, or does not apply, is refused before the ledger sees it.
            if problem := patch_problem(self.root, champion, proposal.patch or ""):
                raise TryRefused(f"the patch does not apply to the champion ({champion[:7]}): {problem}", EXIT_INVALID)
            follow = not change.patch and not change.outside
        elif change.outside:
            # The loop rejects these as it would any proposer's: recorded, never measured.
            proposal = Proposal(hypothesis=hypothesis, edits={path: _text(self.root / path) for path in change.outside})
        elif not change.patch:
            raise TryRefused(
                f"nothing to try: the working tree's scope files ({', '.join(self.scope.globs)}) are the champion's "
                f"({champion[:7]}); change them first",
                EXIT_INVALID,
            )
        else:
            proposal = Proposal(hypothesis=hypothesis, patch=change.patch, again=again)
            follow = True
        try:
            experiment = Loop(self.root, self.config, observer=_TryObserver(self.display)).try_proposal(proposal)
        except (RunError, WorkspaceError, GitError) as exc:
            raise TryRefused(str(exc)) from None
        assert experiment.verdict is not None
        new_champion = self.view.champion_commit()
        try:
            working_tree = self._settle(experiment, change, patch is not None, follow, champion, new_champion, notes)
        except (GitError, OSError) as exc:  # the verdict stands; say what could not follow it
            working_tree = f"not moved to the champion ({new_champion[:7]}): {exc}"
        experiments = self.view.experiments()
        reference = champion_before(experiments, experiment.id)
        compared = experiment.comparison(reference.metric if reference else None)
        return TryReport(
            experiment=experiment.id,
            verdict=experiment.verdict.value,
            kept=experiment.verdict is Verdict.KEEP,
            exit_code=exit_code_of(experiment.verdict),
            metric=experiment.metric,
            champion_before=compared.champion if compared else (reference.metric if reference else None),
            champion_remeasured=compared.remeasured if compared else False,
            change=format_change(compared.champion, compared.candidate) if compared else "",
            compared=compared.describe() if compared else "",
            reason=proposer_reason(experiment),
            guard_output=guard_failures(experiment.guards),
            commit=experiment.commit,
            champion_commit=new_champion,
            working_tree=working_tree,
            notes=notes,
            history=rows(experiments)[-5:],
        )

    def _settle(
        self, experiment: Experiment, change: WorkingChange, from_patch: bool, follow: bool, champion: str, new_champion: str, notes: list[str]
    ) -> str:
        """Move the working tree's scope files to the champion after the verdict (when they were the proposal)."""
        short = new_champion[:7]
        if change.outside and not from_patch:
            bad = [p for p in change.outside if self.harness.matches(p)]
            what = "harness files" if bad else "files outside the scope"
            notes.append(f"undo your changes to {what} ({_names(change.outside)}): ratchet never measures nor touches them")
            return "unchanged (nothing was measured)"
        if experiment.verdict is Verdict.ABANDONED:
            return "unchanged (the experiment was abandoned)"
        if not follow:
            return f"unchanged (it has its own changes in the scope); the champion is {short} on {self.view.branch}"
        moved = _diff_names(self.root, champion, new_champion) if new_champion != champion else []
        sync_scope(self.root, new_champion, [*change.paths, *moved], self.scope)
        if experiment.verdict is Verdict.KEEP:
            return f"at the new champion ({short} on {self.view.branch})"
        saved = Path(experiment.log_dir) / "proposal.patch"
        if change.patch and saved.exists():
            notes.append(f"your change is saved in {saved} (git apply it to get it back)")
        return f"back at the champion ({short})"

    def _exempt(self) -> set[str]:
        # ratchet's own files (config, brief, an agent's glue) are read from the checkout, not
        # measured: editing them is no proposal, and no note either.
        from ratchet.commands.agent_glue import GLUE

        exempt = {CONFIG_FILE, self.config.run.brief, *(path for glue in GLUE.values() for path in (glue.instructions, glue.mcp_config))}
        if self.config_path is not None:
            try:
                exempt.add(self.config_path.resolve().relative_to(self.root.resolve()).as_posix())
            except ValueError:
                pass
        return exempt


class _TryObserver(RunObserver):
    """The loop's announcements for whoever watches a try, less the one that is wrong for a try:
    when the first try starts the run, the working tree's uncommitted scope changes are not left
    out, they are the proposal."""

    def __init__(self, inner: RunObserver | None) -> None:
        self.inner = inner or RunObserver()

    def warning(self, text: str) -> None:
        if "has uncommitted changes; the run starts from HEAD" not in text:
            self.inner.warning(text)

    def message(self, text: str) -> None:
        self.inner.message(text)

    def alarm(self, text: str) -> None:
        self.inner.alarm(text)

    def experiment_started(self, experiment: Experiment) -> None:
        self.inner.experiment_started(experiment)

    def sample(self, experiment: Experiment, role: str, value: float) -> None:
        self.inner.sample(experiment, role, value)

    def experiment_done(self, experiment: Experiment) -> None:
        self.inner.experiment_done(experiment)

    def champion_is(self, baseline: float | None, champion: float | None) -> None:
        self.inner.champion_is(baseline, champion)


def _diff_names(root: Path, old: str, new: str) -> list[str]:
    return _nul_list(git_bytes(root, "diff", "--name-only", "-z", "--no-renames", old, new))


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="surrogateescape")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _names(paths: Iterable[str], limit: int = 5) -> str:
    paths = list(paths)
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


__all__ = [
    "EXIT_DISCARDED", "EXIT_INVALID", "EXIT_KEPT", "EXIT_NOT_TRIED", "Referee", "TryRefused", "TryReport",
    "WorkingChange", "exit_code_of", "patch_problem", "sync_scope", "working_change",
]  # fmt: skip
