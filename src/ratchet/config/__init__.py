"""The ``ratchet.toml`` schema, its parsing, and its one-line validation errors.

``values`` holds what a setting may be (durations, effects, sizes), ``sections`` the sections of
what is measured and judged, ``proposers`` the ``[proposer]`` kinds, ``loader`` the root
:class:`Config` with its parsing. Everyone imports from here.

:data:`CONFIG_FILE` and :class:`ConfigError` are defined here, light: a command that only names
them (``ratchet status`` finding its run, ``init``) does not build the pydantic models. Every other
name loads its module on first use (PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ratchet._lazy import lazy_names as _lazy_names

CONFIG_FILE = "ratchet.toml"


class ConfigError(Exception):
    """A config problem, already phrased as one line for the user."""


if TYPE_CHECKING:  # what mypy sees; at run time __getattr__ loads each module on demand
    from ratchet.config.loader import Config, format_validation_error, load_config, parse_config
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
        ExecutorSection,
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

_HOMES = {
    **dict.fromkeys(("Config", "format_validation_error", "load_config", "parse_config"), "loader"),
    **dict.fromkeys(
        (
            "AgentProposerSection", "CommandProposerSection", "ContextCommand", "HybridProposerSection", "LLMProposerSection",
            "OptunaProposerSection", "ParamDecl", "ParamSpec", "Price", "ProposerSection",
        ),
        "proposers",
    ),  # fmt: skip
    **dict.fromkeys(
        (
            "BudgetSection", "ExecutorSection", "GuardSection", "HoldoutSection", "MetricSection", "Parser", "ReviewSection", "RunSection",
            "SandboxSection", "ScopeSection", "VerdictSection",
        ),
        "sections",
    ),  # fmt: skip
    **dict.fromkeys(
        ("Duration", "Effect", "EffectField", "EnvName", "Size", "parse_duration", "parse_effect", "parse_size"), "values"
    ),
}

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
    "ExecutorSection",
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


__getattr__, __dir__ = _lazy_names('ratchet.config', {name: f"ratchet.config.{home}" for name, home in _HOMES.items()}, globals())
