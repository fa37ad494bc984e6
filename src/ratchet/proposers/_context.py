"""What a thinking proposer (llm, agent, hybrid) is shown, gathered and bounded.

Every part has a bound, so that a prompt does not grow with the run: the scope's files (a
character cap, or a clear error), the history (the last ``history_rows`` rows plus a one-line
summary of older ones, each hypothesis cut short), the last failure's output tail and each
context command's output (``max_output_chars``). Holdout results, kept in an experiment's
``extra``, are never read here: the proposer must not see them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.config import ContextCommand
from ratchet.experiment import Experiment, Verdict
from ratchet.measure.runner import run_command
from ratchet.proposers.base import ProposalContext
from ratchet.proposers.brief import IN_FLIGHT_ROWS, RULES, in_flight

if TYPE_CHECKING:
    from ratchet.measure.containment import Containment

HYPOTHESIS_CHARS = 120
REASON_CHARS = 80
NEAR_MISSES = 3
FILE_OVERHEAD = 24  # a file's heading and fence in the prompt
# The longest history row: id, verdict, metric, change, hypothesis and reason, with separators.
ROW_CHARS = 60 + HYPOTHESIS_CHARS + REASON_CHARS
# The bundled templates' own text (instructions, headings), with room to spare.
TEMPLATE_CHARS = 4000


class ScopeTooLarge(ValueError):
    """The scope's files do not fit in ``max_scope_chars``."""


@dataclass(frozen=True)
class ScopeFile:
    path: str
    text: str | None  # None: not shown (binary, unreadable, or over the cap for an agent)
    lines: int
    note: str = ""


@dataclass(frozen=True)
class HistoryRow:
    id: int
    verdict: str
    metric: str
    delta: str
    hypothesis: str


@dataclass(frozen=True)
class InFlightRow:
    """An experiment being measured while this one is proposed (several workers)."""

    id: int
    hypothesis: str


@dataclass(frozen=True)
class ContextOutput:
    name: str
    command: str
    exit_code: int | None
    output: str


# ---------------------------------------------------------------- scope files


def read_scope(worktree: Path, paths: Sequence[str], max_chars: int, *, strict: bool) -> list[ScopeFile]:
    """The scope's files at the champion, as text.

    Over ``max_chars`` in total: ``strict`` (an LLM needs the text) raises ScopeTooLarge naming
    the biggest files; otherwise (an agent can open files itself) the files are listed without
    their text.
    """
    files: list[ScopeFile] = []
    total = 0
    for path in paths:
        try:
            data = (worktree / path).read_bytes()
        except OSError as exc:
            files.append(ScopeFile(path, None, 0, f"unreadable: {exc.strerror}"))
            continue
        if b"\0" in data[:8192]:
            files.append(ScopeFile(path, None, 0, f"binary, {len(data)} bytes"))
            continue
        text = data.decode("utf-8", errors="replace")
        total += len(text) + len(path) + FILE_OVERHEAD
        files.append(ScopeFile(path, text, text.count("\n") + (0 if text.endswith("\n") or not text else 1)))
    if total > max_chars:
        if strict:
            biggest = sorted((f for f in files if f.text is not None), key=lambda f: -len(f.text or ""))[:3]
            names = ", ".join(f"{f.path} {len(f.text or ''):,}" for f in biggest)
            count = f"{len(files)} file{'s' if len(files) != 1 else ''}"
            raise ScopeTooLarge(
                f"the scope is too large to send: {total:,} characters with headings in {count} (largest: {names}) "
                f"exceeds [proposer] max_scope_chars = {max_chars:,}; narrow [scope] mutable or raise the cap"
            )
        files = [ScopeFile(f.path, None, f.lines, "not shown: the scope is over max_scope_chars; open it yourself") for f in files]
    return files


# ---------------------------------------------------------------- history


def _done(history: Sequence[Experiment]) -> list[Experiment]:
    return [e for e in history if e.verdict is not None and e.verdict is not Verdict.ABANDONED]


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _delta(value: float, reference: float | None) -> str:
    if reference is None:
        return ""
    if reference:
        return f"{(value - reference) / abs(reference):+.2%}"
    return f"{value - reference:+.4g}"


