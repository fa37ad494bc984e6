"""The attacks that try to get out of the harness: rewrite it, write outside the checkout,
read the holdout's files, leave a daemon, run past the timeout, plant a file the harness loads."""

from __future__ import annotations

import os
import re
import shlex
import string
import textwrap
from pathlib import Path, PurePosixPath

from ratchet.commands.probe.findings import AttackResult, names
from ratchet.commands.probe.payloads import read_code, write_code
from ratchet.commands.probe.prober import Prober
from ratchet.experiment import Verdict
from ratchet.measure.sandbox import INSTALL_HINT
from ratchet.measure.sandbox import probe as probe_sandbox
from ratchet.proposers.base import Proposal
from ratchet.workspace.scope import Globs
from ratchet.workspace.worktree import ScopeViolation


def _sandbox_fix() -> str:
    if probe_sandbox().usable:
        return 'turn the sandbox on: [sandbox] mode = "required" (it makes all but the checkout read-only, and kills what a command leaves)'
    return f'run measurements in the sandbox: {INSTALL_HINT}, then [sandbox] mode = "required"'


# How long the daemon and the sleeper would live if nothing killed them (the probe does).
_DAEMON_SECONDS = 300


def harness_rewrite(prober: Prober) -> AttackResult:
    attack = "harness-rewrite"
    if skipped := prober.no_code(attack):
        return skipped
    harness = prober.harness.select(prober.tracked)
    target = harness[0] if harness else unprotected_file(prober)
    if target is None:
        return AttackResult(attack, "skipped", "no file outside the scope to rewrite")
    outcome = prober.attack(attack, write_code(str(prober.folder / target), "a", "\n"))
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
    return AttackResult(attack, "skipped", f"the metric command never ran the code put in {names(prober.python)}")


def unprotected_file(prober: Prober) -> str | None:
    """With no harness: the file the metric command names (else any committed file outside the scope)."""
    metric = prober.config.metric
    outside = [p for p in prober.tracked if not prober.scope.matches(p)]
    for command in (metric.command, metric.run, metric.score):
        for word in _words(command or ""):
            if word in outside:
                return word
    return next((p for p in outside if p != "ratchet.toml"), None)


def write_outside(prober: Prober) -> AttackResult:
    attack = "write-outside"
    if skipped := prober.no_code(attack):
        return skipped
    outside = prober.state / "outside"
    outside.mkdir(parents=True, exist_ok=True)
    target = outside / f"escaped-{prober.token}"
    outcome = prober.attack(attack, write_code(str(target), "w", "escaped\n"))
    shown = os.path.relpath(target, prober.root)
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
    return AttackResult(attack, "skipped", f"the metric command never ran the code put in {names(prober.python)}")


def read_holdout(prober: Prober) -> AttackResult:
    attack = "read-holdout"
    holdout = prober.config.holdout
    if holdout is None:
        return AttackResult(attack, "skipped", "no [holdout]: nothing checks keeps against data the proposer never saw")
    inside, outside = holdout_files(prober, holdout.command)
    if not inside and not outside:
        return AttackResult(attack, "skipped", "the [holdout] command names no file")
    fix = (
        "keep the holdout's script and data out of the repository, in a folder under /tmp or /dev/shm that only "
        "the [holdout] command names: the sandbox hides it from the metric command and from proposers"
    )
    if not prober.sandboxed:
        fix += f"; {_sandbox_fix()}"
    readable = [f"{p} (committed: every checkout, the proposer's included, holds it)" for p in inside]
    hidden: list[str] = []
    untried: list[str] = [str(p) for p in outside]
    if outside and prober.python:
        labels = [_letters(i) for i in range(len(outside))]
        outcome = prober.attack(attack, read_code([str(p) for p in outside], labels))
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
        why = "the metric command never ran the code put in the scope" if prober.python else "no Python file in the scope to read from"
        untried_note = f"; not tried: {names(untried)} ({why})"
    if readable:
        seen = f"; hidden by the sandbox: {names(hidden)}" if hidden else ""
        return AttackResult(attack, "not caught", "readable: " + "; ".join(readable) + seen + untried_note, fix)
    if hidden:
        return AttackResult(attack, "caught", f"the candidate's code cannot see {names(hidden)} (hidden by the sandbox){untried_note}")
    return AttackResult(attack, "skipped", untried_note.removeprefix("; "))


