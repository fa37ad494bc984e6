"""Proposers: one module per kind, all behind :class:`ratchet.proposers.base.Proposer`."""

from __future__ import annotations

from pathlib import Path

from ratchet.config import (
    AgentProposerSection,
    CommandProposerSection,
    Config,
    HybridProposerSection,
    LLMProposerSection,
    OptunaProposerSection,
)
from ratchet.proposers.base import (
    BudgetExhausted,
    FatalProposerError,
    Outcome,
    Proposal,
    ProposalContext,
    Proposer,
    ProposerError,
    Usage,
)


def create_proposer(config: Config, root: Path | None = None) -> Proposer:
    """The proposer the config's ``[proposer]`` section asks for; ``root``: the target's folder
    (where relative paths of the section, such as ``templates``, are read from)."""
    section = config.proposer
    root = root or Path.cwd()
    if isinstance(section, OptunaProposerSection):
        from ratchet.proposers.optuna import (
            OptunaProposer,  # optuna imports slowly: only when used
        )

        return OptunaProposer(section, direction=config.metric.direction)
    if isinstance(section, CommandProposerSection):
        from ratchet.proposers.command import CommandProposer

        return CommandProposer(section, sandbox=config.sandbox, root=root, money_budget=config.budget.cost_usd is not None)
    # Context commands run the champion's code: contained like a measurement.
    context = None
    if getattr(section, "context_commands", None):
        from ratchet.measure.containment import Containment

        context = Containment.for_measurements(config, root)
    money_budget = config.budget.cost_usd is not None
    # Hybrid first: its section extends the llm one.
    if isinstance(section, HybridProposerSection):
        from ratchet.proposers.hybrid import HybridProposer

        return HybridProposer(
            section, root=root, direction=config.metric.direction, money_budget=money_budget, containment=context
        )
    if isinstance(section, LLMProposerSection):
        from ratchet.proposers.llm import LLMProposer

        return LLMProposer(section, root=root, money_budget=money_budget, containment=context)
    if isinstance(section, AgentProposerSection):
        from ratchet.proposers.agent import AgentProposer

        return AgentProposer(
            section, root=root, sandbox=config.sandbox, context_containment=context, money_budget=money_budget
        )
    raise ValueError(f"unknown proposer kind {section.kind!r}")  # pragma: no cover - config validates


__all__ = [
    "BudgetExhausted",
    "FatalProposerError",
    "Outcome",
    "Proposal",
    "ProposalContext",
    "Proposer",
    "ProposerError",
    "Usage",
    "create_proposer",
]
