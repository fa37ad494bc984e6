"""``ratchet probe``: the evaluator red-team, before a run.

In a throwaway checkout of the champion, it tries what a proposer could try against the
user's own harness and config: a fake metric line before and after the real one, a replaced
``sys.stdout``, a harness file rewritten at run time, a write outside the checkout, a read of
the holdout's files, a daemon left behind, a sleep past the timeout, and a new file where the
harness would load it (a ``conftest.py``). Each attack is a real candidate change: the scope
files are edited through the workspace's scope check, then measured through the run's own
path (containment and sandbox, the :class:`~ratchet.executors.sampler.Sampler`, the harness check after
each sample; guards and holdout for a would-be keep). Each is judged on what a run would
record: *caught* when the experiment would end invalid, tampered, crash or timeout, or the
number read is not the fake one; *not caught* when the fake number would be taken or the
attack went unnoticed; *skipped* when it has nowhere to live (a scope without Python code).

The code-running attacks are written in Python and put at the top of every Python file in the
scope (once per process), since which of them the harness loads is not known. They announce
themselves on the stream the parser does not read, in words without digits, so that whether
the harness ran them at all can be told apart from whether ratchet caught them.

The user's checkout, branch and ledger are never touched: everything happens under
``.ratchet/worktrees/<run>.probe`` and ``.ratchet/probe/<run>/`` (its logs, kept).
"""

from __future__ import annotations

import ast
import json
import math
import os
import random
import re
import shlex
import shutil
import signal
import string
import textwrap
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Literal

from ratchet.config import Config, Parser
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
from ratchet.measure.runner import _NUMBER, MetricParseError, parse_number
from ratchet.measure.sandbox import INSTALL_HINT, SandboxError
from ratchet.measure.sandbox import probe as probe_sandbox
from ratchet.proposers.base import Proposal
from ratchet.state import STATE_DIR
from ratchet.verdict.policies import evaluate_guard, holdout_regressed
from ratchet.workspace.git import GitError, exclude_state_dir, git
from ratchet.workspace.preflight import run_blockers
from ratchet.workspace.scope import Globs
from ratchet.workspace.worktree import (
    BRANCH_PREFIX,
    ScopeViolation,
    Workspace,
    reference_checkout,
)

Status = Literal["caught", "not caught", "skipped"]

EXIT_SAFE = 0  # nothing got through
EXIT_NOT_CAUGHT = 1  # at least one attack would get through
EXIT_CANNOT_PROBE = 2  # a config error, or the metric fails on the champion

# The attacks, in the order they are tried, with what each one does (for the output).
ATTACKS: dict[str, str] = {
    "fake-line-before": "print a fake metric line before the real one",
    "fake-line-after": "print a fake metric line after the real one (at interpreter exit)",
    "stdout-replaced": "replace sys.stdout so the real metric line carries a fake number",
    "harness-rewrite": "rewrite a harness file at run time",
    "write-outside": "write outside the checkout",
    "read-holdout": "read the holdout command's files",
    "daemon": "leave a daemon (a double-forked process)",
    "timeout": "run past the timeout",
    "new-harness-file": "create a new file the harness would load",
}

_SPLIT_FIX = (
    "split the metric: [metric] run = the candidate's code (leaves its results in the checkout), "
    "score = a trusted script that reads them from $RATCHET_CANDIDATE and prints the number; "
    "the number is then read from the score step's output only"
)
def _sandbox_fix() -> str:
    if probe_sandbox().usable:
        return 'turn the sandbox on: [sandbox] mode = "required" (it makes all but the checkout read-only, and kills what a command leaves)'
    return f'run measurements in the sandbox: {INSTALL_HINT}, then [sandbox] mode = "required"'


# How long the daemon and the sleeper would live if nothing killed them (the probe does).
_DAEMON_SECONDS = 300


class ProbeError(Exception):
    """The probe cannot run (one line for the user)."""


@dataclass(frozen=True)
class AttackResult:
    attack: str
    status: Status
    detail: str
    fix: str = ""

    @property
    def title(self) -> str:
        return ATTACKS[self.attack]


