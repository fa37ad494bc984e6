"""The ``command`` proposer: any program (a coding-agent CLI, a script) edits the candidate worktree.

The program runs in the worktree with the brief in a file and in environment variables; the
diff it leaves is the proposal; its hypothesis comes from the hypothesis file, or else from the
last line it printed; what it spent, from the usage file if it writes one.

With several workers, several programs run at once, each in its own candidate worktree, with
its brief and files in its experiment's own log folder: the proposer keeps nothing between
calls, so it proposes concurrently. What the others are
measuring is in the brief ("Being measured now") and, as JSON, in ``$RATCHET_IN_FLIGHT_FILE``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ratchet.config import CommandProposerSection, SandboxSection
from ratchet.measure.containment import Containment
from ratchet.measure.runner import CommandResult, run_command
from ratchet.proposers.base import (
    FatalProposerError,
    Proposal,
    ProposalContext,
    Proposer,
    ProposerError,
    Usage,
)
from ratchet.proposers.brief import render_brief


class CommandProposer(Proposer):
    kind = "command"
    refuses_repeats = True
    concurrent = True
    # How the program runs: sandboxed, with the environment allowlist (None: as ratchet runs).
    containment: Containment | None = None

    def __init__(
        self, config: CommandProposerSection, sandbox: SandboxSection | None = None, root: Path | None = None,
        money_budget: bool = False,
    ) -> None:  # fmt: skip
        self.config = config
        # With a [budget] cost_usd, a program that does not say what it spent would count as free.
        self.money_budget = money_budget
        self.command = config.command
        self.timeout = config.timeout
        if sandbox is not None:
            self.containment = Containment.for_proposer(
                sandbox, network=config.network, env=config.env, writable=config.writable, base=root or Path.cwd()
            )

    # Hooks for the agent presets (proposers/agent.py): the command line, the brief, and what
    # the program's output says about its cost.

    def command_line(self, context: ProposalContext) -> str:
        return self.command

    def render_brief(self, context: ProposalContext, hypothesis_file: str) -> str:
        return render_brief(context, hypothesis_file)

    def read_output(self, result: CommandResult, usage_file: Path) -> tuple[Usage | None, str]:
        """What the program spent (from $RATCHET_USAGE_FILE, if it wrote one) and its last words."""
        usage = read_usage_file(usage_file)
        if self.money_budget and not _states_cost(usage_file):
            raise FatalProposerError(
                'a [budget] cost_usd needs the proposer command to write what it spent to $RATCHET_USAGE_FILE '
                '(JSON: {"cost_usd": 0.0123, "tokens_in": .., "tokens_out": ..}; 0 when it costs nothing); '
                "it wrote no cost_usd, so the budget could not be kept",
                usage=usage,
            )
        return usage, last_line(result.read("stdout"))

    def mend(self, context: ProposalContext) -> Proposal | None:
        """Run the program again on the failed candidate, with the guard's output in the brief."""
        return self.propose(context)

    def propose(self, context: ProposalContext) -> Proposal:
        context.log_dir.mkdir(parents=True, exist_ok=True)
        # These files live in the experiment's log folder, outside the worktree, so writing
        # them is not a change to the candidate; those the program writes are in a folder of
        # their own, the only place outside the worktree it may write to in the sandbox.
        out = context.log_dir / "proposer-files"
        out.mkdir(exist_ok=True)
        hypothesis_file = out / "hypothesis.txt"
        brief_file = context.log_dir / "brief.md"
        usage_file = out / "usage.json"
        brief = self.render_brief(context, str(hypothesis_file))
        if context.rework:
            brief += (
                "\n## Rework: your candidate failed a guard\n"
                "Its changes are still in the worktree. Mend them so that the guard passes, keeping "
                "the improvement; write a new one-line hypothesis.\n\n" + context.rework + "\n"
            )
        brief_file.write_text(brief)
        in_flight_file = _write_in_flight(context)
        # Contained, the program gets the allowlisted environment plus these; else all of ratchet's.
        env = {} if self.containment is not None else dict(os.environ)
        env.update(
            RATCHET_BRIEF_FILE=str(brief_file),
            RATCHET_HYPOTHESIS_FILE=str(hypothesis_file),
            RATCHET_USAGE_FILE=str(usage_file),
            RATCHET_RUN=context.run,
            RATCHET_EXPERIMENT=str(context.iteration),
            RATCHET_METRIC=context.metric_name,
            RATCHET_DIRECTION=context.direction,
            RATCHET_CHAMPION_METRIC="" if context.champion_metric is None else repr(context.champion_metric),
            RATCHET_SCOPE="\n".join(context.scope),
            RATCHET_WORKTREE=str(context.worktree),
            RATCHET_REWORK="1" if context.rework else "",
            # "" when nothing else is in flight (one worker), like the other variables that may be empty.
            RATCHET_IN_FLIGHT_FILE="" if in_flight_file is None else str(in_flight_file),
        )
        if self.containment is not None:
            result = self.containment.run(
                self.command_line(context),
                cwd=context.worktree,
                timeout=self.timeout,
                log_prefix=context.log_dir / "proposer",
                env=env,
                writable=(out,),
            )
        else:
            result = run_command(
                self.command_line(context),
                cwd=context.worktree,
                timeout=self.timeout,
                log_prefix=context.log_dir / "proposer",
                env=env,
            )
        _only_regular_files(out)
        usage, said = self.read_output(result, usage_file)
        if result.timed_out:
            raise ProposerError(f"the proposer command timed out after {self.timeout:g}s", usage=usage)
        if result.survivors:
            raise ProposerError(f"the proposer command {result.problem}", usage=usage)
        if not result.ok:
            # The hint (a dropped variable, a path the sandbox hides) says what its traceback cannot.
            hint = f"; {result.hint}" if result.hint else ""
            raise ProposerError(
                f"the proposer command failed (exit {result.exit_code}): {last_line(result.tail(400))}{hint}", usage=usage
            )
        hypothesis = ""
        if hypothesis_file.exists():
            with hypothesis_file.open("rb") as handle:  # the head only: the program chose its size
                hypothesis = handle.read(65536).decode(errors="replace").strip()
        if not hypothesis:
            hypothesis = said
        return Proposal(
            hypothesis=" ".join(hypothesis.split())[:500] or "(no hypothesis given)", in_place=True, usage=usage
        )


