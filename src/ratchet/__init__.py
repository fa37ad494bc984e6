"""ratchet: the autoresearch loop for any git project whose success is a number.

The public API is small and pinned by ``tests/test_exported_members.py``: what ``__all__`` names
here, and the extension points ``ratchet.proposers``, ``ratchet.executors``, ``ratchet.events``
and ``ratchet.testing`` (each with its own ``__all__``). Everything else is private to ratchet.

The names are loaded on first use (PEP 562): ``import ratchet.cli`` must not pay for the loop,
numpy and the config's models before ``ratchet --help`` prints a line. ``from ratchet import Loop``
works as it always has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ratchet._lazy import lazy_names as _lazy_names

if TYPE_CHECKING:  # what mypy and editors see; at run time __getattr__ below loads each on demand
    from ratchet._version import __version__
    from ratchet.config import Config, ConfigError, load_config, parse_config
    from ratchet.events import RunObserver, RunSummary
    from ratchet.executors import Executor, LocalExecutor
    from ratchet.experiment import Experiment, GuardResult, Verdict
    from ratchet.ledger import Ledger
    from ratchet.loop import Loop, RunError
    from ratchet.proposers import (
        Outcome,
        Proposal,
        ProposalContext,
        Proposer,
        ProposerError,
    )

# Each public name -> the module that defines it.
_HOMES = {
    "__version__": "ratchet._version",
    "Config": "ratchet.config",
    "ConfigError": "ratchet.config",
    "load_config": "ratchet.config",
    "parse_config": "ratchet.config",
    "RunObserver": "ratchet.events",
    "RunSummary": "ratchet.events",
    "Executor": "ratchet.executors",
    "LocalExecutor": "ratchet.executors",
    "Experiment": "ratchet.experiment",
    "GuardResult": "ratchet.experiment",
    "Verdict": "ratchet.experiment",
    "Ledger": "ratchet.ledger",
    "Loop": "ratchet.loop",
    "RunError": "ratchet.loop",
    "Outcome": "ratchet.proposers",
    "Proposal": "ratchet.proposers",
    "ProposalContext": "ratchet.proposers",
    "Proposer": "ratchet.proposers",
    "ProposerError": "ratchet.proposers",
}

__all__ = [
    "Config",
    "ConfigError",
    "Executor",
    "Experiment",
    "GuardResult",
    "Ledger",
    "LocalExecutor",
    "Loop",
    "Outcome",
    "Proposal",
    "ProposalContext",
    "Proposer",
    "ProposerError",
    "RunError",
    "RunObserver",
    "RunSummary",
    "Verdict",
    "__version__",
    "load_config",
    "parse_config",
]


__getattr__, __dir__ = _lazy_names('ratchet', _HOMES, globals())
