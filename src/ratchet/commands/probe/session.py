"""One probe: the throwaway checkout of the champion, every attack in turn, the clean-up."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

from ratchet.commands.probe import escapes, fakes
from ratchet.commands.probe.findings import (
    ATTACKS,
    AttackResult,
    ProbeError,
    ProbeReport,
)
from ratchet.commands.probe.prober import Prober
from ratchet.config import Config
from ratchet.measure.containment import Containment
from ratchet.measure.sandbox import SandboxError
from ratchet.state import STATE_DIR
from ratchet.workspace.git import GitError, exclude_state_dir, git, run_champion
from ratchet.workspace.preflight import run_blockers
from ratchet.workspace.worktree import reference_checkout

# Each attack of ATTACKS (in its order) and the step that tries it.
STEPS: dict[str, Callable[[Prober], AttackResult]] = {
    "fake-line-before": fakes.fake_line_before,
    "fake-line-after": fakes.fake_line_after,
    "stdout-replaced": fakes.stdout_replaced,
    "harness-rewrite": escapes.harness_rewrite,
    "write-outside": escapes.write_outside,
    "read-holdout": escapes.read_holdout,
    "daemon": escapes.daemon,
    "timeout": escapes.timeout,
    "new-harness-file": escapes.new_harness_file,
}


def red_team(
    root: Path,
    config: Config,
    report: Callable[[AttackResult], None] = lambda _: None,
    begin: Callable[[ProbeReport], None] = lambda _: None,
) -> ProbeReport:
    """Every attack on the champion in a throwaway checkout. ``begin`` sees the report once the
    champion is measured (no results yet), ``report`` each result as it comes."""
    for blocker in run_blockers(config, root):
        raise ProbeError(f"{blocker.what}: {blocker.detail}; {blocker.fix}")
    try:
        containment = Containment.for_measurements(config, root)
    except SandboxError as exc:
        raise ProbeError(str(exc)) from None
    found = run_champion(root, config.run.name)
    champion, where = found.commit, found.where
    exclude_state_dir(root)
    state = root / STATE_DIR / "probe" / config.run.name
    _remove_tree(state)
    state.mkdir(parents=True)
    folder = root / STATE_DIR / "worktrees" / f"{config.run.name}.probe"
    prober = Prober(root, config, containment, champion, folder, state)
    try:
        reference_checkout(root, folder, champion)
        result = prober.start(f"{where} ({champion[:7]})")
        begin(result)
        for attack in ATTACKS:
            finding = STEPS[attack](prober)
            result.results.append(finding)
            report(finding)
        return result
    except GitError as exc:
        raise ProbeError(f"cannot check out {champion[:7]}: {exc}; git worktree prune, then try again") from None
    finally:
        prober.kill_escaped()
        git(root, "worktree", "remove", "--force", "--force", str(folder), check=False)
        shutil.rmtree(folder, ignore_errors=True)
        git(root, "worktree", "prune", check=False)
        _remove_tree(state / "pristine-harness")
        _remove_tree(state / "outside")


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
