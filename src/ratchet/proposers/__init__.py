"""Proposers: one module per kind, all behind :class:`ratchet.proposers.base.Proposer`."""

from __future__ import annotations

from ratchet.config import CommandProposerSection, Config, OptunaProposerSection
from ratchet.proposers.base import (
    BudgetExhausted,
    Outcome,
    Proposal,
    ProposalContext,
    Proposer,
    ProposerError,
    Usage,
)


def create_proposer(config: Config) -> Proposer:
    """The proposer the config's ``[proposer]`` section asks for."""
    section = config.proposer
    if isinstance(section, OptunaProposerSection):
        from ratchet.proposers.optuna import OptunaProposer  # optuna imports slowly: only when used

        return OptunaProposer(section, direction=config.metric.direction)
    if isinstance(section, CommandProposerSection):
        from ratchet.proposers.command import CommandProposer

        return CommandProposer(section)
    raise ValueError(f"unknown proposer kind {section.kind!r}")  # pragma: no cover - config validates


__all__ = [
    "BudgetExhausted",
    "Outcome",
    "Proposal",
    "ProposalContext",
    "Proposer",
    "ProposerError",
    "Usage",
    "create_proposer",
]
