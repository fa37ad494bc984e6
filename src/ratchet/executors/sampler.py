"""Taking one sample of the metric: of the candidate (in its worktree) or of the champion.

A sample is one fresh run of the metric command (or, with trusted scoring, of the untrusted
``run`` step in the checkout followed by the trusted ``score`` step from a pristine copy of the
harness). Verdict policies ask for samples through :class:`Sampler`; they never see commands.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from ratchet.config import Config
from ratchet.executors import CommandSpec, Executor, Job, JobSource, WorkerLost
from ratchet.experiment import Verdict
from ratchet.measure.parse import MetricParseError, parse_number
from ratchet.measure.runner import CommandResult
from ratchet.workspace.git import git


@dataclass(frozen=True)
class Failure:
    verdict: Verdict
    reason: str


class MeasurementFailed(Exception):
    """A sample could not be taken; ``failure`` says what that makes the experiment."""

    def __init__(self, failure: Failure, result: CommandResult | None = None) -> None:
        super().__init__(failure.reason)
        self.failure = failure
        self.result = result


class PristineHarness:
    """A read-only copy of the harness files at the run's base commit, outside any worktree.

    The trusted score step runs from here; its fingerprint is checked before every use so that
    a candidate that wrote into it (without a sandbox it could) is caught, and the copy rebuilt.
    """

    def __init__(self, repo_root: Path, base_commit: str, paths: list[str], folder: Path) -> None:
        self.repo_root = repo_root
        self.base_commit = base_commit
        self.paths = paths
        self.folder = folder
        self._fingerprint: str | None = None

    def ensure(self) -> bool:
        """Make sure the copy is intact; return False if it had been changed (then rebuilt)."""
        if self._fingerprint is not None and self.folder.exists() and self._digest() == self._fingerprint:
            return True
        intact = self._fingerprint is None
        self._build()
        return intact

    def _build(self) -> None:
        if self.folder.exists():
            for root, dirs, files in os.walk(self.folder):
                os.chmod(root, 0o755)
                for name in files:
                    os.chmod(os.path.join(root, name), 0o644)
            import shutil

            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        if self.paths:
            archive = subprocess.run(
                ["git", "archive", "--format=tar", self.base_commit, "--", *self.paths],
                cwd=self.repo_root, capture_output=True, check=True,
            ).stdout  # fmt: skip
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(self.folder, filter="data")
        for root, dirs, files in os.walk(self.folder):
            for name in files:
                path = os.path.join(root, name)
                os.chmod(path, os.stat(path).st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        self._fingerprint = self._digest()

    def _digest(self) -> str:
        digest = hashlib.sha256()
        for root, dirs, files in sorted(os.walk(self.folder)):
            dirs.sort()
            for name in sorted(files):
                path = Path(root) / name
                digest.update(str(path.relative_to(self.folder)).encode() + b"\0")
                digest.update(path.read_bytes() if not path.is_symlink() else os.readlink(path).encode())
        return digest.hexdigest()


@dataclass
class Sampler:
    """Takes samples of the candidate and of the champion for one experiment."""

    config: Config
    executor: Executor
    candidate_dir: Path
    champion_dir: Callable[[], Path]  # made on first use: single mode never needs it
    log_dir: Path
    stored_champion: float
    should_abandon: Callable[[], bool]
    after_candidate: Callable[[], Failure | None]  # harness check after each candidate sample
    pristine: PristineHarness | None = None
    env: Mapping[str, str] | None = None
    # For an executor that measures in copies: what each side's directory holds.
    sources: Mapping[str, JobSource] | None = None
    candidate_results: list[CommandResult] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"candidate": 0, "champion": 0})
    # Where each sample ran, in order: side, node, devices, attempt (the ledger's record of it).
    placements: list[dict[str, object]] = field(default_factory=list)

    def candidate(self) -> float:
        value = self._sample("candidate", self.candidate_dir)
        failure = self.after_candidate()
        if failure is not None:
            raise MeasurementFailed(failure)
        return value

    def champion(self) -> float:
        return self._sample("champion", self.champion_dir())

    def _sample(self, side: str, directory: Path) -> float:
        self.counts[side] += 1
        n = self.counts[side]
        # The first candidate sample is logged as "metric" (what `show` and the dashboard read).
        name = "metric" if side == "candidate" and n == 1 else f"{'metric' if side == 'candidate' else 'champion'}-{n}"
        metric = self.config.metric
        timeout = self.config.metric_timeout()
        if not metric.trusted_scoring:
            assert metric.command is not None
            result = self._run(directory, CommandSpec(name, metric.command, timeout), side)
            return self._read(result, "metric command", side)
        assert metric.run is not None and metric.score is not None and self.pristine is not None
        run_result = self._run(directory, CommandSpec(f"{name}.run", metric.run, timeout), side)
        self._check_exit(run_result, "run step", side)
        if not self.pristine.ensure():
            raise MeasurementFailed(Failure(Verdict.TAMPERED, "the pristine harness copy was changed; it has been rebuilt"))
        env = dict(self.env if self.env is not None else os.environ)
        env["RATCHET_CANDIDATE"] = str(directory)
        score = self._measure(
            Job(worktree=self.pristine.folder, commands=(CommandSpec(f"{name}.score", metric.score, timeout),),
                log_dir=self.log_dir, env=env, trusted=True),
        )  # fmt: skip
        if side == "candidate":
            self.candidate_results.append(score)
        return self._read(score, "score step", side)

    def _run(self, directory: Path, spec: CommandSpec, side: str) -> CommandResult:
        source = self.sources.get(side) if self.sources is not None else None
        result = self._measure(Job(worktree=directory, commands=(spec,), log_dir=self.log_dir, env=self.env, source=source))
        self.placements.append({"side": side, "node": result.node, "devices": result.devices, "attempt": result.attempt})
        if side == "candidate":
            self.candidate_results.append(result)
        return result

    def _measure(self, job: Job) -> CommandResult:
        try:
            (result,) = self.executor.measure(job, should_abandon=self.should_abandon)
        except WorkerLost as exc:
            raise MeasurementFailed(Failure(Verdict.LOST, f"the worker measuring it was lost: {exc}")) from None
        return result

    def _check_exit(self, result: CommandResult, what: str, side: str) -> None:
        whose = "" if side == "candidate" else "the champion's re-measurement: "
        if result.interrupted:
            raise MeasurementFailed(Failure(Verdict.ABANDONED, "abandoned (Ctrl-C) during measurement"), result)
        if result.timed_out:
            raise MeasurementFailed(Failure(Verdict.TIMEOUT, f"{whose}the {what} ran past its timeout ({result.seconds:.1f}s)"), result)
        if not result.ok:
            raise MeasurementFailed(Failure(Verdict.CRASH, f"{whose}the {what} {result.problem}"), result)

    def _read(self, result: CommandResult, what: str, side: str) -> float:
        self._check_exit(result, what, side)
        try:
            return parse_number(result.read(self.config.metric.stream), self.config.metric)
        except MetricParseError as exc:
            whose = "" if side == "candidate" else "the champion's re-measurement: "
            raise MeasurementFailed(Failure(Verdict.INVALID, f"{whose}no metric: {exc}"), result) from None

    def last_candidate_result(self) -> CommandResult | None:
        return self.candidate_results[-1] if self.candidate_results else None


def harness_paths(repo_root: Path, commit: str, matches: Callable[[str], bool]) -> list[str]:
    out = git(repo_root, "ls-tree", "-r", "-z", "--name-only", "--full-tree", commit)
    return [path for path in out.split("\0") if path and matches(path)]
