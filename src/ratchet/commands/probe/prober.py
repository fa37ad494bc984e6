"""Measuring one candidate in the probe's checkout, as a run would: the scope check, the
sampler with the harness check after each sample, the guards and the holdout for a would-be keep."""

from __future__ import annotations

import math
import os
import random
import signal
import string
import time
from dataclasses import dataclass, field
from pathlib import Path

from ratchet.commands.probe.findings import AttackResult, ProbeError, ProbeReport
from ratchet.commands.probe.payloads import attack_code, fake_line, fake_texts, insert
from ratchet.config import Config
from ratchet.executors import CommandSpec, Job, LocalExecutor
from ratchet.executors.sampler import (
    Failure,
    MeasurementFailed,
    PristineHarness,
    Sampler,
    harness_paths,
)
from ratchet.experiment import GuardResult, Verdict
from ratchet.measure.containment import Containment
from ratchet.measure.parse import MetricParseError, parse_number
from ratchet.proposers.base import Proposal
from ratchet.verdict import evaluate_guard, holdout_regressed
from ratchet.workspace.git import git
from ratchet.workspace.scope import Globs
from ratchet.workspace.worktree import ScopeViolation, Workspace


@dataclass
class Outcome:
    """One attack measured: what a run would have recorded of it."""

    rejected: str = ""  # the scope check refused the change before anything ran
    value: float | None = None
    failure: Failure | None = None
    said: list[str] = field(default_factory=list)  # what the attack's code announced
    escaped: list[int] = field(default_factory=list)  # pids of its processes still alive afterwards

    def heard(self, word: str) -> bool:
        return any(line == word or line.startswith(word + " ") for line in self.said)

    def words(self, word: str) -> list[str]:
        return [line[len(word) + 1 :] for line in self.said if line.startswith(word + " ")]