def _write_in_flight(context: ProposalContext) -> Path | None:
    """``[{"id": .., "hypothesis": .., "meta": {..}}]`` of the other experiments being measured
    (those already proposed), in the log folder beside the brief; None when there are none."""
    running = [
        {"id": e.id, "hypothesis": e.hypothesis, "meta": e.proposal_meta}
        for e in context.in_flight
        if e.id != context.iteration and e.hypothesis.strip()
    ]
    if not running:
        return None
    path = context.log_dir / "in-flight.json"
    path.write_text(json.dumps(running, indent=1, default=str) + "\n")
    return path


def read_usage_file(path: Path) -> Usage | None:
    """``{"tokens_in": .., "tokens_out": .., "cost_usd": ..}`` written by the program; None if absent or unreadable."""
    try:
        data = json.loads(path.read_text())
        return Usage(int(data.get("tokens_in", 0)), int(data.get("tokens_out", 0)), float(data.get("cost_usd", 0.0)))
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def _states_cost(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
        return isinstance(data, dict) and isinstance(data.get("cost_usd"), (int, float))
    except (OSError, ValueError):
        return False


def _only_regular_files(folder: Path) -> None:
    # What the program left there is read by ratchet: a FIFO would hang it, a symlink would
    # have it read a file of the program's choosing.
    for entry in os.scandir(folder):
        if not entry.is_file(follow_symlinks=False):  # a regular file, not through a link
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def last_line(text: str) -> str:
    """The last non-blank line of ``text``, stripped ("" when none)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
