"""The git guard: a candidate's changes to hooks, config and info are put back and kept aside."""

from __future__ import annotations

import os

from conftest import make_repo

from ratchet.workspace.gitguard import GitGuard


def test_git_guard_puts_back_hooks_config_and_info(tmp_path):
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    git_dir = repo / ".git"
    config = (git_dir / "config").read_text()
    guard = GitGuard(git_dir, None, tmp_path / "quarantine")
    assert guard.check() == []
    (git_dir / "hooks" / "pre-commit").write_text("#!/bin/sh\necho pwned\n")
    (git_dir / "config").write_text(config + "[core]\n\tfsmonitor = touch /tmp/pwned\n")
    os.rename(git_dir / "info", tmp_path / "info-moved")
    os.symlink(tmp_path, git_dir / "info")
    changed = guard.check()
    assert {".git/config", ".git/hooks/pre-commit", ".git/info"} <= set(changed)
    assert not (git_dir / "hooks" / "pre-commit").exists()
    assert (git_dir / "config").read_text() == config
    assert (git_dir / "info").is_dir() and not (git_dir / "info").is_symlink()
    assert (git_dir / "info" / "exclude").read_text() == (tmp_path / "info-moved" / "exclude").read_text()
    assert guard.check() == []
    kept = {p.name for p in (tmp_path / "quarantine").rglob("*")}
    assert {"pre-commit", "config", "info"} <= kept
