"""Scope and harness globs."""

from __future__ import annotations

import pytest

from ratchet.workspace.scope import Globs
from ratchet.workspace.worktree import is_safe_relative


@pytest.mark.parametrize(
    "glob, path, expected",
    [
        ("train.py", "train.py", True),
        ("train.py", "sub/train.py", False),  # anchored at the root, unlike .gitignore
        ("*.py", "a.py", True),
        ("*.py", "src/a.py", False),
        ("src/**/*.py", "src/a.py", True),
        ("src/**/*.py", "src/x/y/a.py", True),
        ("src/**/*.py", "srcx/a.py", False),
        ("src/**", "src/x/y", True),
        ("src", "src/x/y", True),  # a folder covers what is below it
        ("src/", "src/x", True),
        ("src", "srcx/y", False),
        ("./lib/*.rb", "lib/a.rb", True),
        ("lib/?.rb", "lib/ab.rb", False),
        ("lib/[ab].rb", "lib/b.rb", True),
        ("lib/[!ab].rb", "lib/b.rb", False),
        ("**/*.md", "README.md", True),
        ("**/*.md", "docs/x/README.md", True),
        (".hidden/*", ".hidden/x", True),
    ],
)
def test_glob_semantics(glob, path, expected):
    assert Globs([glob]).matches(path) is expected


def test_select_and_empty():
    globs = Globs(["a/*", "b.txt"])
    # "a/*" matches the folder a/y, and a folder covers what is below it.
    assert globs.select(["a/x", "a/y/z", "b.txt", "c", "b.txt.bak"]) == ["a/x", "a/y/z", "b.txt"]
    assert not Globs([])
    assert not Globs([]).matches("anything")


@pytest.mark.parametrize(
    "path, safe",
    [
        ("a/b.txt", True),
        ("../x", False),
        ("a/../../x", False),
        ("/etc/passwd", False),
        (".git/config", False),
        ("sub/.git/hooks/x", False),
        (".ratchet/ledger.sqlite", False),
        ("a//b", True),  # PurePosixPath collapses the empty part
        ("", False),
        ("a\\b", False),
    ],
)
def test_safe_relative(path, safe):
    assert is_safe_relative(path) is safe
