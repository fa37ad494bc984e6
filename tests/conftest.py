"""Shared fixtures: real git repositories in temporary folders, the real CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable

import pytest

from ratchet import Proposal, ProposalContext, Proposer, ProposerError

# The session's loopback Ray cluster (the `ray_cluster` fixture; Ray is imported only when used).
pytest_plugins = ["ray_cluster"]

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test User",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test User",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True, env={**os.environ, **GIT_ENV}).stdout


def make_repo(root: Path, files: dict[str, str], config: str | None = None) -> Path:
    """A git repository with ``files`` (and ratchet.toml) committed on branch main."""
    root.mkdir(parents=True, exist_ok=True)
    sh(root, "git", "init", "-q", "--initial-branch=main")
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
    if config is not None:
        (root / "ratchet.toml").write_text(textwrap.dedent(config))
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "initial")
    return root


def snapshot(repo: Path) -> dict[str, str]:
    """What the user sees of their checkout: branch, HEAD, index, status, working files."""
    files = {}
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo)
        if rel.parts[0] in (".git", ".ratchet") or not path.is_file():
            continue
        files[str(rel)] = path.read_text(errors="replace")
    return {
        "branch": sh(repo, "git", "symbolic-ref", "HEAD"),
        "head": sh(repo, "git", "rev-parse", "HEAD"),
        "index": sh(repo, "git", "ls-files", "-s"),
        "status": "".join(
            line for line in sh(repo, "git", "status", "--porcelain", "--ignored").splitlines(True) if ".ratchet/" not in line
        ),
        "files": repr(files),
    }


def run_cli(cwd: Path, *args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ratchet", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


# A target whose metric is the number in value.txt: proposals write numbers, the harness reads them.
NUMBER_TARGET = {
    "value.txt": "10\n",
    "bench.py": """\
        import pathlib
        print("metric:", float(pathlib.Path("value.txt").read_text()))
    """,
    "program.md": "Make the number small.\n",
}

NUMBER_CONFIG = r"""
    [run]
    name = "t"
    [scope]
    mutable = ["value.txt", "src/**"]
    harness = ["bench.py"]
    [metric]
    name = "number"
    command = "{python} bench.py"
    regex = 'metric: (\S+)'
    direction = "minimize"
    timeout = "20s"
    [budget]
    iterations = 5
    [proposer]
    kind = "command"
    command = "true"
"""


@pytest.fixture
def number_repo(tmp_path: Path) -> Callable[..., Path]:
    def make(config: str = NUMBER_CONFIG, files: dict[str, str] | None = None, name: str = "repo") -> Path:
        merged = {**NUMBER_TARGET, **(files or {})}
        return make_repo(tmp_path / name, merged, config.replace("{python}", sys.executable))

    return make


@pytest.fixture
def sandbox_required() -> None:
    """For tests of the sandbox itself: skipped where bubblewrap cannot run, except in CI (CI set),
    where a missing sandbox is a failure, never a silent skip."""
    from ratchet.measure.sandbox import probe

    found = probe()
    if not found.usable:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the sandbox tests, but {found.reason}")
        pytest.skip(f"no sandbox here: {found.reason}")


def sandbox_config(mode: str) -> str:
    """The number target's config for one iteration, no calibration or confirmation, ``[sandbox] mode``."""
    return NUMBER_CONFIG.replace("iterations = 5", "iterations = 1").replace(
        "[budget]", "[verdict]\ncalibrate_pairs = 0\nconfirm_pairs = 0\n[budget]"
    ) + f'\n[sandbox]\nmode = "{mode}"\n'


class Scripted(Proposer):
    """A proposer for tests of the loop: hands out the given proposals in order (callables get the context)."""

    kind = "scripted"

    def __init__(self, proposals: list[Proposal | Callable[[ProposalContext], Proposal]]) -> None:
        self.proposals = list(proposals)
        self.outcomes: list = []

    def propose(self, context: ProposalContext) -> Proposal:
        if not self.proposals:
            raise ProposerError("out of ideas")
        item = self.proposals.pop(0)
        return item(context) if callable(item) else item

    def observe(self, outcome) -> None:
        self.outcomes.append(outcome)


def number(value: float, why: str = "") -> Proposal:
    return Proposal(hypothesis=why or f"set {value}", edits={"value.txt": f"{value}\n"})


# The output cap the executor suites run with (small: a 20x flood stays quick).
EXECUTOR_OUTPUT_CAP = 64 * 1024


class BothSandboxings:
    """For an executor's ExecutorContract suite: every check sandboxed and unsandboxed, with
    EXECUTOR_OUTPUT_CAP. Put it before ExecutorContract in the bases, so its fixtures win."""

    @pytest.fixture(params=["sandboxed", "unsandboxed"])
    def sandboxed(self, request: pytest.FixtureRequest) -> bool:
        if request.param == "sandboxed":
            request.getfixturevalue("sandbox_required")  # with CI set, a missing sandbox fails
        return bool(request.param == "sandboxed")

    @pytest.fixture
    def output_cap(self) -> int:
        return EXECUTOR_OUTPUT_CAP


def calc_context(tmp_path: Path, iteration: int, in_flight: tuple = (), worktree: Path | None = None, source: str = "def value():\n    return 10\n") -> ProposalContext:
    """A proposer's context on a one-file target (calc.py), with the experiments ``in_flight``."""
    worktree = worktree or tmp_path / f"worktree-{iteration}"
    worktree.mkdir(parents=True, exist_ok=True)
    (worktree / "calc.py").write_text(source)
    return ProposalContext(
        run="t", iteration=iteration, worktree=worktree, brief="Make value() small.", scope=("calc.py",),
        scope_files=("calc.py",), metric_name="number", direction="minimize", champion_metric=10.0,
        baseline_metric=10.0, history=(), state_dir=tmp_path / "state", log_dir=tmp_path / "logs" / str(iteration),
        in_flight=in_flight,
    )  # fmt: skip


def running_experiment(id: int, proposer: str, hypothesis: str = "", meta: dict | None = None):
    """An experiment in flight, as the scheduler shows it to the proposers."""
    from ratchet.experiment import Experiment

    return Experiment("t", id, "0" * 40, proposer, 0.0, state="running", hypothesis=hypothesis, proposal_meta=meta or {})
