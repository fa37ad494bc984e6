"""What the loop announces while it runs, for whoever listens: the terminal view, ``ratchet try``'s
report, the MCP server. The core calls a :class:`RunObserver` and imports no screen.

An observer only listens: it never changes the run. Every method has a default that does
nothing, so an observer overrides only what it shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ratchet.budget import Budget, Progress
    from ratchet.config import Config
    from ratchet.experiment import Experiment
    from ratchet.ledger import RunInfo

# How `ratchet run` exits (documented in the README): a shell or a scheduler branches on it.
EXIT_DONE = 0  # a budget spent or the target reached
EXIT_ERROR = 1  # the run could not start or go on (the baseline failed, git failed, ...)
EXIT_CONFIG = 2  # the config is wrong
EXIT_FAILURES = 4  # stopped by K experiments in a row that crashed or failed
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C (or SIGTERM), as shells report SIGINT


@dataclass
class RunSummary:
    """How a session of the loop ended: announced last, and returned by ``Loop.run``."""

    run: str
    branch: str
    stop_reason: str
    baseline_metric: float | None
    champion_metric: float | None
    champion_commit: str
    counts: dict[str, int] = field(default_factory=dict)
    exit_code: int = EXIT_DONE


class RunObserver:
    """The loop's announcements, in the order they come."""

    def start(self, info: RunInfo, config: Config, resumed: bool) -> None:
        """The run is open (new or resumed); nothing is measured yet."""

    def experiment_started(self, experiment: Experiment) -> None:
        """An experiment has its id and log folder; its proposal is being made."""

    def sample(self, experiment: Experiment, role: str, value: float) -> None:
        """One measurement for ``experiment``: ``role`` is "candidate" or "champion"."""

    def experiment_done(self, experiment: Experiment) -> None:
        """The verdict is recorded in the ledger (and, for a keep, committed)."""

    def progress(self, progress: Progress, budget: Budget, baseline: float | None, champion: float | None) -> None:
        """Before each experiment: what the budget has left and where the champion stands."""

    def champion_is(self, baseline: float | None, champion: float | None) -> None:
        """The run's baseline and champion scores, when no progress report precedes an experiment (a try)."""

    def message(self, text: str) -> None:
        """A line for the user: calibration, confirmation, repairs."""

    def warning(self, text: str) -> None:
        """Something the user should fix, the run goes on."""

    def alarm(self, text: str) -> None:
        """A candidate tampered with the harness."""

    def finish(self, summary: RunSummary) -> None:
        """The session is over."""

    def close(self) -> None:
        """Release the screen, if any."""


__all__ = ["EXIT_CONFIG", "EXIT_DONE", "EXIT_ERROR", "EXIT_FAILURES", "EXIT_INTERRUPTED", "RunObserver", "RunSummary"]
