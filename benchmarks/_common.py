"""What the benchmarks share: a target committed in a fresh git repository, the machine's load
(every figure is stated with it), and the source trees compared side by side."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}


def commit_all(root: Path) -> Path:
    """``root`` as a git repository with everything in it committed once."""
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=root, check=True, env=GIT_ENV)
    return root


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def trees(before: Path | None) -> dict[str, Path]:
    """The source trees to time: this one ("after"), and ``before``'s src/ beside it when given."""
    return {"after": SRC} if before is None else {"before": before / "src", "after": SRC}
