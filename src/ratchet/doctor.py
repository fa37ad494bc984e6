"""``ratchet doctor``: check the set-up before a run, each finding with a one-line fix.

git, the sandbox (bubblewrap, user namespaces, the process limit), the config, the scope and
the harness, and the metric itself: run twice on the champion, to show that it parses and how
much it moves between two runs of the same code.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ratchet.config import Config, ConfigError, load_config
from ratchet.containment import Containment
from ratchet.executors import LocalExecutor
from ratchet.limits import cgroup_support
from ratchet.sampling import MeasurementFailed, PristineHarness, Sampler, harness_paths
from ratchet.sandbox import INSTALL_HINT, SandboxError, probe
from ratchet.scope import Globs
from ratchet.workspace import (
    BRANCH_PREFIX,
    STATE_DIR,
    GitError,
    exclude_state_dir,
    git,
    parse_porcelain,
    reference_checkout,
)

MIN_GIT = (2, 26)  # trailers with valueonly and separator, status --ignored=matching


@dataclass(frozen=True)
class Finding:
    status: str  # "ok", "warn", "fail"
    what: str
    detail: str
    fix: str = ""


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
    head = _head(root)
    if head is None:
        add(Finding("fail", "commits", "the repository has no commit yet", "commit your project: git add -A && git commit -m start"))
        return findings
    scope_ok = True
    for finding in _scope_and_harness(root, config, head):
        scope_ok = scope_ok and finding.status != "fail"
        add(finding)
    if scope_ok:
        add(_metric(root, config))
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


def _head(root: Path) -> str | None:
    try:
        return git(root, "rev-parse", "--verify", "HEAD").strip()
    except GitError:
        return None


def _scope_and_harness(root: Path, config: Config, head: str) -> list[Finding]:
    files = [path for path in git(root, "ls-tree", "-r", "-z", "--name-only", "--full-tree", head).split("\0") if path]
    scope, harness = Globs(config.scope.mutable), Globs(config.scope.harness)
    in_scope = scope.select(files)
    out = []
    if not in_scope:
        out.append(Finding("fail", "scope", f"{config.scope.mutable} matches no file committed at HEAD ({head[:7]})", "fix [scope] mutable (globs are relative to the repository root; ** spans folders)"))
    else:
        out.append(Finding("ok", "scope", f"{len(in_scope)} file{'s' if len(in_scope) > 1 else ''}: {_names(in_scope)}"))
    both = [path for path in in_scope if harness.matches(path)]
    if both:
        out.append(Finding("fail", "scope", f"{both[0]} is in both the mutable scope and the harness", "remove it from one of [scope] mutable and [scope] harness"))
    in_harness = harness.select(files)
    if not config.scope.harness:
        out.append(Finding("warn", "harness", "no [scope] harness: nothing checks that a candidate leaves the measurement alone", "list the files the metric depends on in [scope] harness"))
    elif not in_harness:
        out.append(Finding("fail", "harness", f"{config.scope.harness} matches no committed file", "commit the harness files, or fix [scope] harness"))
    else:
        changes = parse_porcelain(git(root, "--no-optional-locks", "status", "--porcelain", "-z", "--no-renames", "-uall"))
        dirty = [c.path for c in changes if harness.matches(c.path)]
        if dirty:
            out.append(Finding("fail", "harness", f"not committed: {_names(dirty)} (a run measures HEAD, without them)", f"git add {' '.join(dirty[:5])} && git commit"))
        else:
            out.append(Finding("ok", "harness", f"{len(in_harness)} file{'s' if len(in_harness) > 1 else ''} committed: {_names(in_harness)}"))
    return out


def _names(paths: list[str], limit: int = 4) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _metric(root: Path, config: Config) -> Finding:
    """Measure the champion twice, in a checkout of its own, the way a run would."""
    branch = BRANCH_PREFIX + config.run.name
    champion = git(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False).strip()
    where = f"the champion of run {config.run.name!r}" if champion else "HEAD"
    champion = champion or git(root, "rev-parse", "HEAD").strip()
    folder = root / STATE_DIR / "worktrees" / "doctor"
    log_dir = root / STATE_DIR / "doctor"
    try:
        executor = LocalExecutor(Containment.for_measurements(config, root))
    except SandboxError as exc:
        return Finding("fail", "metric", str(exc), INSTALL_HINT)
    try:
        exclude_state_dir(root)
        reference_checkout(root, folder, champion)
        pristine = None
        if config.metric.trusted_scoring:
            paths = harness_paths(root, champion, Globs(config.scope.harness).matches)
            pristine = PristineHarness(root, champion, paths, log_dir / "pristine-harness")
        sampler = Sampler(
            config=config, executor=executor, candidate_dir=folder, champion_dir=lambda: folder, log_dir=log_dir,
            stored_champion=float("nan"), should_abandon=lambda: False, after_candidate=lambda: None, pristine=pristine,
        )  # fmt: skip
        values, seconds = [], []
        for _ in range(2):
            started = time.monotonic()
            values.append(sampler.candidate())
            seconds.append(time.monotonic() - started)
    except MeasurementFailed as exc:
        result = exc.result
        tail = result.tail(300).strip().splitlines()[-1:] if result is not None else []
        detail = exc.failure.reason + (f" — {tail[0]}" if tail else "")
        return Finding("fail", "metric", f"on {where} ({champion[:7]}): {detail}; logs in {log_dir}", "run the [metric] command by hand in a clean checkout and fix it (or its regex/json parser)")
    except GitError as exc:
        return Finding("fail", "metric", f"cannot check out {champion[:7]}: {exc}", "git worktree prune, then try again")
    finally:
        git(root, "worktree", "remove", "--force", str(folder), check=False)
        shutil.rmtree(folder, ignore_errors=True)
    first, second = values
    spread = abs(second - first)
    relative = f" ({spread / abs(first):.2%})" if first else ""
    return Finding(
        "ok",
        "metric",
        f"{first:.6g} then {second:.6g} on {where} ({champion[:7]}): differ by {spread:.3g}{relative}; "
        f"{seconds[0]:.2f}s and {seconds[1]:.2f}s (more noise figures: ratchet calibrate)",
    )


__all__ = ["Finding", "diagnose"]
