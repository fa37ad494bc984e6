"""The built-in LocalExecutor passes the executor contract, with the sandbox and without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ratchet.config import parse_config
from ratchet.executors import LocalExecutor
from ratchet.testing import ExecutorContract

OUTPUT_CAP = 64 * 1024


class TestLocalExecutor(ExecutorContract):
    @pytest.fixture(params=["sandboxed", "unsandboxed"])
    def sandboxed(self, request: pytest.FixtureRequest) -> bool:
        if request.param == "sandboxed":
            request.getfixturevalue("sandbox_required")  # with CI set, a missing sandbox fails
        return bool(request.param == "sandboxed")

    @pytest.fixture
    def output_cap(self) -> int:
        return OUTPUT_CAP

    @pytest.fixture
    def executor(self, sandboxed: bool, worktree: Path) -> LocalExecutor:
        # As a run builds it: from the config's [sandbox] (required: bubblewrap; off: none).
        mode = "required" if sandboxed else "off"
        config = parse_config(
            '[scope]\nmutable = ["**"]\n[metric]\ncommand = "true"\ndirection = "minimize"\n'
            f'[proposer]\nkind = "command"\ncommand = "true"\n[sandbox]\nmode = "{mode}"\noutput = {OUTPUT_CAP}\n'
        )
        executor = LocalExecutor.from_config(config, worktree)
        assert (executor.containment.sandbox is not None) is sandboxed
        return executor


def test_a_bare_local_executor_is_contained_without_a_sandbox(tmp_path: Path):
    executor = LocalExecutor()
    assert executor.containment.sandbox is None and executor.warning is None
    job_dir = tmp_path / "w"
    job_dir.mkdir()
    from ratchet.executors import CommandSpec, Job

    (result,) = executor.measure(Job(job_dir, (CommandSpec("m", "setsid sleep 5 & echo hi", 10),), tmp_path / "logs"))
    assert result.read() == "hi\n" and result.survivors  # what it left is named, as in a run
