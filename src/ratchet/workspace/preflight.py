"""Checks of a set-up that need no command of the project: what stops a run before its baseline.

No commit, a scope that matches no committed file, a file in both scope and harness, a harness
glob that matches nothing. ``ratchet doctor`` shows these findings with the rest of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ratchet.config import Config
from ratchet.workspace.git import GitError, git, parse_porcelain
from ratchet.workspace.scope import Globs


@dataclass(frozen=True)
class Finding:
    status: str  # "ok", "warn", "fail"
    what: str
    detail: str
    fix: str = ""


NO_COMMIT = Finding("fail", "commits", "the repository has no commit yet", "commit your project: git add -A && git commit -m start")


def run_blockers(config: Config, root: Path) -> list[Finding]:
    """What must stop a run before its baseline, found without running any of its commands:
    no commit, a scope that matches no committed file, a file in both scope and harness, a
    harness glob that matches nothing (``harness = []`` checks nothing and passes). Each
    finding's ``detail`` and ``fix`` are one line each."""
    head = head_commit(root)
    if head is None:
        return [NO_COMMIT]
    return [finding for finding in scope_and_harness(root, config, head, committed_only=True) if finding.status == "fail"]


def head_commit(root: Path) -> str | None:
    try:
        return git(root, "rev-parse", "--verify", "HEAD").strip()
    except GitError:
        return None


def scope_and_harness(root: Path, config: Config, head: str, *, committed_only: bool = False) -> list[Finding]:
    """``committed_only``: leave out the look at uncommitted harness edits (a run measures HEAD)."""
    files = [path for path in git(root, "ls-tree", "-r", "-z", "--name-only", "--full-tree", head).split("\0") if path]
    scope, harness = Globs(config.scope.mutable), Globs(config.scope.harness)
    in_scope = scope.select(files)
    out = []
    if not in_scope:
        out.append(Finding("fail", "scope", f"{config.scope.mutable} matches no file committed at HEAD ({head[:7]})", "fix [scope] mutable (globs are relative to the repository root; ** spans folders)"))
    else:
        out.append(Finding("ok", "scope", f"{len(in_scope)} file{'s' if len(in_scope) > 1 else ''}: {names(in_scope)}"))
    both = [path for path in in_scope if harness.matches(path)]
    if both:
        out.append(Finding("fail", "scope", f"{both[0]} is in both the mutable scope and the harness", "remove it from one of [scope] mutable and [scope] harness"))
    in_harness = harness.select(files)
    unmatched = [glob for glob in config.scope.harness if not Globs([glob]).select(files)]
    if not config.scope.harness:
        out.append(Finding("warn", "harness", "no [scope] harness: nothing checks that a candidate leaves the measurement alone", "list the files the metric depends on in [scope] harness"))
    elif unmatched:
        # A glob that matches nothing protects nothing: most often a typo, or files not committed.
        which = config.scope.harness if len(unmatched) == len(config.scope.harness) else unmatched
        out.append(Finding("fail", "harness", f"{which} matches no file committed at HEAD ({head[:7]})", "commit the harness files, or fix [scope] harness (harness = [] to check nothing)"))
    elif committed_only:
        pass
    else:
        changes = parse_porcelain(git(root, "--no-optional-locks", "status", "--porcelain", "-z", "--no-renames", "-uall"))
        dirty = [c.path for c in changes if harness.matches(c.path)]
        if dirty:
            out.append(Finding("fail", "harness", f"not committed: {names(dirty)} (a run measures HEAD, without them)", f"git add {' '.join(dirty[:5])} && git commit"))
        else:
            out.append(Finding("ok", "harness", f"{len(in_harness)} file{'s' if len(in_harness) > 1 else ''} committed: {names(in_harness)}"))
    return out


def names(paths: list[str], limit: int = 4) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")
