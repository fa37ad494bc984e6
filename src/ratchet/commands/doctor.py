"""``ratchet doctor``: check the set-up before a run, each finding with a one-line fix.

git, the sandbox (bubblewrap, user namespaces, the process limit), the config, the scope and
the harness, the metric itself (run twice on the champion, to show that it parses and how much
it moves between two runs of the same code) and each guard (once on the champion). A command
that fails in the sandbox is run once more outside it: if it works there, the finding says
that the sandbox is the cause, and which hidden path or variable it names.

What a run checks before its baseline (:func:`ratchet.workspace.preflight.run_blockers`) is
the part of this that runs none of the project's commands.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

from ratchet.config import Config, ConfigError, GuardSection, load_config
from ratchet.executors import CommandSpec, Job, LocalExecutor
from ratchet.executors.sampler import (
    MeasurementFailed,
    PristineHarness,
    Sampler,
    harness_paths,
)
from ratchet.measure.containment import Containment
from ratchet.measure.limits import cgroup_support
from ratchet.measure.runner import CommandResult
from ratchet.measure.sandbox import INSTALL_HINT, SandboxError, probe
from ratchet.state import STATE_DIR
from ratchet.verdict import evaluate_guard
from ratchet.workspace.git import (
    GitError,
    exclude_state_dir,
    git,
    parse_porcelain,
    run_champion,
)
from ratchet.workspace.preflight import (
    NO_COMMIT,
    Finding,
    head_commit,
    names,
    run_blockers,
    scope_and_harness,
)
from ratchet.workspace.scope import Globs
from ratchet.workspace.worktree import reference_checkout

MIN_GIT = (2, 26)  # trailers with valueonly and separator, status --ignored=matching


def diagnose(root: Path, config_path: Path, report: Callable[[Finding], None] = lambda _: None) -> list[Finding]:
    """Every check, in order; ``report`` sees each as soon as it is known (the metric is slow)."""
    findings: list[Finding] = []

    def add(finding: Finding) -> None:
        findings.append(finding)
        report(finding)

    add(_git_version())
    for finding in _sandbox():
        add(finding)
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        add(Finding("fail", "config", str(exc), "fix the setting named above (every field is explained by `ratchet init`)"))
        return findings
    add(Finding("ok", "config", f"{config_path.name}: run {config.run.name!r}, metric {config.metric.name!r} ({config.metric.direction}), proposer {config.proposer.kind}"))
    if config.sandbox.mode == "required" and not probe().usable:
        add(Finding("fail", "sandbox mode", '[sandbox] mode = "required" but the sandbox cannot run here', INSTALL_HINT))
    head = head_commit(root)
    if head is None:
        add(NO_COMMIT)
        return findings
    scope_ok = True
    for finding in scope_and_harness(root, config, head):
        scope_ok = scope_ok and finding.status != "fail"
        add(finding)
    if scope_ok:
        _measurements(root, config, add)
        # doctor checks that the harness works; the probe checks that it cannot be fooled.
        add(Finding("ok", "red team", "`ratchet probe` tries a proposer's attacks on this harness (fake metric lines, harness rewrites, daemons, ...) and names the change that stops each"))
    return findings


def _git_version() -> Finding:
    try:
        text = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return Finding("fail", "git", "git is not installed", "install git 2.26 or newer")
    match = re.search(r"(\d+)\.(\d+)", text)
    version = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    if version < MIN_GIT:
        return Finding("fail", "git", text, f"install git {MIN_GIT[0]}.{MIN_GIT[1]} or newer")
    return Finding("ok", "git", text)


def _sandbox() -> list[Finding]:
    found = probe()
    out = []
    if found.usable:
        net = "no network unless allowed"
        out.append(Finding("ok", "sandbox", f"{found.version or 'bwrap'} at {found.bwrap}: read-only filesystem but the checkout, private /tmp, {net}, own PID namespace"))
    else:
        fix = INSTALL_HINT if found.bwrap is None else "enable user namespaces (sysctl kernel.unprivileged_userns_clone=1, or user.max_user_namespaces > 0)"
        if os.uname().sysname != "Linux":
            fix = "run untrusted proposers in a Linux VM or container; ratchet cannot sandbox them here"
        out.append(Finding("warn", "sandbox", found.reason, fix))
    out.append(_user_namespaces())
    mechanism = cgroup_support()
    if mechanism:
        out.append(Finding("ok", "process limit", f"[sandbox] processes, when set, is enforced with a {mechanism}"))
    else:
        out.append(Finding("warn", "process limit", "no pids cgroup and running as root: [sandbox] processes cannot be enforced", "run ratchet as a normal user, or where /sys/fs/cgroup can be written"))
    out.append(Finding("ok", "cleanup", "ratchet reaps orphaned processes (child subreaper)" if os.uname().sysname == "Linux" else "process groups only"))
    return out


def _user_namespaces() -> Finding:
    if os.uname().sysname != "Linux":
        return Finding("warn", "user namespaces", "not on Linux")
    values = {}
    for name, path in (("max_user_namespaces", "/proc/sys/user/max_user_namespaces"), ("unprivileged_userns_clone", "/proc/sys/kernel/unprivileged_userns_clone")):
        try:
            values[name] = int(Path(path).read_text().strip())
        except (OSError, ValueError):
            pass
    if os.getuid() == 0:
        return Finding("ok", "user namespaces", "not needed: running as root (bwrap drops root's capabilities inside)")
    if values.get("max_user_namespaces", 1) == 0 or values.get("unprivileged_userns_clone", 1) == 0:
        return Finding("fail", "user namespaces", f"disabled ({', '.join(f'{k}={v}' for k, v in values.items())})", "sudo sysctl -w kernel.unprivileged_userns_clone=1 user.max_user_namespaces=15000")
    return Finding("ok", "user namespaces", ", ".join(f"{k}={v}" for k, v in values.items()) or "available")


# When a command fails in the sandbox and works outside it, and its output names nothing.
_SANDBOX_FIX = (
    "the sandbox hides the host's /tmp and /dev/shm, cuts the network and lets the command write only in the "
    "checkout: name what it needs in [sandbox] readable, [sandbox] writable or [sandbox] network = true"
)


def _measurements(root: Path, config: Config, add: Callable[[Finding], None]) -> None:
    """Measure the champion twice and run each guard once, in a checkout of its own, the way a
    run would; then check that none of it wrote into the harness."""
    found = run_champion(root, config.run.name)
    champion, where = found.commit, f"{found.where} ({found.commit[:7]})"
    folder = root / STATE_DIR / "worktrees" / "doctor"
    log_dir = root / STATE_DIR / "doctor"
    try:
        containment = Containment.for_measurements(config, root)
    except SandboxError as exc:
        add(Finding("fail", "metric", str(exc), INSTALL_HINT))
        return
    try:
        exclude_state_dir(root)
        reference_checkout(root, folder, champion)
        add(_metric(root, config, containment, folder, log_dir, champion, where))
        for guard in config.guards:
            add(_guard(config, guard, containment, folder, log_dir, where))
        if config.scope.harness:
            add(_harness_left_alone(config, folder))
    except GitError as exc:
        add(Finding("fail", "metric", f"cannot check out {champion[:7]}: {exc}", "git worktree prune, then try again"))
    finally:
        git(root, "worktree", "remove", "--force", str(folder), check=False)
        shutil.rmtree(folder, ignore_errors=True)


def _sampler(config: Config, containment: Containment, root: Path, folder: Path, log_dir: Path, champion: str) -> Sampler:
    pristine = None
    if config.metric.trusted_scoring:
        paths = harness_paths(root, champion, Globs(config.scope.harness).matches)
        pristine = PristineHarness(root, champion, paths, log_dir / "pristine-harness")
    return Sampler(
        config=config, executor=LocalExecutor(containment), candidate_dir=folder, champion_dir=lambda: folder,
        log_dir=log_dir, stored_champion=float("nan"), should_abandon=lambda: False, after_candidate=lambda: None,
        pristine=pristine,
    )  # fmt: skip


def _metric(root: Path, config: Config, containment: Containment, folder: Path, log_dir: Path, champion: str, where: str) -> Finding:
    sampler = _sampler(config, containment, root, folder, log_dir, champion)
    values, seconds = [], []
    try:
        for _ in range(2):
            started = time.monotonic()
            values.append(sampler.candidate())
            seconds.append(time.monotonic() - started)
    except MeasurementFailed as exc:
        detail = exc.failure.reason + _last_words(exc.result, lines=1)
        if containment.sandbox is not None and exc.result is not None:
            # Is it the sandbox? The same command, limits and environment, outside it, once.
            outside = _sampler(config, containment.without_sandbox(), root, folder, log_dir / "outside-sandbox", champion)
            try:
                value = outside.candidate()
            except MeasurementFailed:
                pass
            else:
                detail = detail.replace(f"; {exc.result.hint}", "")  # the fix says it
                return Finding(
                    "fail", "metric",
                    f"on {where}, works outside the sandbox ({value:.6g}) and fails inside it: {detail}; logs in {log_dir}",
                    _sandbox_fix(exc.result),
                )  # fmt: skip
        return Finding("fail", "metric", f"on {where}: {detail}; logs in {log_dir}", "run the [metric] command by hand in a clean checkout and fix it (or its regex/json parser)")
    first, second = values
    spread = abs(second - first)
    relative = f" ({spread / abs(first):.2%})" if first else ""
    return Finding(
        "ok",
        "metric",
        f"{first:.6g} then {second:.6g} on {where}: differ by {spread:.3g}{relative}; "
        f"{seconds[0]:.2f}s and {seconds[1]:.2f}s (more noise figures: ratchet calibrate)",
    )


def _guard(config: Config, guard: GuardSection, containment: Containment, folder: Path, log_dir: Path, where: str) -> Finding:
    """Run one guard once on the champion: a guard that fails there fails every candidate."""
    what = f"guard {guard.name}"

    def run(containment: Containment, logs: Path) -> tuple[CommandResult, str]:
        spec = CommandSpec(f"guard-{guard.name}", guard.command, guard.timeout or config.budget.experiment_timeout)
        (result,) = LocalExecutor(containment).measure(Job(worktree=folder, commands=(spec,), log_dir=logs))
        verdict = evaluate_guard(guard, result, None)
        # The guard's reason carries the hint too; a finding says it once, where it belongs.
        reason = verdict.reason.removesuffix(f"; {result.hint}") if result.hint else verdict.reason
        return result, "" if verdict.passed else reason

    result, reason = run(containment, log_dir)
    if not reason:
        value = evaluate_guard(guard, result, None).value
        said = f" (value {value:g})" if value is not None else ""
        return Finding("ok", what, f"passes on {where}{said} in {result.seconds:.2f}s")
    if containment.sandbox is not None and result.exit_code not in (None, 0):
        _, outside = run(containment.without_sandbox(), log_dir / "outside-sandbox")
        if not outside:
            detail = f"on {where}, works outside the sandbox and fails inside it: {reason}{_last_words(result)}"
            return Finding("fail", what, detail, _sandbox_fix(result))
    detail = f"fails on {where}: {reason}{'; ' + result.hint if result.hint else ''}{_last_words(result)}"
    return Finding("fail", what, detail, f"run `{guard.command}` in a clean checkout of {where.split(' (')[0]} and fix it (logs in {log_dir})")


def _sandbox_fix(result: CommandResult | None) -> str:
    if result is not None and "[sandbox] readable" in result.hint:
        return "the sandbox hides a path the command reads: " + result.hint.split("the sandbox hides ", 1)[-1]
    if result is not None and result.hint:
        return result.hint
    return _SANDBOX_FIX


def _last_words(result: CommandResult | None, lines: int = 3, limit: int = 300) -> str:
    """The last lines the command printed, for the finding (its hint is said elsewhere)."""
    if result is None:
        return ""
    # Not the stream headers of tail(), nor a traceback's ^^^^ markers.
    kept = [line.strip() for line in result.tail(2000).splitlines() if line.strip().strip("^~ ") and not line.startswith("--- ")]
    tail = " | ".join(kept[-lines:])
    return f" — {tail[-limit:]}" if tail else ""


def _harness_left_alone(config: Config, folder: Path) -> Finding:
    """After the metric and the guards: a file they wrote into the harness would make a run
    discard every candidate as tampered."""
    harness = Globs(config.scope.harness)
    changes = parse_porcelain(git(folder, "--no-optional-locks", "status", "--porcelain", "-z", "--no-renames", "-uall", "--ignored=matching"))
    touched = [c.path for c in changes if c.status != "!!" and harness.matches(c.path)]
    if touched:
        return Finding(
            "fail", "harness",
            f"the metric or a guard writes {names(touched)} into the harness: a run would call every candidate tampered",
            "have the commands write outside [scope] harness (or list such build products in .gitignore)",
        )  # fmt: skip
    return Finding("ok", "harness", "the metric and the guards leave it as committed")


__all__ = ["Finding", "diagnose", "run_blockers"]
