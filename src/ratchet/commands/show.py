"""``ratchet status``, ``show``, ``export`` and ``report``: what the ledger says of a run, as data the
faces print or files they write."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from ratchet.experiment import Experiment, Verdict, measured_count, pending_reviews
from ratchet.ledger import Ledger, RunInfo, autoresearch_tsv, results_tsv
from ratchet.project import Project
from ratchet.report.data import in_flight
from ratchet.state import STATE_DIR, run_lock_holder
from ratchet.workspace.git import experiment_diff


def status_data(project: Project, ledger: Ledger, info: RunInfo) -> dict[str, Any]:
    """Where a run stands: champion against baseline, verdict counts, budget spent (``status --json``)."""
    experiments = ledger.experiments(info.name)
    counts: dict[str, int] = {}
    for e in experiments:
        key = e.verdict.value if e.verdict else "running"
        counts[key] = counts.get(key, 0) + 1
    baseline = next((e for e in experiments if e.verdict is Verdict.BASELINE), None)
    champion = next((e for e in reversed(experiments) if e.verdict in (Verdict.KEEP, Verdict.BASELINE)), None)
    running = run_lock_holder(project.root / STATE_DIR, info.name)
    return {
        "run": info.name,
        "branch": info.branch,
        "base_commit": info.base_commit,
        "metric": info.metric_name,
        "direction": info.direction,
        "active": running is not None,
        "pid": running,
        "experiments": measured_count(experiments),  # the one count: the report's and the budget's
        "measured": measured_count(experiments),
        "counts": counts,
        "baseline": baseline.metric if baseline else None,
        "champion": champion.metric if champion else None,
        "champion_commit": (champion.commit or champion.parent_commit) if champion else None,
        "champion_experiment": champion.id if champion else None,
        "wall_spent_s": ledger.wall_spent(info.name),
        "tokens": ledger.spent(info.name)[0],
        "cost_usd": ledger.spent(info.name)[1],
        "budget": _budget(info),
        "last": experiments[-1].to_json() if experiments else None,
        # Every experiment in flight (several with [run] workers = N) while a run holds the lock:
        # id, hypothesis, started, elapsed_s, worker (None with one worker), node, devices, placement.
        "running": [
            {key: value for key, value in asdict(flight).items() if key != "output_tail"}
            for flight in (in_flight(experiments, tails=False) if running is not None else [])
        ],
        "pending_reviews": [{"id": item.experiment.id, "why": item.why, "branch": item.branch} for item in pending_reviews(experiments)],
        # The champion's holdout, from the baseline through each keep: a trend going the wrong
        # way while the metric improves is overfitting.
        "holdout_trend": [
            {"id": e.id, "holdout": e.extra["holdout"], "overfit": bool(e.extra.get("overfit"))}
            for e in experiments
            if e.verdict in (Verdict.BASELINE, Verdict.KEEP) and e.extra.get("holdout") is not None
        ],
        "confirmation": next(iter(ledger.events(info.name, "confirmation")[-1:]), None),
        "noise": next(iter(ledger.events(info.name, "calibration")[-1:]), None),
        "sandbox_warning": _sandbox_warning(project, info),
    }


def _budget(info: RunInfo) -> dict[str, Any]:
    budget = info.config.get("budget", {})
    return {
        "iterations": budget.get("iterations"),
        "wall_s": budget.get("wall"),
        "tokens": budget.get("tokens"),
        "cost_usd": budget.get("cost_usd"),
    }


def _sandbox_warning(project: Project, info: RunInfo) -> str | None:
    from ratchet.measure.containment import sandbox_warning

    # What the next session will do: the config's [sandbox] as written (only its mode counts
    # here, and the models are not worth their start-up time), else what the run recorded.
    raw = project.raw_config().get("sandbox") if project.config_path.exists() else None
    section: Any = raw if isinstance(raw, dict) else info.config.get("sandbox") or {}
    return sandbox_warning(section)


def experiment_data(project: Project, experiment: Experiment) -> dict[str, Any]:
    """One experiment with what it changed and the tail of its output (``show --json``)."""
    diff = experiment_diff(project.root, experiment.commit, experiment.log_dir)
    return {**experiment.to_json(), "diff": diff, "output_tail": experiment.output_tail}


def export_tsv(ledger: Ledger, info: RunInfo, *, autoresearch: bool) -> tuple[str, str | None]:
    """``ratchet export``: the run as TSV, ratchet's lossless columns or autoresearch's five; and a
    note for the user when autoresearch's analysis would read the run the wrong way up."""
    experiments = ledger.experiments(info.name)
    if not autoresearch:
        return results_tsv(experiments, info.metric_name), None
    note = None
    if info.direction == "maximize":
        note = f"this run maximizes {info.metric_name}; analysis.ipynb takes lower val_bpb as better"
    return autoresearch_tsv(experiments), note


def report_path(info: RunInfo, *, png: bool) -> Path:
    """Where ``ratchet report`` writes without ``--output``: ratchet-<run>.html (or .png) here."""
    return Path(f"ratchet-{info.name.replace('/', '-')}.{'png' if png else 'html'}")


def write_run_report(project: Project, ledger: Ledger, info: RunInfo, target: Path, *, png: bool, y_scale: str) -> None:
    """The run's self-contained HTML report, or its progress plot alone as a PNG (needs matplotlib:
    :class:`ratchet.report.MissingDependency` otherwise)."""
    # Loaded only here: status and show do without jinja2 and matplotlib.
    from ratchet.report.html import write_report
    from ratchet.report.png import write_png

    if png:
        from ratchet.report.data import run_view

        write_png(run_view(project.root, ledger, info, diffs=False, y_scale=y_scale), target)
    else:
        write_report(project.root, ledger, info, target, y_scale=y_scale)