def history_rows(history: Sequence[Experiment], rows: int) -> tuple[list[HistoryRow], str]:
    """The last ``rows`` experiments (metric delta against the champion of their time), and a
    one-line summary of the older ones (empty when none were left out)."""
    done = _done(history)
    table: list[HistoryRow] = []
    champion: float | None = None
    for experiment in done:
        metric, delta = "", ""
        if experiment.metric is not None and experiment.verdict in (Verdict.KEEP, Verdict.DISCARD, Verdict.BASELINE):
            metric = f"{experiment.metric:.6g}"
            if experiment.verdict is not Verdict.BASELINE:
                delta = _delta(experiment.metric, champion)
        if experiment.verdict in (Verdict.KEEP, Verdict.BASELINE) and experiment.metric is not None:
            champion = experiment.metric
        hypothesis = _short(experiment.hypothesis, HYPOTHESIS_CHARS) or "-"
        if experiment.verdict not in (Verdict.KEEP, Verdict.DISCARD, Verdict.BASELINE) and experiment.reason:
            hypothesis += " — " + _short(experiment.reason, REASON_CHARS)
        table.append(HistoryRow(experiment.id, str(experiment.verdict), metric, delta, hypothesis.replace("|", "/")))
    older = table[:-rows] if len(table) > rows else []
    summary = ""
    if older:
        counts: dict[str, int] = {}
        for row in older:
            counts[row.verdict] = counts.get(row.verdict, 0) + 1
        summary = f"{len(older)} older experiments not shown: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    return table[-rows:], summary


def since_last_keep(history: Sequence[Experiment]) -> int:
    """Experiments finished since the champion last changed."""
    count = 0
    for experiment in reversed(_done(history)):
        if experiment.verdict in (Verdict.KEEP, Verdict.BASELINE):
            break
        count += 1
    return count


def near_misses(history: Sequence[Experiment], direction: str, n: int = NEAR_MISSES) -> list[HistoryRow]:
    """The best discards since the last keep: ideas worth combining when the run is stuck."""
    recent: list[Experiment] = []
    for experiment in reversed(_done(history)):
        if experiment.verdict in (Verdict.KEEP, Verdict.BASELINE):
            break
        if experiment.verdict is Verdict.DISCARD and experiment.metric is not None:
            recent.append(experiment)
    recent.sort(key=lambda e: e.metric if direction == "minimize" else -(e.metric or 0.0))  # type: ignore[arg-type,return-value]
    return [HistoryRow(e.id, "discard", f"{e.metric:.6g}", "", _short(e.hypothesis, HYPOTHESIS_CHARS)) for e in recent[:n]]


def last_failure(history: Sequence[Experiment], max_chars: int) -> dict[str, Any] | None:
    """The most recent crash, timeout or failed measurement, with the tail of its output."""
    for experiment in reversed(_done(history)):
        if experiment.verdict in (Verdict.CRASH, Verdict.TIMEOUT) or (
            experiment.verdict is Verdict.INVALID and experiment.output_tail
        ):
            tail = experiment.output_tail.strip()
            if len(tail) > max_chars:
                tail = "…" + tail[-max_chars:]
            return {
                "id": experiment.id,
                "verdict": str(experiment.verdict),
                "hypothesis": _short(experiment.hypothesis, HYPOTHESIS_CHARS),
                "reason": _short(experiment.reason, 300),
                "tail": tail,
            }
    return None


# ---------------------------------------------------------------- context commands


def _head(worktree: Path) -> str:
    result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=worktree, capture_output=True, text=True, check=False)
    return result.stdout.strip()


def _status(worktree: Path) -> set[str]:
    result = subprocess.run(
        ["git", "status", "--porcelain", "-z", "--untracked-files=all"], cwd=worktree, capture_output=True, text=True, check=False
    )
    return {entry for entry in result.stdout.split("\0") if entry}


def _restore(worktree: Path, before: set[str]) -> None:
    """Undo what a context command left in the champion checkout (a profile file, a cache), and
    only that: entries of ``git status`` that were not there before it ran."""
    for entry in _status(worktree) - before:
        code, path = entry[:2], entry[3:]
        target = worktree / path
        if code == "??":
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)
        else:
            subprocess.run(["git", "checkout", "-q", "--", path], cwd=worktree, capture_output=True, check=False)


class OwnLocks:
    """Objects that hold locks (named in ``_locks``) and are copied or pickled: a copy gets locks of its own."""

    _locks: tuple[str, ...] = ()

    def __getstate__(self) -> dict[str, Any]:
        return {name: value for name, value in self.__dict__.items() if name not in self._locks}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        for name in self._locks:
            setattr(self, name, threading.Lock())


