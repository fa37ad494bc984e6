"""The ``ratchet.toml`` schema, its parsing, and its one-line validation errors.

``values`` holds what a setting may be (durations, effects, sizes), ``sections`` the sections of
what is measured and judged, ``proposers`` the ``[proposer]`` kinds, ``loader`` the root
:class:`Config` with its parsing. Everyone imports from here.
"""

from __future__ import annotations

from ratchet.config.loader import (
    CONFIG_FILE,
    Config,
    ConfigError,
    format_validation_error,
    load_config,
    parse_config,
)
from ratchet.config.proposers import (
    AgentProposerSection,
    CommandProposerSection,
    ContextCommand,
    HybridProposerSection,
    LLMProposerSection,
    OptunaProposerSection,
    ParamDecl,
    ParamSpec,
    Price,
    ProposerSection,
)
from ratchet.config.sections import (
    BudgetSection,
    GuardSection,
    HoldoutSection,
    MetricSection,
    Parser,
    ReviewSection,
    RunSection,
    SandboxSection,
    ScopeSection,
    VerdictSection,
)
from ratchet.config.values import (
    Duration,
    Effect,
    EffectField,
    EnvName,
    Size,
    parse_duration,
    parse_effect,
    parse_size,
)

__all__ = [
    "CONFIG_FILE",
    "AgentProposerSection",
    "BudgetSection",
    "CommandProposerSection",
    "Config",
    "ConfigError",
    "ContextCommand",
    "Duration",
    "Effect",
    "EffectField",
    "EnvName",
    "GuardSection",
    "HoldoutSection",
    "HybridProposerSection",
    "LLMProposerSection",
    "MetricSection",
    "OptunaProposerSection",
    "ParamDecl",
    "ParamSpec",
    "Parser",
    "Price",
    "ProposerSection",
    "ReviewSection",
    "RunSection",
    "SandboxSection",
    "ScopeSection",
    "Size",
    "VerdictSection",
    "format_validation_error",
    "load_config",
    "parse_config",
    "parse_duration",
    "parse_effect",
    "parse_size",
]
