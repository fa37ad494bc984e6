"""Tokens and dollars: what each experiment's proposal cost, so the budget can stop on them."""

from __future__ import annotations

from ratchet.experiment import Experiment
from ratchet.ledger import Ledger
from ratchet.proposers.base import Usage


def set_usage(experiment: Experiment, usage: Usage | None) -> None:
    if usage is not None:
        experiment.tokens_in = usage.tokens_in
        experiment.tokens_out = usage.tokens_out
        experiment.cost_usd = usage.cost_usd


def add_usage(experiment: Experiment, usage: Usage) -> None:
    experiment.tokens_in = (experiment.tokens_in or 0) + usage.tokens_in
    experiment.tokens_out = (experiment.tokens_out or 0) + usage.tokens_out
    experiment.cost_usd = (experiment.cost_usd or 0.0) + usage.cost_usd


def record_usage(ledger: Ledger, run: str, usage: Usage | None) -> None:
    # Spending that belongs to no experiment (a call refused for the budget after it was partly
    # made) is added to the last experiment so the run's totals stay true.
    if usage is None or not (usage.tokens_in or usage.tokens_out or usage.cost_usd):
        return
    rows = ledger.experiments(run)
    if rows:
        add_usage(rows[-1], usage)
        ledger.update(rows[-1])