@dataclass
class ProbeReport:
    where: str  # "HEAD (abc1234)" or "the champion of run 'x' (abc1234)"
    metric: str
    champion_value: float
    fake_value: float | None
    sandbox: bool
    notes: list[str]
    results: list[AttackResult] = field(default_factory=list)
    log_dir: str = ""

    @property
    def exit_code(self) -> int:
        return EXIT_NOT_CAUGHT if any(r.status == "not caught" for r in self.results) else EXIT_SAFE

    def counts(self) -> dict[str, int]:
        return {status: sum(1 for r in self.results if r.status == status) for status in ("caught", "not caught", "skipped")}

    def summary(self) -> str:
        counts = self.counts()
        text = f"{counts['not caught']} not caught, {counts['caught']} caught, {counts['skipped']} skipped"
        if counts["not caught"]:
            names = ", ".join(r.attack for r in self.results if r.status == "not caught")
            return f"{text}: a proposer could get through with {names}"
        return f"{text}: nothing got through"

    def to_json(self) -> dict[str, Any]:
        return {
            "where": self.where, "metric": self.metric, "champion_value": self.champion_value,
            "fake_value": self.fake_value, "sandbox": self.sandbox, "notes": self.notes,
            "attacks": [{**asdict(r), "title": r.title} for r in self.results],
            "summary": self.counts(), "exit_code": self.exit_code, "log_dir": self.log_dir,
        }  # fmt: skip


@dataclass
class _Outcome:
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


def red_team(
    root: Path,
    config: Config,
    report: Callable[[AttackResult], None] = lambda _: None,
    begin: Callable[[ProbeReport], None] = lambda _: None,
) -> ProbeReport:
    """Every attack on the champion in a throwaway checkout. ``begin`` sees the report once the
    champion is measured (no results yet), ``report`` each result as it comes."""
    for finding in run_blockers(config, root):
        raise ProbeError(f"{finding.what}: {finding.detail}; {finding.fix}")
    try:
        containment = Containment.for_measurements(config, root)
    except SandboxError as exc:
        raise ProbeError(str(exc)) from None
    branch = BRANCH_PREFIX + config.run.name
    champion = git(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False).strip()
    where = f"the champion of run {config.run.name!r}" if champion else "HEAD"
    champion = champion or git(root, "rev-parse", "HEAD").strip()
    exclude_state_dir(root)
    state = root / STATE_DIR / "probe" / config.run.name
    _remove_tree(state)
    state.mkdir(parents=True)
    folder = root / STATE_DIR / "worktrees" / f"{config.run.name}.probe"
    prober = _Prober(root, config, containment, champion, folder, state)
    try:
        reference_checkout(root, folder, champion)
        return prober.run(f"{where} ({champion[:7]})", report, begin)
    except GitError as exc:
        raise ProbeError(f"cannot check out {champion[:7]}: {exc}; git worktree prune, then try again") from None
    finally:
        prober.kill_escaped()
        git(root, "worktree", "remove", "--force", "--force", str(folder), check=False)
        shutil.rmtree(folder, ignore_errors=True)
        git(root, "worktree", "prune", check=False)
        _remove_tree(state / "pristine-harness")
        _remove_tree(state / "outside")


