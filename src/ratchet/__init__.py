"""ratchet: the autoresearch loop for any git project whose success is a number.

The public API is small; everything else is private to its module.
"""

from ratchet._version import __version__
from ratchet.config import Config, ConfigError, load_config, parse_config
from ratchet.executors import Executor, LocalExecutor
from ratchet.experiment import Experiment, GuardResult, Verdict
from ratchet.ledger import Ledger
from ratchet.loop import Loop, RunError, RunSummary
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
    "RunSummary",
    "Verdict",
    "__version__",
    "load_config",
    "parse_config",
]
