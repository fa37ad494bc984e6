"""What an agent that drives ratchet may see of a run: the one read model, without the holdout.

The proposer never sees the holdout metric (the trust model). The agent's view is a function over
:mod:`ratchet.report.data`: its rows and status carry no holdout field, and what it shows of one
experiment (reason, statistics) goes through :func:`ratchet.verdict.holdout.redact_for_proposer`.
Every view handed to an agent (``ratchet try``'s report, the MCP tools and resources) is built
here; the pydantic models are the MCP tools' output schemas.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from pydantic import BaseModel

from ratchet.config import Config
from ratchet.experiment import Experiment
from ratchet.ledger import LEDGER_FILE, Ledger, RunInfo
from ratchet.report.data import ExperimentRow, RunView, champion_before, experiment_rows, run_view
from ratchet.report.formatting import format_metric
from ratchet.state import STATE_DIR
from ratchet.verdict import redact_for_proposer
from ratchet.workspace.git import BRANCH_PREFIX, experiment_diff, run_champion

HYPOTHESIS_CHARS = 160

__all__ = [
    "AgentRow", "AgentView", "ExperimentDetail", "RunStatus", "agent_row", "agent_rows", "agent_status",
    "champion_before", "detail", "history_lines", "proposer_reason", "rows",
]  # fmt: skip


class AgentRow(BaseModel):
    """One experiment, compact: what `history` lists (an :class:`ExperimentRow` without the holdout)."""

    id: int
    verdict: str
    metric: float | None
    # The comparison the verdict made: the champion's value it saw (re-measured when the
    # policy measures the champion again; else its recorded score) and the change against it.
    champion: float | None = None
    champion_remeasured: bool = False
    change: str  # e.g. "-3.10%": the candidate against `champion`; negative = the metric went down
    hypothesis: str
    commit: str | None


class ExperimentDetail(AgentRow):
    """One experiment in full: what `show` returns."""

    reason: str
    parent_commit: str
    proposer: str
    duration_s: float | None
    guards: list[dict[str, Any]]
    measurement: dict[str, Any]  # the verdict's statistics (samples, test), holdout removed
    diff: str
    output_tail: str


class RunStatus(BaseModel):
    """Where a run stands."""

    run: str
    branch: str
    metric: str
    direction: str
    started: bool  # False until the first try (or `ratchet run`) measures the baseline
    active: bool  # a `ratchet run` (or another try) holds the run right now
    champion: float | None
    champion_commit: str | None
    champion_experiment: int | None
    baseline: float | None
    experiments: int  # measured: the baseline, abandoned experiments and the one in flight aside
    counts: dict[str, int]
    last: AgentRow | None
    pending_reviews: list[int] = []  # would-be keeps waiting for a person (`ratchet review`)


# ---------------------------------------------------------------- the model, minus the holdout


def proposer_reason(experiment: Experiment) -> str:
    """The verdict's reason with anything about the holdout cut out."""
    return redact_for_proposer(experiment).reason