class Prober:
    """The probe's throwaway checkout of the champion, and how a candidate is measured in it:
    what the attacks (``fakes``, ``escapes``) call."""

    def __init__(self, root: Path, config: Config, containment: Containment, champion: str, folder: Path, state: Path) -> None:
        self.root = root
        self.config = config
        self.champion = champion
        self.folder = folder
        self.state = state
        self.scope = Globs(config.scope.mutable)
        self.harness = Globs(config.scope.harness)
        self.workspace = Workspace(root, f"{config.run.name}.probe", self.scope, self.harness)
        self.workspace.worktree = folder  # a detached checkout of the champion: no branch is made
        self.executor = LocalExecutor(containment)
        self.sandboxed = containment.sandbox is not None
        self.pristine: PristineHarness | None = None
        if config.metric.trusted_scoring:
            paths = harness_paths(root, champion, self.harness.matches)
            self.pristine = PristineHarness(root, champion, paths, state / "pristine-harness")
        # Letters only: the attacks' announcements must hold no number a parser could read.
        self.token = "".join(random.choice(string.ascii_lowercase) for _ in range(12))
        self.tracked = [p for p in git(root, "ls-tree", "-r", "-z", "--name-only", "--full-tree", champion).split("\0") if p]
        self.python: list[str] = []  # the scope's Python files that parse (read from the checkout)
        self.parsed_stream = config.metric.stream
        self.champion_value = math.nan
        self.champion_output = ""
        self.champion_seconds = 0.0
        self.champion_guards: dict[str, float] = {}
        self.champion_holdout: float | None = None
        self.fake_text: str | None = None
        self.fake_line: str | None = None
        self.notes: list[str] = []
        self.probe_timeout = config.metric_timeout()

    # ------------------------------------------------------------ the champion

    def start(self, where: str) -> ProbeReport:
        """Measure the champion and choose the fake number: the report, with no result yet."""
        self.python = [p for p in self.scope.select(self.tracked) if p.endswith(".py") and self._parses(p)]
        self._measure_champion(where)
        self._choose_fake()
        self.probe_timeout = min(self.config.metric_timeout(), max(3.0, 2 * self.champion_seconds + 2))
        if not self.sandboxed:
            self.notes.append("no sandbox: measurements run with your permissions")
        if not self.python:
            self.notes.append(
                "the scope holds no Python file: the attacks that run code at measurement time (written in "
                "Python) have nowhere to live"
            )
        return ProbeReport(
            where=where, metric=self.config.metric.name, champion_value=self.champion_value,
            fake_value=float(self.fake_text) if self.fake_text is not None else None, sandbox=self.sandboxed,
            notes=self.notes, log_dir=str(self.state),
        )  # fmt: skip

    def _measure_champion(self, where: str) -> None:
        outcome, output, seconds = self._sample("champion", self.config)
        if outcome.failure is not None:
            raise ProbeError(f"the metric fails on {where}: {outcome.failure.reason}; fix it first (`ratchet doctor` says how)")
        assert outcome.value is not None
        self.champion_value, self.champion_output, self.champion_seconds = outcome.value, output, seconds
        if self.python and (self.config.guards or self.config.holdout is not None):
            # A fake keep meets the guards and the holdout, compared with the champion's.
            guards = self._guards(self.state / "champion")
            failed = [g for g in guards if not g.passed]
            if failed:
                raise ProbeError(f"guard {failed[0].name} fails on {where} ({failed[0].reason}): a run would stop at its baseline; `ratchet doctor`")
            self.champion_guards = {g.name: g.value for g in guards if g.value is not None}
            if self.config.holdout is not None:
                value, problem = self._holdout(self.state / "champion")
                if value is None:
                    raise ProbeError(f"the holdout fails on {where}: {problem}; `ratchet doctor`")
                self.champion_holdout = value
        self.workspace.cleanup(None, None)

    def kill_escaped(self) -> None:
        for pid in _tagged_processes(self.token):
            _kill(pid)

    # ------------------------------------------------------------ measuring one candidate

    def _sample(self, name: str, config: Config) -> tuple[Outcome, str, float]:
        """One sample of the metric in the probe's checkout, as a run takes it: the candidate's
        harness check after it, and again after a failure (a crash may hide a tamper)."""
        log_dir = self.state / name
        outcome = Outcome()

        def after_candidate() -> Failure | None:
            tampered = self.workspace.leftovers().tampered(self.harness)
            if tampered:
                return Failure(Verdict.TAMPERED, f"harness changed during measurement: {', '.join(tampered)}")
            return None

        sampler = Sampler(
            config=config, executor=self.executor, candidate_dir=self.folder, champion_dir=lambda: self.folder,
            log_dir=log_dir, stored_champion=self.champion_value, should_abandon=lambda: False,
            after_candidate=after_candidate, pristine=self.pristine,
        )  # fmt: skip
        started = time.monotonic()
        try:
            outcome.value = sampler.candidate()
        except MeasurementFailed as exc:
            outcome.failure = exc.failure
            if exc.failure.verdict is not Verdict.TAMPERED and (tampered := self.workspace.leftovers().tampered(self.harness)):
                outcome.failure = Failure(Verdict.TAMPERED, f"harness changed during measurement: {', '.join(tampered)}")
        seconds = time.monotonic() - started
        last = sampler.last_candidate_result()
        output = last.read(config.metric.stream) if last is not None else ""
        outcome.said = _announcements(log_dir, self.token)
        outcome.escaped = _tagged_processes(self.token)
        return outcome, output, seconds

    def attack(self, name: str, body: str, *, config: Config | None = None, keep_check: bool = False) -> Outcome:
        """Put ``body`` at the top of every Python file in the scope, measure, put everything back."""
        edits = self._edits(body)
        if not edits:
            return Outcome()  # nothing took the code: judged as never run
        try:
            self.workspace.materialize(Proposal(hypothesis=f"ratchet probe: {name}", edits=edits), self.state / f"{name}.patch", self.champion)
        except ScopeViolation as exc:
            self.workspace.cleanup(None, None)
            return Outcome(rejected=str(exc))
        try:
            outcome, _, _ = self._sample(name, config or self.config)
            if keep_check and outcome.failure is None and outcome.value is not None and self.is_fake(outcome.value):
                outcome.failure = self._would_be_keep(name)
        finally:
            self.kill_escaped()
            self.workspace.cleanup(None, None)
        return outcome

    def _would_be_keep(self, name: str) -> Failure | None:
        """What stands between a fake number and a keep: the guards, then the holdout."""
        log_dir = self.state / name
        if self.config.guards:
            failed = [g for g in self._guards(log_dir) if not g.passed]
            if tampered := self.workspace.leftovers().tampered(self.harness):
                return Failure(Verdict.TAMPERED, f"harness changed during the guards: {', '.join(tampered)}")
            if failed:
                return Failure(Verdict.DISCARD, "guard " + ", ".join(f"{g.name} fails ({g.reason})" for g in failed))
        if self.config.holdout is not None and self.champion_holdout is not None:
            value, problem = self._holdout(log_dir)
            if value is None:
                return Failure(Verdict.DISCARD, f"the holdout failed: {problem}")
            overfit = holdout_regressed(self.config.holdout, self.champion_holdout, value)
            if overfit and self.config.holdout.action == "discard":
                return Failure(Verdict.OVERFIT, overfit)
        return None

    def _guards(self, log_dir: Path) -> list[GuardResult]:
        guards = self.config.guards
        timeout = self.config.budget.experiment_timeout
        job = Job(
            worktree=self.folder,
            commands=tuple(CommandSpec(f"guard-{g.name}", g.command, g.timeout or timeout) for g in guards),
            log_dir=log_dir, stop_on_failure=True,
        )  # fmt: skip
        results = self.executor.measure(job)
        return [evaluate_guard(g, results[i] if i < len(results) else None, self.champion_guards.get(g.name)) for i, g in enumerate(guards)]

    def _holdout(self, log_dir: Path) -> tuple[float | None, str]:
        spec = self.config.holdout
        assert spec is not None
        job = Job(worktree=self.folder, commands=(CommandSpec("holdout", spec.command, spec.timeout or self.config.budget.experiment_timeout),), log_dir=log_dir)
        (result,) = self.executor.measure(job)
        if not result.ok:
            return None, "timed out" if result.timed_out else result.problem
        try:
            return parse_number(result.read(spec.stream), spec), ""
        except MetricParseError as exc:
            return None, str(exc)

    def _parses(self, path: str) -> bool:
        try:
            return insert((self.folder / path).read_text(encoding="utf-8"), "") is not None
        except (OSError, UnicodeDecodeError):
            return False

    def _edits(self, body: str) -> dict[str, str]:
        code = attack_code(self.token, body, self._mark_stream())
        edits = {}
        for path in self.python[:500]:
            try:
                source = (self.folder / path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            changed = insert(source, code)
            if changed is not None:
                try:
                    compile(changed, path, "exec")
                except (SyntaxError, ValueError):
                    continue
                edits[path] = changed
        return edits

    def _mark_stream(self) -> str:
        return "__stdout__" if self.parsed_stream == "stderr" else "__stderr__"

    def fake_stream(self) -> str:
        return "stderr" if self.parsed_stream == "stderr" else "stdout"

    def is_fake(self, value: float) -> bool:
        return self.fake_text is not None and value == float(self.fake_text)

    # ------------------------------------------------------------ the fake number

    def _choose_fake(self) -> None:
        """An implausibly good number, written the way the parser reads it: the real metric
        line with its number swapped (regex), a JSON line (json), or a plain line."""
        metric = self.config.metric
        for text in fake_texts(self.champion_value, metric.direction):
            line = fake_line(metric, metric.name, self.champion_output, text)
            if line is None:
                continue
            try:
                if parse_number(line + "\n", metric) == float(text):
                    self.fake_text, self.fake_line = text, line
                    return
            except MetricParseError:
                continue

    def no_code(self, attack: str) -> AttackResult | None:
        """A skip for an attack that runs code, when the scope holds no Python file to put it in."""
        if not self.python:
            return AttackResult(attack, "skipped", "no Python file in the scope to put the attack in")
        return None


def _announcements(log_dir: Path, token: str) -> list[str]:
    """What the attack's code said, from every log of the sample (run step and score step)."""
    prefix = f"ratchet-probe-{token}: "
    said: list[str] = []
    if not log_dir.is_dir():
        return said
    for path in sorted(log_dir.iterdir()):
        if path.suffix not in (".stdout", ".stderr"):
            continue
        for line in path.read_text(errors="replace").splitlines():
            if prefix in line:
                said.append(line.split(prefix, 1)[1].strip())
    return said


def _tagged_processes(token: str) -> list[int]:
    """Processes whose command line carries the probe's daemon tag (alive, not zombies)."""
    tag = f"ratchet-probe-{token}-daemon".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if tag in (entry / "cmdline").read_bytes() and " Z " not in (entry / "stat").read_text().split(")", 1)[-1][:4]:
                found.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return found


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    try:
        os.waitpid(pid, 0)  # ratchet is a subreaper: an orphan killed here is ours to reap
    except ChildProcessError:
        pass
