"""``ratchet demo``: copy a bundled example into a new git repository, ready to run."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from importlib import resources
from pathlib import Path

from ratchet.workspace.git import git

DEFAULT_EXAMPLE = "regression"


class DemoError(Exception):
    pass


def examples() -> list[str]:
    root = resources.files("ratchet") / "examples"
    return sorted(item.name for item in root.iterdir() if item.is_dir() and not item.name.startswith(("_", ".")))


def prepare_demo(target: Path, example: str = DEFAULT_EXAMPLE) -> Path:
    """Copy ``example`` to ``target`` (which must not exist or be empty), make it a repository."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DemoError(f"{target} already exists and is not empty; choose another --dir")
    source = resources.files("ratchet") / "examples" / example
    if not source.is_dir():
        raise DemoError(f"no example named {example!r} (examples: {', '.join(examples())})")
    with resources.as_file(source) as path:
        shutil.copytree(path, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # The example's commands say python3; the demo runs them with this interpreter, which
    # is the one that has ratchet's dependencies (numpy) installed.
    config = target / "ratchet.toml"
    config.write_text(config.read_text().replace('"python3 ', f'"{shlex.quote(sys.executable)} '))
    git(target, "init", "--quiet", "--initial-branch=main")
    git(target, "add", "-A")
    env_identity = {"GIT_AUTHOR_NAME": "ratchet demo", "GIT_AUTHOR_EMAIL": "demo@localhost",
                    "GIT_COMMITTER_NAME": "ratchet demo", "GIT_COMMITTER_EMAIL": "demo@localhost"}  # fmt: skip
    git(target, "commit", "--quiet", "-m", f"ratchet demo: {example}", env={**os.environ, **env_identity})
    return target