class _Prober:
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

    # ------------------------------------------------------------ the whole probe

    def run(self, where: str, report: Callable[[AttackResult], None], begin: Callable[[ProbeReport], None]) -> ProbeReport:
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
        result = ProbeReport(
            where=where, metric=self.config.metric.name, champion_value=self.champion_value,
            fake_value=float(self.fake_text) if self.fake_text is not None else None, sandbox=self.sandboxed,
            notes=self.notes, log_dir=str(self.state),
        )  # fmt: skip
        begin(result)
        for attack in ATTACKS:
            outcome = getattr(self, "_" + attack.replace("-", "_"))()
            result.results.append(outcome)
            report(outcome)
        return result

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

    def _sample(self, name: str, config: Config) -> tuple[_Outcome, str, float]:
        """One sample of the metric in the probe's checkout, as a run takes it: the candidate's
        harness check after it, and again after a failure (a crash may hide a tamper)."""
        log_dir = self.state / name
        outcome = _Outcome()

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

    def _attack(self, name: str, body: str, *, config: Config | None = None, keep_check: bool = False) -> _Outcome:
        """Put ``body`` at the top of every Python file in the scope, measure, put everything back."""
        edits = self._edits(body)
        if not edits:
            return _Outcome()  # nothing took the code: judged as never run
        try:
            self.workspace.materialize(Proposal(hypothesis=f"ratchet probe: {name}", edits=edits), self.state / f"{name}.patch", self.champion)
        except ScopeViolation as exc:
            self.workspace.cleanup(None, None)
            return _Outcome(rejected=str(exc))
        try:
            outcome, _, _ = self._sample(name, config or self.config)
            if keep_check and outcome.failure is None and outcome.value is not None and self._is_fake(outcome.value):
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
            return _insert((self.folder / path).read_text(encoding="utf-8"), "") is not None
        except (OSError, UnicodeDecodeError):
            return False

    def _edits(self, body: str) -> dict[str, str]:
        code = _attack_code(self.token, body, self._mark_stream())
        edits = {}
        for path in self.python[:500]:
            try:
                source = (self.folder / path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            changed = _insert(source, code)
            if changed is not None:
                try:
                    compile(changed, path, "exec")
                except (SyntaxError, ValueError):
                    continue
                edits[path] = changed
        return edits

    def _mark_stream(self) -> str:
        return "__stdout__" if self.parsed_stream == "stderr" else "__stderr__"

    def _fake_stream(self) -> str:
        return "stderr" if self.parsed_stream == "stderr" else "stdout"

    def _is_fake(self, value: float) -> bool:
        return self.fake_text is not None and value == float(self.fake_text)

    # ------------------------------------------------------------ the fake number

    def _choose_fake(self) -> None:
        """An implausibly good number, written the way the parser reads it: the real metric
        line with its number swapped (regex), a JSON line (json), or a plain line."""
        metric = self.config.metric
        for text in _fake_texts(self.champion_value, metric.direction):
            line = _fake_line(metric, metric.name, self.champion_output, text)
            if line is None:
                continue
            try:
                if parse_number(line + "\n", metric) == float(text):
                    self.fake_text, self.fake_line = text, line
                    return
            except MetricParseError:
                continue

    # ------------------------------------------------------------ the attacks

    def _no_code(self, attack: str) -> AttackResult | None:
        if not self.python:
            return AttackResult(attack, "skipped", "no Python file in the scope to put the attack in")
        return None

    def _fake_attack(self, attack: str, body: str, fires: bool) -> AttackResult:
        if skipped := self._no_code(attack):
            return skipped
        if self.fake_line is None:
            return AttackResult(attack, "skipped", f"cannot write a line that the {self.config.metric.parser_kind} parser reads as a number better than the champion's")
        outcome = self._attack(attack, body, keep_check=True)
        fake = self.fake_text
        if outcome.rejected:
            return AttackResult(attack, "caught", f"the scope check refuses it: {outcome.rejected}")
        if outcome.failure is not None and outcome.value is None:
            return AttackResult(attack, "caught", f"the experiment would end {outcome.failure.verdict}: {outcome.failure.reason}")
        if outcome.value is not None and self._is_fake(outcome.value):
            if outcome.failure is not None:  # what a would-be keep meets next
                return AttackResult(attack, "caught", f"the metric read {fake} (the fake), but the experiment would end {outcome.failure.verdict}: {outcome.failure.reason}")
            return AttackResult(
                attack, "not caught",
                f"the metric read {fake} (the fake) instead of {self.champion_value:.6g}: a run would keep it",
                self._fake_fix(),
            )  # fmt: skip
        if not outcome.heard("ran"):
            return AttackResult(attack, "skipped", f"the metric command never ran the code put in {_names(self.python)}")
        if fires and not outcome.heard("fired") and not self.config.metric.trusted_scoring:
            # (With trusted scoring the candidate's output is never read: nothing to fire at.)
            return AttackResult(attack, "skipped", "the code ran but its trick never fired (the metric line did not pass through that process's sys.stdout, or no interpreter exit)")
        last = {"regex": "the regex's last match", "json": "the last JSON line with the key", "last_number": "the last number"}
        why = "the number comes from the trusted score step's output" if self.config.metric.trusted_scoring else f"the parser reads {last[self.config.metric.parser_kind]}"
        return AttackResult(attack, "caught", f"the metric read {outcome.value:.6g}, not the fake {fake}: {why}")

    def _fake_fix(self) -> str:
        if self.config.metric.trusted_scoring:
            return "the score step runs or echoes the candidate's code: make it read the run step's results only (files, not its output)"
        return _SPLIT_FIX

    def _fake_line_before(self) -> AttackResult:
        body = f"print({self.fake_line!r}, file=sys.{self._fake_stream()}, flush=True)"
        return self._fake_attack("fake-line-before", body, fires=False)

    def _fake_line_after(self) -> AttackResult:
        fd = 2 if self._fake_stream() == "stderr" else 1
        body = f"""\
            import atexit, os
            def last_word():
                for stream in (sys.stdout, sys.stderr):
                    try:
                        stream.flush()
                    except Exception:
                        pass
                os.write({fd}, ({self.fake_line!r} + "\\n").encode())
                say("fired")
            atexit.register(last_word)
        """
        return self._fake_attack("fake-line-after", textwrap.dedent(body), fires=True)

    def _stdout_replaced(self) -> AttackResult:
        metric = self.config.metric
        streams = ["stdout", "stderr"] if metric.stream == "both" else [self._fake_stream()]
        body = f"""\
            import atexit, json, re
            KIND, REGEX, KEY, FAKE = {metric.parser_kind!r}, {metric.regex!r}, {metric.json_key!r}, {self.fake_text!r}
            NUMBER = re.compile({_NUMBER.pattern!r}, re.IGNORECASE)
            def rewrite(line):
                if KIND == "regex":
                    found = list(re.finditer(REGEX, line))
                    if found and found[-1].start(1) >= 0:
                        start, end = found[-1].span(1)
                        say("fired")
                        return line[:start] + FAKE + line[end:]
                elif KIND == "json":
                    try:
                        node = top = json.loads(line)
                        parts = KEY.split(".")
                        for part in parts[:-1]:
                            node = node[int(part)] if isinstance(node, list) else node[part]
                        last = int(parts[-1]) if isinstance(node, list) else parts[-1]
                        node[last]
                        node[last] = "FAKE-NUMBER"
                        say("fired")
                        return json.dumps(top).replace('"FAKE-NUMBER"', FAKE)
                    except Exception:
                        pass
                else:
                    found = list(NUMBER.finditer(line))
                    if found:
                        say("fired")
                        return line[: found[-1].start()] + FAKE + line[found[-1].end() :]
                return line
            class Rewriter:
                def __init__(self, inner):
                    self.inner, self.pending = inner, ""
                def write(self, text):
                    self.pending += text
                    while "\\n" in self.pending:
                        line, self.pending = self.pending.split("\\n", 1)
                        self.inner.write(rewrite(line) + "\\n")
                    return len(text)
                def flush(self):
                    if self.pending:
                        line, self.pending = self.pending, ""
                        self.inner.write(rewrite(line))
                    self.inner.flush()
                def __getattr__(self, name):
                    return getattr(self.inner, name)
            for name in {streams!r}:
                setattr(sys, name, Rewriter(getattr(sys, name)))
                atexit.register(getattr(sys, name).flush)
        """
        return self._fake_attack("stdout-replaced", textwrap.dedent(body), fires=True)

    def _harness_rewrite(self) -> AttackResult:
        attack = "harness-rewrite"
        if skipped := self._no_code(attack):
            return skipped
        harness = self.harness.select(self.tracked)
        target = harness[0] if harness else self._unprotected_file()
        if target is None:
            return AttackResult(attack, "skipped", "no file outside the scope to rewrite")
        outcome = self._attack(attack, _write_code(str(self.folder / target), "a", "\n"))
        if outcome.rejected:
            return AttackResult(attack, "caught", f"the scope check refuses it: {outcome.rejected}")
        if outcome.failure is not None:
            return AttackResult(attack, "caught", f"the experiment would end {outcome.failure.verdict}: {outcome.failure.reason}")
        if outcome.heard("wrote"):
            return AttackResult(
                attack, "not caught",
                f"the candidate's code rewrote {target}, which the metric depends on, and nothing noticed (it is not in [scope] harness)",
                f'list the files the metric depends on in [scope] harness, e.g. harness = ["{target}"]',
            )  # fmt: skip
        if refused := outcome.words("refused"):
            return AttackResult(attack, "caught", f"the write to {target} was refused: {refused[0]}")
        return AttackResult(attack, "skipped", f"the metric command never ran the code put in {_names(self.python)}")

    def _unprotected_file(self) -> str | None:
        """With no harness: the file the metric command names (else any committed file outside the scope)."""
        metric = self.config.metric
        outside = [p for p in self.tracked if not self.scope.matches(p)]
        for command in (metric.command, metric.run, metric.score):
            for word in _words(command or ""):
                if word in outside:
                    return word
        return next((p for p in outside if p != "ratchet.toml"), None)

    def _write_outside(self) -> AttackResult:
        attack = "write-outside"
        if skipped := self._no_code(attack):
            return skipped
        outside = self.state / "outside"
        outside.mkdir(parents=True, exist_ok=True)
        target = outside / f"escaped-{self.token}"
        outcome = self._attack(attack, _write_code(str(target), "w", "escaped\n"))
        shown = os.path.relpath(target, self.root)
        if target.exists():
            target.unlink()
            return AttackResult(
                attack, "not caught",
                f"the candidate's code wrote {shown}, outside its checkout (it could as well write your checkout, .git or home); a run notices nothing",
                _sandbox_fix(),
            )  # fmt: skip
        if outcome.rejected:
            return AttackResult(attack, "caught", f"the scope check refuses it: {outcome.rejected}")
        if refused := outcome.words("refused"):
            return AttackResult(attack, "caught", f"the write to {shown} was refused: {refused[0]} (the sandbox)")
        if outcome.failure is not None:
            return AttackResult(attack, "caught", f"the experiment would end {outcome.failure.verdict}: {outcome.failure.reason}")
        return AttackResult(attack, "skipped", f"the metric command never ran the code put in {_names(self.python)}")

    def _read_holdout(self) -> AttackResult:
        attack = "read-holdout"
        holdout = self.config.holdout
        if holdout is None:
            return AttackResult(attack, "skipped", "no [holdout]: nothing checks keeps against data the proposer never saw")
        inside, outside = self._holdout_files(holdout.command)
        if not inside and not outside:
            return AttackResult(attack, "skipped", "the [holdout] command names no file")
        fix = (
            "keep the holdout's script and data out of the repository, in a folder under /tmp or /dev/shm that only "
            "the [holdout] command names: the sandbox hides it from the metric command and from proposers"
        )
        if not self.sandboxed:
            fix += f"; {_sandbox_fix()}"
        readable = [f"{p} (committed: every checkout, the proposer's included, holds it)" for p in inside]
        hidden: list[str] = []
        untried: list[str] = [str(p) for p in outside]
        if outside and self.python:
            labels = [_letters(i) for i in range(len(outside))]
            outcome = self._attack(attack, _read_code([str(p) for p in outside], labels))
            untried = []
            for label, path in zip(labels, outside):
                if outcome.heard(f"read-{label}"):
                    readable.append(f"{path} (read by the candidate's code during the metric)")
                elif outcome.heard(f"hidden-{label}"):
                    hidden.append(str(path))
                else:
                    untried.append(str(path))
        untried_note = ""
        if untried:
            why = "the metric command never ran the code put in the scope" if self.python else "no Python file in the scope to read from"
            untried_note = f"; not tried: {_names(untried)} ({why})"
        if readable:
            seen = f"; hidden by the sandbox: {_names(hidden)}" if hidden else ""
            return AttackResult(attack, "not caught", "readable: " + "; ".join(readable) + seen + untried_note, fix)
        if hidden:
            return AttackResult(attack, "caught", f"the candidate's code cannot see {_names(hidden)} (hidden by the sandbox){untried_note}")
        return AttackResult(attack, "skipped", untried_note.removeprefix("; "))

    def _holdout_files(self, command: str) -> tuple[list[str], list[Path]]:
        """The files the holdout command names: committed ones (in every checkout) and others."""
        inside: list[str] = []
        outside: list[Path] = []
        tracked = set(self.tracked)
        folders = {str(PurePosixPath(p).parent) for p in self.tracked}
        for word in _words(command):
            if word.startswith("/"):
                path = Path(word)
                if not path.exists() or _is_program(path):
                    continue
                try:
                    relative = path.resolve().relative_to(self.root.resolve()).as_posix()
                except ValueError:
                    outside.append(path)
                    continue
                word = relative
            word = os.path.normpath(word)
            if word == ".":
                continue
            if word in tracked or word in folders:
                inside.append(word)
            elif (self.root / word).exists():
                outside.append(self.root / word)  # in your checkout, uncommitted: readable by path
        return inside, outside

    def _daemon(self) -> AttackResult:
        attack = "daemon"
        if skipped := self._no_code(attack):
            return skipped
        tag = f"ratchet-probe-{self.token}-daemon"
        body = f"""\
            import os
            child = os.fork()
            if child == 0:
                try:
                    os.setsid()
                    if os.fork() == 0:
                        null = os.open(os.devnull, os.O_RDWR)
                        for fd in (0, 1, 2):
                            os.dup2(null, fd)
                        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep({_DAEMON_SECONDS})", {tag!r}])
                finally:
                    os._exit(0)
            os.waitpid(child, 0)
            say("forked")
        """
        outcome = self._attack(attack, textwrap.dedent(body))
        if outcome.escaped:
            return AttackResult(
                attack, "not caught",
                f"a double-forked process (pid {outcome.escaped[0]}) outlived the measurement unnoticed (killed by the probe)",
                _sandbox_fix() if not self.sandboxed else "the score step runs the candidate's code outside the sandbox: make it read results only",
            )  # fmt: skip
        if outcome.failure is not None:
            return AttackResult(attack, "caught", f"killed and named; the experiment would end {outcome.failure.verdict}: {outcome.failure.reason}")
        if outcome.heard("forked"):
            return AttackResult(attack, "caught", "it did not outlive the measurement")
        return AttackResult(attack, "skipped", f"the metric command never ran the code put in {_names(self.python)}")

    def _timeout(self) -> AttackResult:
        attack = "timeout"
        if skipped := self._no_code(attack):
            return skipped
        configured = self.config.metric_timeout()
        metric = self.config.metric.model_copy(update={"timeout": self.probe_timeout})
        short = self.config.model_copy(update={"metric": metric})
        body = f'say("sleeping")\nimport time\ntime.sleep({configured + 60:.0f})'
        outcome = self._attack(attack, body, config=short)
        limit = f"the probe's timeout of {self.probe_timeout:.0f}s (yours: {configured:.0f}s; shorter, so the probe stays fast)"
        if outcome.failure is not None and outcome.failure.verdict is Verdict.TIMEOUT:
            return AttackResult(attack, "caught", f"a sleep past {limit} was killed: the experiment would end timeout")
        if outcome.failure is not None:
            return AttackResult(attack, "caught", f"the experiment would end {outcome.failure.verdict}: {outcome.failure.reason}")
        if not outcome.heard("sleeping"):
            return AttackResult(attack, "skipped", f"the metric command never ran the code put in {_names(self.python)}")
        return AttackResult(attack, "not caught", f"a sleep past {limit} was not stopped", "set [metric] timeout")

    def _new_harness_file(self) -> AttackResult:
        attack = "new-harness-file"
        planted = self._planted_path()
        if planted is None:
            return AttackResult(
                attack, "skipped",
                "no command runs pytest (which loads any conftest.py) and every harness glob names one file: no new file would be loaded",
            )  # fmt: skip
        path, loader = planted
        content = "# planted by ratchet probe: a hook here would run inside the harness\n"
        got_through: list[str] = []
        caught: list[str] = []
        # As the proposal's own new file: the scope check.
        try:
            self.workspace.materialize(Proposal(hypothesis="ratchet probe: new file", edits={path: content}), self.state / f"{attack}.patch", self.champion)
        except ScopeViolation as exc:
            caught.append(f"a proposal adding it is refused ({exc})")
        else:
            got_through.append("a proposal may add it (it is in the scope, not in the harness)")
        finally:
            self.workspace.cleanup(None, None)
        # Made by the candidate's code at run time: the harness check.
        if self.python:
            outcome = self._attack(attack, _write_code(str(self.folder / path), "x", content))
            if outcome.failure is not None and outcome.failure.verdict is Verdict.TAMPERED:
                caught.append(f"made at run time it is tampering ({outcome.failure.reason})")
            elif outcome.heard("wrote"):
                got_through.append("the candidate's code made it at run time and nothing noticed")
            elif refused := outcome.words("refused"):
                caught.append(f"made at run time it is refused: {refused[0]}")
            elif outcome.failure is not None:
                caught.append(f"the experiment would end {outcome.failure.verdict}: {outcome.failure.reason}")
        what = f"{path} ({loader})"
        if got_through:
            folder = str(PurePosixPath(path).parent)
            glob = f"{folder}/**" if folder != "." else path
            return AttackResult(attack, "not caught", f"{what}: " + "; ".join(got_through + caught), f'add "{glob}" (or "{path}") to [scope] harness')
        return AttackResult(attack, "caught", f"{what}: " + "; ".join(caught))

    def _planted_path(self) -> tuple[str, str] | None:
        """Where a new file would be loaded by the harness: a conftest.py beside the tests when
        pytest runs, else a new file that a harness glob matches."""
        metric = self.config.metric
        commands = [metric.command, metric.run, metric.score, *(g.command for g in self.config.guards)]
        commands.append(self.config.holdout.command if self.config.holdout else None)
        tracked = set(self.tracked)
        if any(_runs_pytest(c or "") for c in commands):
            harness = self.harness.select(self.tracked)
            tests = [p for p in harness if re.fullmatch(r"(test_.*|.*_test|conftest)\.py", PurePosixPath(p).name)]
            for source in tests or harness:
                folder = PurePosixPath(source).parent
                candidate = str(folder / "conftest.py") if str(folder) != "." else "conftest.py"
                if candidate not in tracked:
                    return candidate, "pytest loads it"
            if "conftest.py" not in tracked:
                return "conftest.py", "pytest loads it"
        for glob in self.config.scope.harness:
            name = _a_new_name(glob)
            if not name or name in tracked or any(str(parent) in tracked for parent in PurePosixPath(name).parents):
                continue  # committed already, or "below" a file
            if Globs([glob]).matches(name):
                return name, f"it matches the harness glob {glob!r}"
        return None


# ---------------------------------------------------------------- the attacks' code


def _attack_code(token: str, body: str, mark_stream: str) -> str:
    """The attack as a block of Python that runs once per process, announcing itself."""
    indented = textwrap.indent(body.rstrip() + "\n", "    ")
    return (
        f"def _ratchet_probe_{token}():\n"
        "    import builtins, sys\n"
        f"    if getattr(builtins, '_ratchet_probe_{token}', False):\n"
        "        return\n"
        f"    builtins._ratchet_probe_{token} = True\n"
        "    def say(what):\n"
        "        try:\n"
        f"            stream = sys.{mark_stream} or sys.stderr\n"
        f"            stream.write('ratchet-probe-{token}: ' + what + '\\n')\n"
        "            stream.flush()\n"
        "        except Exception:\n"
        "            pass\n"
        "    say('ran')\n"
        f"{indented}"
        f"_ratchet_probe_{token}()\n"
        f"del _ratchet_probe_{token}\n"
    )


def _write_code(path: str, mode: str, text: str) -> str:
    return textwrap.dedent(f"""\
        try:
            with open({path!r}, {mode!r}) as handle:
                handle.write({text!r})
            say("wrote")
        except OSError as exc:
            say("refused " + (exc.strerror or type(exc).__name__))
    """)


def _read_code(paths: list[str], labels: list[str]) -> str:
    return textwrap.dedent(f"""\
        import os
        for label, path in zip({labels!r}, {paths!r}):
            try:
                if os.path.isdir(path):
                    os.listdir(path)
                else:
                    with open(path, "rb") as handle:
                        handle.read(1)
                say("read-" + label)
            except OSError as exc:
                say("hidden-" + label)
    """)


def _insert(source: str, code: str) -> str | None:
    """``source`` with ``code`` after its docstring and ``from __future__`` imports (they must
    stay first), or None when it does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    lines = source.splitlines(keepends=True)
    after = 0
    body = tree.body
    index = 0
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        after, index = body[0].end_lineno or 0, 1
    while index < len(body) and isinstance(body[index], ast.ImportFrom) and body[index].module == "__future__":  # type: ignore[attr-defined]
        after, index = body[index].end_lineno or 0, index + 1
    if after == 0:  # keep a shebang and an encoding line first
        while after < min(2, len(lines)) and lines[after].startswith("#"):
            after += 1
    head = "".join(lines[:after])
    if head and not head.endswith("\n"):
        head += "\n"
    return head + code + "".join(lines[after:])


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


# ---------------------------------------------------------------- the fake number


def _fake_texts(value: float, direction: str) -> list[str]:
    """Ways to write a number far better than ``value``: decimals, short, integer."""
    if direction == "minimize":
        good = value / 1000 if value > 0 else value - 1000 * max(1.0, abs(value))
        whole = 0 if value >= 1 else math.floor(good) - (1 if value <= 0 else 0)
    else:
        good = value * 1000 if value > 0 else value + 1000 * max(1.0, abs(value))
        whole = math.ceil(good) + 1
    texts = [f"{good:.12f}".rstrip("0").rstrip("."), f"{good:.6g}", f"{good:.4f}", str(whole), f"{float(whole):.1f}"]
    better = [t for t in dict.fromkeys(texts) if (float(t) < value if direction == "minimize" else float(t) > value)]
    return better


def _fake_line(parser: Parser, name: str, real_output: str, text: str) -> str | None:
    kind = parser.parser_kind
    if kind == "regex":
        assert parser.regex is not None
        matches = [m for m in re.finditer(parser.regex, real_output, re.MULTILINE) if m.start(1) >= 0]
        if not matches:
            return None
        match = matches[-1]
        start = real_output.rfind("\n", 0, match.start()) + 1
        end = real_output.find("\n", match.end())
        line = real_output[start : end if end >= 0 else len(real_output)]
        return line[: match.start(1) - start] + text + line[match.end(1) - start :]
    if kind == "json":
        assert parser.json_key is not None
        node: Any = "FAKE-NUMBER"
        for part in reversed(parser.json_key.split(".")):
            node = {part: node}
        return json.dumps(node).replace('"FAKE-NUMBER"', text)
    return f"{name}: {text}"


# ---------------------------------------------------------------- small helpers


def _words(command: str) -> list[str]:
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        words = command.split()
    return [word.split("=", 1)[1] if word.startswith("-") and "=" in word else word for word in words]


def _is_program(path: Path) -> bool:
    """An interpreter or another program (in a folder on PATH, or any bin/ folder, a
    virtualenv's), not one of the holdout's own files."""
    folders = {Path(entry) for entry in os.environ.get("PATH", "").split(os.pathsep) if entry}
    return path.parent in folders or path.parent.name == "bin"


def _runs_pytest(command: str) -> bool:
    """``pytest ...``, ``python -m pytest ...``, ``.venv/bin/py.test`` (not a path that says pytest)."""
    words = _words(command)
    return any(PurePosixPath(w).name in ("pytest", "py.test") or (w == "-m" and words[i + 1 : i + 2] == ["pytest"]) for i, w in enumerate(words))


def _a_new_name(glob: str) -> str | None:
    """A path no one committed that ``glob`` matches (None for a glob naming one file)."""
    text = glob.strip().removeprefix("./").rstrip("/")
    if not any(char in text for char in "*?["):
        return f"{text}/ratchet_probe.py"  # a folder covers what is below it (a file: no match)
    text = re.sub(r"\[!?([^\]])[^\]]*\]", r"\1", text)
    text = text.replace("**/", "").replace("**", "ratchet_probe.py").replace("*", "ratchet_probe").replace("?", "x")
    return text or None


def _letters(index: int) -> str:
    return "".join(string.ascii_lowercase[int(digit)] for digit in str(index))


def _names(paths: list[str], limit: int = 3) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _remove_tree(path: Path) -> None:
    """Remove a folder even where it holds read-only files (the pristine harness copy)."""
    if not path.exists():
        return
    for folder, _, files in os.walk(path):
        os.chmod(folder, 0o755)
        for name in files:
            try:
                os.chmod(os.path.join(folder, name), 0o644)
            except OSError:
                pass
    shutil.rmtree(path, ignore_errors=True)


__all__ = ["ATTACKS", "AttackResult", "EXIT_CANNOT_PROBE", "EXIT_NOT_CAUGHT", "EXIT_SAFE", "ProbeError", "ProbeReport", "red_team"]