def _short(text: str, limit: int = HYPOTHESIS_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def agent_row(row: ExperimentRow) -> AgentRow:
    """A row of the read model as an agent sees it: no holdout, no overfit flag, a short hypothesis."""
    return AgentRow(
        id=row.id, verdict=row.verdict or "running", metric=row.metric, champion=row.champion,
        champion_remeasured=row.champion_remeasured, change=row.change, hypothesis=_short(row.hypothesis), commit=row.commit,
    )  # fmt: skip


def agent_rows(table: Sequence[ExperimentRow]) -> list[AgentRow]:
    """The finished experiments of the read model, as an agent sees them."""
    return [agent_row(row) for row in table if row.verdict is not None]


def rows(experiments: Sequence[Experiment]) -> list[AgentRow]:
    """Every finished experiment, its metric's change against the champion of its time."""
    return agent_rows(experiment_rows(experiments))


def agent_status(view: RunView) -> RunStatus:
    """Where the run stands, from the read model: its holdout-free fields only."""
    table = agent_rows(view.experiments)
    return RunStatus(
        run=view.name,
        branch=view.branch,
        metric=view.metric,
        direction=view.direction,
        started=any(row.verdict == "baseline" for row in view.experiments),
        active=view.lock_holder is not None,
        champion=view.champion,
        champion_commit=view.champion_commit,
        champion_experiment=view.champion_id,
        baseline=view.baseline,
        experiments=view.experiment_count,  # the baseline, abandoned ones and the one in flight aside
        counts={verdict: n for verdict, n in view.counts.items() if verdict != "running"},
        last=table[-1] if table else None,
        pending_reviews=[review.id for review in view.pending_reviews],
    )


def history_lines(table: Sequence[AgentRow], last: int = 5) -> list[str]:
    """A few rows as plain lines, newest last: the short history printed after a try."""
    lines = []
    for row in table[-last:]:
        change = ""
        if row.change and row.champion is not None:
            how = "re-measured" if row.champion_remeasured else "recorded"
            change = f" ({row.change} vs champion {format_metric(row.champion)} {how})"
        lines.append(f"  #{row.id:<4} {row.verdict:<9} {format_metric(row.metric)}{change}  {row.hypothesis}")
    return lines


def detail(root: Path, experiment: Experiment, experiments: Sequence[Experiment]) -> ExperimentDetail:
    """One experiment in full, as an agent may see it (``experiments``: its run's, for the comparison)."""
    seen = redact_for_proposer(experiment)
    row = next(r for r in experiment_rows(experiments) if r.id == experiment.id)
    return ExperimentDetail(
        **agent_row(row).model_dump(),
        reason=seen.reason,
        parent_commit=experiment.parent_commit,
        proposer=experiment.proposer,
        duration_s=experiment.duration,
        guards=[guard.to_json() for guard in experiment.guards],
        measurement=seen.extra,
        diff=experiment_diff(root, experiment.commit, experiment.log_dir),
        output_tail=experiment.output_tail,
    )


# ---------------------------------------------------------------- the run


class AgentView:
    """Read-only access to one run of a repository, the one its config names, as an agent may see it."""

    def __init__(self, root: Path, config: Config) -> None:
        self.root = root
        self.config = config
        self.run = config.run.name
        self.branch = BRANCH_PREFIX + self.run
        self.ledger_path = root / STATE_DIR / LEDGER_FILE

    def experiments(self) -> list[Experiment]:
        if not self.ledger_path.exists():
            return []
        ledger = Ledger(self.ledger_path)
        try:
            return ledger.experiments(self.run)
        finally:
            ledger.close()

    def read(self) -> RunView:
        """The run's read model, without diffs (`show` reads one). Before the first try the run
        has no ledger: then the model is empty, and not written."""
        if not self.ledger_path.exists():
            return run_view(self.root, None, self._info(None), diffs=False)
        ledger = Ledger(self.ledger_path)
        try:
            return run_view(self.root, ledger, self._info(ledger.get_run(self.run)), diffs=False)
        finally:
            ledger.close()

    def _info(self, stored: RunInfo | None) -> RunInfo:
        # The run as the config names it now: a metric's name may change between sessions.
        return RunInfo(
            name=self.run, created=stored.created if stored else 0.0, base_commit=stored.base_commit if stored else "",
            branch=self.branch, metric_name=self.config.metric.name, direction=self.config.metric.direction,
            config=stored.config if stored else {},
        )  # fmt: skip

    def champion_commit(self) -> str:
        """The tip of the run branch; before the run exists, HEAD (where the run will start)."""
        return run_champion(self.root, self.run).commit

    def status(self) -> RunStatus:
        return agent_status(self.read())

    def history(self, last: int | None = None) -> list[AgentRow]:
        table = rows(self.experiments())
        return table[-last:] if last else table

    def show(self, experiment_id: int) -> ExperimentDetail | None:
        experiments = self.experiments()
        found = next((e for e in experiments if e.id == experiment_id), None)
        return None if found is None else detail(self.root, found, experiments)
