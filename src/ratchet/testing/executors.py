"""The executor conformance suite: what every executor does, the built-in one or yours.

Subclass :class:`ExecutorContract` in your tests and give it an ``executor`` fixture::

    from ratchet.testing import ExecutorContract

    class TestMyExecutor(ExecutorContract):
        @pytest.fixture
        def executor(self, worktree):
            return MyExecutor(...)

Every test runs real commands (``/bin/sh``, ``sleep``, ``setsid``, ``git``) through
``executor.measure(job)`` in the ``worktree`` fixture and checks what a driver relies on: exit
codes, a timeout that kills the whole process group within the timeout + 2 s, capped output,
leftovers killed and named, abandoning a running command, the job's deadline, the trusted score
step running outside the sandbox, and the hardware fingerprint on every result.
"""

from __future__ import annotations

import math
import os
import subprocess
import time
from pathlib import Path
from typing import Mapping

import pytest

from ratchet.config import Config, parse_config
from ratchet.executors.base import CommandSpec, Executor, Job
from ratchet.executors.sampler import PristineHarness, Sampler
from ratchet.measure.hardware import fingerprint, hardware_info
from ratchet.measure.runner import CommandResult

# The bound every executor keeps between a command's timeout and the moment its whole group is gone.
KILL_SECONDS = 2.0
# The harness file of the default worktree: the trusted score step, run from a pristine copy.
SCORE_SCRIPT = """\
echo "score: $(cat "$RATCHET_CANDIDATE/artifact")"
echo "score sees: ${RATCHET_CONTRACT_API_KEY:-nothing}"
touch "$RATCHET_CONTRACT_OUTSIDE/score-was-here"
"""


def _job(
    worktree: Path,
    log_dir: Path,
    *commands: str,
    timeout: float = 30,
    stop_on_failure: bool = False,
    deadline: float | None = None,
    trusted: bool = False,
    env: Mapping[str, str] | None = None,
) -> Job:
    specs = tuple(CommandSpec(f"step-{i}", command, timeout) for i, command in enumerate(commands))
    return Job(worktree, specs, log_dir, env=env, stop_on_failure=stop_on_failure, deadline=deadline, trusted=trusted)


def _wait_until(moment: float) -> None:
    """Sleep until ``time.monotonic()`` reaches ``moment`` (for witnesses that would write later)."""
    time.sleep(max(0.0, moment - time.monotonic()))


