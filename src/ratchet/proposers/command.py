"""The ``command`` proposer: any program (a coding-agent CLI, a script) edits the candidate worktree.

The program runs in the worktree with the brief in a file and in environment variables; the
diff it leaves is the proposal; its hypothesis comes from the hypothesis file, or else from the
last line it printed.
"""

from __future__ import annotations

import os

from ratchet.config import CommandProposerSection
from ratchet.measure import run_command
from ratchet.proposers.base import Proposal, ProposalContext, Proposer, ProposerError
from ratchet.proposers.brief import render_brief


class CommandProposer(Proposer):
    kind = "command"

    def __init__(self, config: CommandProposerSection) -> None:
        self.config = config

    def propose(self, context: ProposalContext) -> Proposal:
        context.log_dir.mkdir(parents=True, exist_ok=True)
        # Both files live in the experiment's log folder, outside the worktree, so writing
        # them is not a change to the candidate.
        hypothesis_file = context.log_dir / "hypothesis.txt"
        brief_file = context.log_dir / "brief.md"
        brief_file.write_text(render_brief(context, str(hypothesis_file)))
        env = dict(os.environ)
        env.update(
            RATCHET_BRIEF_FILE=str(brief_file),
            RATCHET_HYPOTHESIS_FILE=str(hypothesis_file),
            RATCHET_RUN=context.run,
            RATCHET_EXPERIMENT=str(context.iteration),
            RATCHET_METRIC=context.metric_name,
            RATCHET_DIRECTION=context.direction,
            RATCHET_CHAMPION_METRIC="" if context.champion_metric is None else repr(context.champion_metric),
            RATCHET_SCOPE="\n".join(context.scope),
            RATCHET_WORKTREE=str(context.worktree),
        )
        result = run_command(
            self.config.command,
            cwd=context.worktree,
            timeout=self.config.timeout,
            log_prefix=context.log_dir / "proposer",
            env=env,
        )
        if result.timed_out:
            raise ProposerError(f"the proposer command timed out after {self.config.timeout:g}s")
        if not result.ok:
            raise ProposerError(f"the proposer command failed (exit {result.exit_code}): {_last_line(result.tail(400))}")
        hypothesis = ""
        if hypothesis_file.exists():
            hypothesis = hypothesis_file.read_text(errors="replace").strip()
        if not hypothesis:
            hypothesis = _last_line(result.read("stdout"))
        return Proposal(hypothesis=" ".join(hypothesis.split())[:500] or "(no hypothesis given)", in_place=True)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
