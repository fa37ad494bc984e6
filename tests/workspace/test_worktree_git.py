"""The workspace's git work at its minimum: refs read from files, in-place and patch candidates put
back without `git reset`, their diffs as git would apply them; with real git, no mocks."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import Any, Iterator

import pytest
from conftest import make_repo, sh

from ratchet import Proposal
from ratchet.workspace.git import read_head, read_ref
from ratchet.workspace import worktree
from ratchet.workspace.scope import Globs
from ratchet.workspace.worktree import ScopeViolation, Workspace


def _workspace(tmp_path: Path) -> Workspace:
    repo = make_repo(
        tmp_path / "repo",
        {"src/a.py": "A = 1\n", "src/b.py": "B = 2\n", "src/run.sh": "echo run\n", "bench/score.py": "print(1)\n",
         ".gitignore": "*.pyc\nbuild/\n"},
    )  # fmt: skip
    workspace = Workspace(repo, "t", Globs(["src/**"]), Globs(["bench/**"]))
    workspace.create_branch()
    workspace.open_worktree()
    return workspace


def _clean(workspace: Workspace) -> list[str]:
    out = sh(workspace.worktree, "git", "status", "--porcelain", "--ignored", "-uall")
    return [line for line in out.splitlines() if line]


def test_refs_are_read_from_files_loose_and_packed(tmp_path):
    workspace = _workspace(tmp_path)
    common = workspace.repo_root / ".git"
    tip = sh(workspace.repo_root, "git", "rev-parse", "ratchet/t").strip()
    assert read_ref(common, "refs/heads/ratchet/t") == tip == workspace.champion()
    sh(workspace.repo_root, "git", "pack-refs", "--all")
    assert not (common / "refs" / "heads" / "ratchet" / "t").exists()
    assert read_ref(common, "refs/heads/ratchet/t") == tip == workspace.champion()
    assert read_ref(common, "refs/heads/none") == ""
    gitdir = Path(sh(workspace.worktree, "git", "rev-parse", "--absolute-git-dir").strip())
    assert read_head(gitdir) == ("ref", "refs/heads/ratchet/t")
    (common / "reftable").mkdir()  # another ref store: unsure, git is asked
    assert read_ref(common, "refs/heads/ratchet/t") is None
    assert workspace.champion() == tip


def test_in_place_discard_puts_everything_back_and_its_diff_applies(tmp_path):
    workspace = _workspace(tmp_path)
    champion = workspace.champion()
    wt = workspace.worktree
    (wt / "src" / "a.py").write_text("A = 10\n")
    (wt / "src" / "b.py").unlink()
    (wt / "src" / "new" / "c.py").parent.mkdir(parents=True)
    (wt / "src" / "new" / "c.py").write_text("C = 3\n")
    os.chmod(wt / "src" / "run.sh", 0o755)
    (wt / "src" / "stale.pyc").write_bytes(b"\0planted")  # ignored: removed before measuring
    candidate = workspace.materialize(Proposal(hypothesis="h", in_place=True), tmp_path / "p.patch", champion)
    assert not (wt / "src" / "stale.pyc").exists()
    assert set(candidate.paths) == {"src/a.py", "src/b.py", "src/new/c.py", "src/run.sh"}
    assert candidate.new_paths == {"src/new/c.py"} and candidate.diff is None
    (wt / "build").mkdir()
    (wt / "build" / "out.o").write_text("x")  # what a measurement leaves
    (wt / "notes.txt").write_text("x")
    leftovers = workspace.leftovers()
    described = workspace.describe(candidate)
    assert described.diff and described.originals is not None
    assert "old mode 100644\nnew mode 100755" in described.diff and "deleted file mode 100644" in described.diff
    workspace.discard(leftovers, described)
    assert _clean(workspace) == []
    assert not (wt / "src" / "new").exists() and not (wt / "build").exists()
    assert (wt / "src" / "b.py").read_text() == "B = 2\n" and not os.stat(wt / "src" / "run.sh").st_mode & stat.S_IXUSR
    patch = tmp_path / "saved.diff"
    patch.write_text(described.diff)
    sh(wt, "git", "apply", "--check", str(patch))  # the diff is what git applies


def test_in_place_binary_change_falls_back_to_git(tmp_path):
    workspace = _workspace(tmp_path)
    (workspace.worktree / "src" / "a.py").write_bytes(b"\0\1\2")
    candidate = workspace.materialize(Proposal(hypothesis="h", in_place=True), tmp_path / "p.patch", workspace.champion())
    described = workspace.describe(candidate)
    assert described.originals is None and "GIT binary patch" in (described.diff or "")
    workspace.discard(workspace.leftovers(), described)
    assert _clean(workspace) == []


def test_patch_candidate_is_put_back_without_git(tmp_path):
    workspace = _workspace(tmp_path)
    patch = "--- a/src/a.py\n+++ b/src/a.py\n@@ -1 +1 @@\n-A = 1\n+A = 5\n--- a/src/b.py\n+++ b/src/b.py\n@@ -1 +1 @@\n-B = 2\n+B = 4\n"
    candidate = workspace.materialize(Proposal(hypothesis="h", patch=patch), tmp_path / "p.patch", workspace.champion())
    assert set(candidate.paths) == {"src/a.py", "src/b.py"} and not candidate.new_paths and not candidate.staged
    assert candidate.originals is not None and candidate.originals["src/a.py"] is not None
    leftovers = workspace.leftovers()
    with _git_calls() as calls:
        workspace.discard(leftovers, candidate)
    assert calls == []
    assert _clean(workspace) == []
    assert (workspace.worktree / "src" / "a.py").read_text() == "A = 1\n"


@contextlib.contextmanager
def _git_calls() -> Iterator[list[tuple[str, ...]]]:
    """The git commands the workspace runs meanwhile (each still runs, for real)."""
    calls: list[tuple[str, ...]] = []
    real_git, real_bytes = worktree.git, worktree.git_bytes

    def counted_git(cwd: Path, *args: str, **kwargs: Any) -> str:
        calls.append(args)
        return real_git(cwd, *args, **kwargs)

    def counted_bytes(cwd: Path, *args: str, **kwargs: Any) -> bytes:
        calls.append(args)
        return real_bytes(cwd, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patcher:
        patcher.setattr(worktree, "git", counted_git)
        patcher.setattr(worktree, "git_bytes", counted_bytes)
        yield calls


ADDS_A_FILE = "--- a/src/a.py\n+++ b/src/a.py\n@@ -1 +1 @@\n-A = 1\n+A = 5\n--- /dev/null\n+++ b/src/d.py\n@@ -0,0 +1 @@\n+D = 4\n"


def test_patch_that_adds_a_file_is_kept_by_three_git_commands(tmp_path):
    # No git command commits an untracked file: the patch goes into the index as it is applied
    # (apply --index), so that its keep is one commit: apply, status, commit.
    workspace = _workspace(tmp_path)
    workspace.identity_env()  # asked of git once per run
    with _git_calls() as calls:
        candidate = workspace.materialize(Proposal(hypothesis="h", patch=ADDS_A_FILE), tmp_path / "p.patch", workspace.champion())
        (workspace.worktree / "build").mkdir()
        (workspace.worktree / "build" / "out.o").write_text("x")  # what a measurement leaves
        leftovers = workspace.leftovers()
        sha = workspace.keep(candidate, "keep d", leftovers)
    assert [args[0] for args in calls] == ["apply", "status", "commit"]
    assert candidate.staged and candidate.new_paths == {"src/d.py"}
    assert sh(workspace.worktree, "git", "show", "--name-status", "--format=", sha).split() == ["M", "src/a.py", "A", "src/d.py"]
    assert _clean(workspace) == [] and (workspace.worktree / "src" / "d.py").read_text() == "D = 4\n"


def test_patch_that_adds_a_file_is_discarded_by_a_reset(tmp_path):
    workspace = _workspace(tmp_path)
    champion = workspace.champion()
    candidate = workspace.materialize(Proposal(hypothesis="h", patch=ADDS_A_FILE), tmp_path / "p.patch", champion)
    (workspace.worktree / "notes.txt").write_text("x")  # untracked leftover
    leftovers = workspace.leftovers()
    with _git_calls() as calls:
        workspace.discard(leftovers, candidate)
    assert [args[0] for args in calls] == ["reset"]
    assert _clean(workspace) == [] and not (workspace.worktree / "src" / "d.py").exists()
    assert (workspace.worktree / "src" / "a.py").read_text() == "A = 1\n" and workspace.champion() == champion


def test_patch_outside_the_scope_is_refused(tmp_path):
    workspace = _workspace(tmp_path)
    patch = "--- a/bench/score.py\n+++ b/bench/score.py\n@@ -1 +1 @@\n-print(1)\n+print(0)\n"
    with pytest.raises(ScopeViolation):
        workspace.materialize(Proposal(hypothesis="h", patch=patch), tmp_path / "p.patch", workspace.champion())
    workspace.cleanup(None, None)
    assert _clean(workspace) == []


def test_a_measurement_that_changes_a_tracked_file_is_reset_by_git(tmp_path):
    workspace = _workspace(tmp_path)
    candidate = workspace.materialize(Proposal(hypothesis="h", edits={"src/a.py": "A = 7\n"}), tmp_path / "p.patch", workspace.champion())
    (workspace.worktree / "README").write_text("x")  # untracked
    (workspace.worktree / "src" / "b.py").write_text("B = 0\n")  # tracked, outside the candidate
    workspace.discard(workspace.leftovers(), candidate)
    assert _clean(workspace) == []
    assert (workspace.worktree / "src" / "b.py").read_text() == "B = 2\n"
