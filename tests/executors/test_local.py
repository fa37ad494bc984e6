"""The built-in LocalExecutor passes the executor contract, with the sandbox and without it."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import EXECUTOR_OUTPUT_CAP, BothSandboxings

from ratchet.config import Config, parse_config
from ratchet.executors import CommandSpec, Job, LocalExecutor
from ratchet.state import RunError
from ratchet.testing import ExecutorContract

OUTPUT_CAP = EXECUTOR_OUTPUT_CAP


def _config(mode: str, executor: str = "") -> Config:
    return parse_config(
        '[scope]\nmutable = ["**"]\n[metric]\ncommand = "true"\ndirection = "minimize"\n'
        f'[proposer]\nkind = "command"\ncommand = "true"\n[sandbox]\nmode = "{mode}"\noutput = {OUTPUT_CAP}\n{executor}'
    )


class TestLocalExecutor(BothSandboxings, ExecutorContract):
    @pytest.fixture
    def executor(self, sandboxed: bool, worktree: Path) -> LocalExecutor:
        # As a run builds it: from the config's [sandbox] (required: bubblewrap; off: none).
        mode = "required" if sandboxed else "off"
        executor = LocalExecutor.from_config(_config(mode), worktree)
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


class TestLocalWorker(ExecutorContract):
    """A worker slot's view (its own devices and core) passes the same contract, sandboxed."""

    @pytest.fixture
    def sandboxed(self) -> bool:
        return True

    @pytest.fixture
    def output_cap(self) -> int:
        return OUTPUT_CAP

    @pytest.fixture
    def executor(self, sandbox_required: None, worktree: Path, monkeypatch: pytest.MonkeyPatch) -> LocalExecutor:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
        config = _config("required", "[executor]\ngpus_per_experiment = 1\ncpus_per_experiment = 1\n")
        return LocalExecutor.from_config(config, worktree).worker(0)


def _seen(executor: LocalExecutor, tmp_path: Path, trusted: bool = False) -> tuple[str, str]:
    folder = tmp_path / "w"
    folder.mkdir(exist_ok=True)
    command = 'echo "$CUDA_VISIBLE_DEVICES $HIP_VISIBLE_DEVICES"; grep Cpus_allowed_list /proc/self/status'
    (result,) = executor.measure(Job(folder, (CommandSpec("m", command, 10),), tmp_path / "logs", trusted=trusted))
    assert result.ok, result.read("both")
    devices, cpus = result.read().splitlines()
    assert result.devices == executor.devices_seen(Job(folder, (), tmp_path))
    return devices, cpus.split(":")[1].strip()


@pytest.mark.parametrize("trusted", [False, True])
def test_each_worker_gets_its_own_devices_and_cores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trusted: bool) -> None:
    import os

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5,6,7")  # the devices this process may use
    cores = sorted(os.sched_getaffinity(0))
    config = _config("off", f"[executor]\ngpus_per_experiment = 2\ncpus_per_experiment = {1 if len(cores) > 1 else 0}\n")
    executor = LocalExecutor.from_config(config, tmp_path)
    first, second = executor.worker(0), executor.worker(1)
    devices, cpus = _seen(first, tmp_path, trusted)
    assert devices == "3,5 3,5" and first.devices == ("3", "5")
    assert _seen(second, tmp_path, trusted)[0] == "6,7 6,7"
    if len(cores) > 1:
        assert cpus == str(cores[0]) and _seen(second, tmp_path, trusted)[1] == str(cores[1])
    assert os.sched_getaffinity(0) == set(cores)  # the calling thread's own affinity is put back
    with pytest.raises(RunError, match="worker 3 needs 2 GPUs of its own"):
        executor.worker(2)