class ContextRunner(OwnLocks):
    """Runs the configured context commands on the champion, once per champion commit.

    The champion is code a proposer wrote, so the commands run the way measurements do: with
    ``containment`` (the sandbox and the environment allowlist) when given; without it, at least
    without the loop's secrets (``hidden_env``: the API key's variable).
    """

    _locks = ("_lock",)

    def __init__(
        self,
        commands: Sequence[ContextCommand],
        max_chars: int,
        hidden_env: Sequence[str] = (),
        containment: Containment | None = None,
    ) -> None:
        self.commands = list(commands)
        self.max_chars = max_chars
        self.hidden_env = set(hidden_env)
        self.containment = containment
        self._cache: tuple[str, list[ContextOutput]] | None = None
        # Several workers proposing on one champion: the first runs the commands, the others
        # wait for its outputs instead of running them again in their own checkouts.
        self._lock = threading.Lock()

    def outputs(self, context: ProposalContext) -> list[ContextOutput]:
        if not self.commands:
            return []
        head = _head(context.worktree)
        with self._lock:
            if self._cache is not None and self._cache[0] == head:
                return self._cache[1]
            outputs = self._run(context)
            self._cache = (head, outputs)
            return outputs

    def _run(self, context: ProposalContext) -> list[ContextOutput]:
        env = {key: value for key, value in os.environ.items() if key not in self.hidden_env}
        outputs = []
        before = _status(context.worktree)
        try:
            for command in self.commands:
                log_prefix = context.log_dir / f"context-{_safe(command.name)}"
                if self.containment is not None:
                    result = self.containment.run(
                        command.command, cwd=context.worktree, timeout=command.timeout, log_prefix=log_prefix
                    )
                else:
                    result = run_command(
                        command.command, cwd=context.worktree, timeout=command.timeout, log_prefix=log_prefix, env=env
                    )
                text = result.read("both").strip()
                if result.timed_out:
                    text += f"\n(timed out after {command.timeout:g}s)"
                if len(text) > self.max_chars:
                    text = "…" + text[-self.max_chars :]
                outputs.append(ContextOutput(command.name, command.command, result.exit_code, text))
        finally:
            _restore(context.worktree, before)
        return outputs


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:40] or "command"


# ---------------------------------------------------------------- all together


def prompt_variables(
    context: ProposalContext,
    *,
    files: list[ScopeFile],
    history_rows_limit: int,
    max_output_chars: int,
    plateau_after: int,
    context_outputs: list[ContextOutput],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The variables every template sees (documented in the README's Proposers section)."""
    rows, omitted = history_rows(context.history, history_rows_limit)
    running, running_omitted = in_flight(context, HYPOTHESIS_CHARS)
    stuck = since_last_keep(context.history)
    kept = sum(1 for e in context.history if e.verdict is Verdict.KEEP)
    return {
        "brief": context.brief.strip(),
        "run": context.run,
        "experiment": context.iteration,
        "metric": context.metric_name,
        "direction": context.direction,
        "better": "lower" if context.direction == "minimize" else "higher",
        "champion": _number(context.champion_metric),
        "baseline": _number(context.baseline_metric),
        "kept": kept,
        "scope": list(context.scope),
        "files": files,
        "history": rows,
        "history_omitted": omitted,
        # The other experiments in flight (several workers), so that none is proposed twice.
        "in_flight": [InFlightRow(id, hypothesis) for id, hypothesis in running],
        "in_flight_omitted": running_omitted,
        "last_failure": last_failure(context.history, max_output_chars),
        # Set when the loop asks to mend a candidate that failed a guard (`verdict.rework`).
        "rework": (context.rework or "")[-max_output_chars:] or None,
        "context_outputs": context_outputs,
        "since_last_keep": stuck,
        "plateau": stuck >= plateau_after,
        "near_misses": near_misses(context.history, context.direction) if stuck >= plateau_after else [],
        "rules": RULES,
        **(extra or {}),
    }


def prompt_cap(
    *, brief: str, max_scope_chars: int, history_rows: int, max_output_chars: int, context_commands: Sequence[ContextCommand]
) -> int:
    """The most characters a prompt made with the bundled templates can hold, whatever the run's
    length: every part is bounded (the scope by its cap, the history by its rows, outputs by theirs)."""
    commands = sum(len(c.name) + len(c.command) + max_output_chars + 100 for c in context_commands)
    failure = HYPOTHESIS_CHARS + 300 + max_output_chars + 100
    near = NEAR_MISSES * (HYPOTHESIS_CHARS + 60)
    running = IN_FLIGHT_ROWS * (HYPOTHESIS_CHARS + 20) + 100  # however many workers there are
    return TEMPLATE_CHARS + len(brief) + max_scope_chars + history_rows * ROW_CHARS + 200 + failure + commands + near + running


def _number(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.6g}"