class ExecutorContract:
    """Tests every executor must pass.

    Fixtures: ``executor`` (yours to give). Yours to override where your executor differs:
    ``worktree`` (a git checkout with ``score.sh`` committed, where commands run; by default a
    fresh one under ``tmp_path``), ``log_dir``, ``sandboxed`` (whether untrusted commands run in
    a sandbox that keeps them from writing outside the checkout; default False),
    ``output_cap`` (the bytes a log keeps from the start and from the end of each stream;
    default 1 MiB, ``[sandbox] output``'s default), ``hardware_fingerprint`` (what results must
    carry; default this machine's, for executors that run here).
    """

    # ---------------------------------------------------------------- fixtures

    @pytest.fixture
    def executor(self) -> Executor:
        raise NotImplementedError("a subclass of ExecutorContract gives an `executor` fixture")

    @pytest.fixture
    def worktree(self, tmp_path: Path) -> Path:
        folder = tmp_path / "worktree"
        folder.mkdir()
        (folder / "score.sh").write_text(SCORE_SCRIPT)
        identity = ["-c", "user.name=ratchet", "-c", "user.email=ratchet@example.invalid", "-c", "commit.gpgsign=false"]
        for args in (["init", "-q"], ["add", "score.sh"], [*identity, "commit", "-q", "-m", "harness"]):
            subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)
        return folder

    @pytest.fixture
    def log_dir(self, tmp_path: Path) -> Path:
        return tmp_path / "logs"

    @pytest.fixture
    def sandboxed(self) -> bool:
        return False

    @pytest.fixture
    def output_cap(self) -> int:
        return 1024 * 1024

    @pytest.fixture
    def hardware_fingerprint(self) -> str:
        return fingerprint(hardware_info())

    # ---------------------------------------------------------------- exit codes

    def test_exit_codes_and_output(self, executor: Executor, worktree: Path, log_dir: Path) -> None:
        job = _job(worktree, log_dir, "echo out; echo err >&2", "exit 3", "ratchet-contract-no-such-command")
        ok, failed, missing = executor.measure(job)
        assert ok.exit_code == 0 and ok.ok and not ok.timed_out and not ok.interrupted
        assert ok.read() == "out\n" and ok.read("stderr") == "err\n"
        assert failed.exit_code == 3 and not failed.ok and not failed.timed_out
        assert missing.exit_code == 127 and not missing.ok
        assert "not found" in missing.read("stderr")

    def test_stop_on_failure_runs_nothing_after_a_failure(self, executor: Executor, worktree: Path, log_dir: Path) -> None:
        results = executor.measure(_job(worktree, log_dir, "exit 1", "touch ran-after", stop_on_failure=True))
        assert [result.exit_code for result in results] == [1]
        assert not (worktree / "ran-after").exists()

    # ---------------------------------------------------------------- timeout, abandon, deadline

    def test_timeout_kills_the_whole_group(self, executor: Executor, worktree: Path, log_dir: Path) -> None:
        # A shell that ignores SIGTERM (as does the sleep it runs), a child that ignores it too, and a
        # grandchild: each would leave a witness file after the kill bound if it were still alive.
        late = 1.0 + KILL_SECONDS + 1.0
        command = (
            f"sh -c 'trap \"\" TERM; sleep {late}; touch late-child' & "
            f"sh -c 'sh -c \"sleep {late}; touch late-grandchild\" & wait' & "
            "trap '' TERM; sleep 300"
        )
        started = time.monotonic()
        (result,) = executor.measure(_job(worktree, log_dir, command, timeout=1.0))
        assert time.monotonic() - started < 1.0 + KILL_SECONDS
        assert result.timed_out and result.exit_code is None and not result.ok
        _wait_until(started + late + 0.5)
        assert not (worktree / "late-child").exists() and not (worktree / "late-grandchild").exists()

    def test_abandon_stops_a_running_command(self, executor: Executor, worktree: Path, log_dir: Path) -> None:
        started = time.monotonic()
        job = _job(worktree, log_dir, "(sleep 2; touch late-child) & touch started; sleep 300", "touch next", timeout=10)
        results = executor.measure(job, should_abandon=lambda: (worktree / "started").exists())
        assert len(results) == 1  # nothing after an abandoned command runs
        (result,) = results
        assert result.interrupted and not result.timed_out and result.exit_code is None  # stopped before its timeout
        assert not (worktree / "next").exists()
        _wait_until(started + 2.5)
        assert not (worktree / "late-child").exists()

    def test_deadline_ends_the_whole_job(self, executor: Executor, worktree: Path, log_dir: Path) -> None:
        started = time.monotonic()
        results = executor.measure(_job(worktree, log_dir, "sleep 300", "touch after", timeout=60, deadline=time.time() + 1.0))
        assert time.monotonic() - started < 1.0 + KILL_SECONDS
        assert len(results) == 1 and results[0].timed_out
        assert not (worktree / "after").exists()
        past = executor.measure(_job(worktree, log_dir, "sleep 5", "touch after", timeout=60, deadline=time.time() - 1.0))
        assert len(past) == 1 and past[0].timed_out  # past its deadline, a job's first command times out at once
        assert not (worktree / "after").exists()

    # ---------------------------------------------------------------- output and leftovers

    def test_output_is_capped(self, executor: Executor, worktree: Path, log_dir: Path, output_cap: int) -> None:
        command = f"echo FIRST; head -c {20 * output_cap} /dev/zero | tr '\\0' x; echo; echo LAST"
        (result,) = executor.measure(_job(worktree, log_dir, command))
        assert result.ok, result.tail()
        assert result.stdout_path.stat().st_size <= 2 * output_cap + 1024
        assert result.read().startswith("FIRST\n")
        assert result.tail(100).endswith("LAST")

    @pytest.mark.parametrize("how", ["background", "daemon"])
    def test_leftovers_are_killed_and_named(self, executor: Executor, worktree: Path, log_dir: Path, how: str) -> None:
        started = time.monotonic()
        left = "sh -c 'sleep 2; touch witness'"
        command = f"{'setsid ' if how == 'daemon' else ''}{left} & sleep 0.2; echo done"
        (result,) = executor.measure(_job(worktree, log_dir, command))
        assert result.exit_code == 0 and result.read() == "done\n"
        assert result.survivors and not result.ok  # it left something: not a clean end
        assert "running after it ended" in result.problem
        _wait_until(started + 2.5)
        assert not (worktree / "witness").exists()

    # ---------------------------------------------------------------- trusted scoring, provenance

    def test_trusted_score_step_runs_outside_the_sandbox(
        self,
        executor: Executor,
        worktree: Path,
        log_dir: Path,
        sandboxed: bool,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        monkeypatch.setenv("RATCHET_CONTRACT_API_KEY", "sk-contract-secret")
        monkeypatch.setenv("RATCHET_CONTRACT_OUTSIDE", str(outside))
        run = f"echo 42 > artifact; echo \"run sees: ${{RATCHET_CONTRACT_API_KEY:-nothing}}\"; touch {outside}/run-was-here 2>/dev/null; true"
        config = parse_config(
            '[scope]\nmutable = ["artifact"]\nharness = ["score.sh"]\n'
            f'[metric]\nrun = {_toml(run)}\nscore = "sh score.sh"\nregex = "score: (\\\\S+)"\ndirection = "maximize"\ntimeout = 30\n'
            '[proposer]\nkind = "command"\ncommand = "true"\n'
        )
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=worktree, check=True, capture_output=True, text=True).stdout.strip()
        sampler = _sampler(config, executor, worktree, log_dir, PristineHarness(worktree, head, ["score.sh"], tmp_path / "pristine"))
        assert sampler.candidate() == 42.0
        run_result, score_result = sampler.candidate_results
        # The score step: from the pristine copy, in ratchet's environment, able to write where it likes.
        assert (outside / "score-was-here").exists()
        assert "score sees: sk-contract-secret" in score_result.read()
        # The run step: contained; ratchet's secrets stay out, and a sandbox keeps it in the checkout.
        assert "run sees: nothing" in run_result.read(), run_result.read()
        assert (outside / "run-was-here").exists() is not sandboxed

    def test_results_carry_the_hardware_fingerprint(
        self, executor: Executor, worktree: Path, log_dir: Path, hardware_fingerprint: str
    ) -> None:
        results: list[CommandResult] = executor.measure(_job(worktree, log_dir, "echo 1", "exit 2"))
        results += executor.measure(_job(worktree, log_dir, "echo trusted", trusted=True, env=dict(os.environ)))
        assert len(results) == 3
        assert [result.fingerprint for result in results] == [hardware_fingerprint] * 3


def _toml(text: str) -> str:
    """``text`` as a TOML basic string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _sampler(config: Config, executor: Executor, worktree: Path, log_dir: Path, pristine: PristineHarness) -> Sampler:
    return Sampler(
        config=config,
        executor=executor,
        candidate_dir=worktree,
        champion_dir=lambda: worktree,
        log_dir=log_dir,
        stored_champion=math.nan,
        should_abandon=lambda: False,
        after_candidate=lambda: None,
        pristine=pristine,
    )


__all__ = ["ExecutorContract"]