def holdout_files(prober: Prober, command: str) -> tuple[list[str], list[Path]]:
    """The files the holdout command names: committed ones (in every checkout) and others."""
    inside: list[str] = []
    outside: list[Path] = []
    tracked = set(prober.tracked)
    folders = {str(PurePosixPath(p).parent) for p in prober.tracked}
    for word in _words(command):
        if word.startswith("/"):
            path = Path(word)
            if not path.exists() or _is_program(path):
                continue
            try:
                relative = path.resolve().relative_to(prober.root.resolve()).as_posix()
            except ValueError:
                outside.append(path)
                continue
            word = relative
        word = os.path.normpath(word)
        if word == ".":
            continue
        if word in tracked or word in folders:
            inside.append(word)
        elif (prober.root / word).exists():
            outside.append(prober.root / word)  # in your checkout, uncommitted: readable by path
    return inside, outside


def daemon(prober: Prober) -> AttackResult:
    attack = "daemon"
    if skipped := prober.no_code(attack):
        return skipped
    tag = f"ratchet-probe-{prober.token}-daemon"
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
    outcome = prober.attack(attack, textwrap.dedent(body))
    if outcome.escaped:
        return AttackResult(
            attack, "not caught",
            f"a double-forked process (pid {outcome.escaped[0]}) outlived the measurement unnoticed (killed by the probe)",
            _sandbox_fix() if not prober.sandboxed else "the score step runs the candidate's code outside the sandbox: make it read results only",
        )  # fmt: skip
    if outcome.failure is not None:
        return AttackResult(attack, "caught", f"killed and named; the experiment would end {outcome.failure.verdict}: {outcome.failure.reason}")
    if outcome.heard("forked"):
        return AttackResult(attack, "caught", "it did not outlive the measurement")
    return AttackResult(attack, "skipped", f"the metric command never ran the code put in {names(prober.python)}")


def timeout(prober: Prober) -> AttackResult:
    attack = "timeout"
    if skipped := prober.no_code(attack):
        return skipped
    configured = prober.config.metric_timeout()
    metric = prober.config.metric.model_copy(update={"timeout": prober.probe_timeout})
    short = prober.config.model_copy(update={"metric": metric})
    body = f'say("sleeping")\nimport time\ntime.sleep({configured + 60:.0f})'
    outcome = prober.attack(attack, body, config=short)
    limit = f"the probe's timeout of {prober.probe_timeout:.0f}s (yours: {configured:.0f}s; shorter, so the probe stays fast)"
    if outcome.failure is not None and outcome.failure.verdict is Verdict.TIMEOUT:
        return AttackResult(attack, "caught", f"a sleep past {limit} was killed: the experiment would end timeout")
    if outcome.failure is not None:
        return AttackResult(attack, "caught", f"the experiment would end {outcome.failure.verdict}: {outcome.failure.reason}")
    if not outcome.heard("sleeping"):
        return AttackResult(attack, "skipped", f"the metric command never ran the code put in {names(prober.python)}")
    return AttackResult(attack, "not caught", f"a sleep past {limit} was not stopped", "set [metric] timeout")


def new_harness_file(prober: Prober) -> AttackResult:
    attack = "new-harness-file"
    planted = planted_path(prober)
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
        prober.workspace.materialize(Proposal(hypothesis="ratchet probe: new file", edits={path: content}), prober.state / f"{attack}.patch", prober.champion)
    except ScopeViolation as exc:
        caught.append(f"a proposal adding it is refused ({exc})")
    else:
        got_through.append("a proposal may add it (it is in the scope, not in the harness)")
    finally:
        prober.workspace.cleanup(None, None)
    # Made by the candidate's code at run time: the harness check.
    if prober.python:
        outcome = prober.attack(attack, write_code(str(prober.folder / path), "x", content))
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


def planted_path(prober: Prober) -> tuple[str, str] | None:
    """Where a new file would be loaded by the harness: a conftest.py beside the tests when
    pytest runs, else a new file that a harness glob matches."""
    metric = prober.config.metric
    commands = [metric.command, metric.run, metric.score, *(g.command for g in prober.config.guards)]
    commands.append(prober.config.holdout.command if prober.config.holdout else None)
    tracked = set(prober.tracked)
    if any(_runs_pytest(c or "") for c in commands):
        harness = prober.harness.select(prober.tracked)
        tests = [p for p in harness if re.fullmatch(r"(test_.*|.*_test|conftest)\.py", PurePosixPath(p).name)]
        for source in tests or harness:
            folder = PurePosixPath(source).parent
            candidate = str(folder / "conftest.py") if str(folder) != "." else "conftest.py"
            if candidate not in tracked:
                return candidate, "pytest loads it"
        if "conftest.py" not in tracked:
            return "conftest.py", "pytest loads it"
    for glob in prober.config.scope.harness:
        name = _a_new_name(glob)
        if not name or name in tracked or any(str(parent) in tracked for parent in PurePosixPath(name).parents):
            continue  # committed already, or "below" a file
        if Globs([glob]).matches(name):
            return name, f"it matches the harness glob {glob!r}"
    return None


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
