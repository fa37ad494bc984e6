"""ratchet: the autoresearch loop for any git project whose success is a number.

The public API is small and pinned by ``tests/test_exported_members.py``: what ``__all__`` names
here, and the extension points ``ratchet.proposers``, ``ratchet.executors``, ``ratchet.events``
and ``ratchet.testing`` (each with its own ``__all__``). Everything else is private to ratchet.
"""

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
