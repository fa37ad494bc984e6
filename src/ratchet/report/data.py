"""The one read model of a run: what the report, the dashboard, the status and the MCP tools show.

One function, :func:`run_view`, turns a run into plain JSON-able data, one :class:`ExperimentRow`
per experiment; the report renders it once into a file, the dashboard serves it again and again
while the run goes on, and :mod:`ratchet.report.agent_view` cuts the holdout out of it for an
agent. Nothing here writes: not the ledger, not the repository.
"""

from __future__ import annotations

import math
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Sequence

from ratchet.experiment import Comparison, Experiment, Verdict, measured_count, pending_reviews
from ratchet.ledger import Ledger, RunInfo
from ratchet.measure.runner import read_tail
from ratchet.state import STATE_DIR, run_lock_holder
from ratchet.workspace import git as workspace_git

# A diff longer than this is cut: a report must stay a file a browser opens at once.
DIFF_LIMIT = 200_000
TAIL_BYTES = 6_000
# Verdicts that leave no number to plot: they are marked on the x axis instead.
_NO_NUMBER = {Verdict.CRASH, Verdict.TIMEOUT, Verdict.INVALID, Verdict.TAMPERED, Verdict.ABANDONED, Verdict.LOST}
# The verdict's run-level statistics: ledger events (and, from older writers, keys of
# ``Experiment.extra``), with their titles.
STATISTICS = (
    ("calibration", "noise", "Noise estimate (the champion against itself)"),
    ("confirmation", "confirmation", "Final confidence interval (the champion against the baseline)"),
)
_LABELS = {
    "sd_single": "sd of one measurement", "sd_pair": "sd of one comparison", "relative": "relative noise",
    "mean": "mean", "pairs": "pairs", "scale": "scale", "deterministic": "deterministic", "gain": "gain",
    "ci_low": "95% CI, low end", "ci_high": "95% CI, high end",
}  # fmt: skip
# Raw samples and bookkeeping stay out of the summary table.
_HIDDEN = {"samples", "baseline_samples", "champion_samples", "fingerprint", "kind", "created", "after_experiment", "summary"}
# One pair has no spread, so no interval: the loop still writes one of width zero.
_INTERVAL_KEYS = ("ci_low", "ci_high")
_INTERVAL_CLAUSE = re.compile(r" \(95% CI [^)]*\)")
NO_INTERVAL = "1 pair, no interval"
# How the plot's y axis may be drawn; "auto" is log when the numbers span more than a decade.
Y_SCALES = ("auto", "linear", "log")
DECADE = 10.0


@dataclass
class ExperimentRow:
    """One experiment, as every view shows it: a point of the plot, a row of the ledger table, an
    entry of the agent's history (which leaves out the holdout)."""

    id: int
    verdict: str | None  # None while in flight
    state: str
    metric: float | None
    best: float | None  # the champion's metric once this experiment was decided
    hypothesis: str
    reason: str
    proposer: str
    commit: str | None
    parent_commit: str
    started: float
    duration: float | None
    tokens_in: int | None
    tokens_out: int | None
    cost_usd: float | None
    vs_baseline: float | None  # relative change against the baseline
    samples: int  # measurements of the candidate behind ``metric`` (repeat and sequential verdicts)
    spread: tuple[float, float] | None  # their lowest and highest
    p_value: float | None
    holdout: float | None
    overfit: bool
    # The comparison the verdict made: the champion's value it saw (re-measured when the policy
    # measures the champion again; else its recorded score) and the change against it.
    champion: float | None
    champion_remeasured: bool
    change: str  # e.g. "-3.10%": the candidate against ``champion``; negative = the metric went down
    # With several workers ([run] workers): the worker slot that ran it (0-based), and where its
    # last sample ran ("node-1 gpu 0,1"; "" before it has one, or when the executor says nothing).
    worker: int | None = None
    placement: str = ""


@dataclass
class KeptChange:
    """A keep: what it changed and what it gained."""

    id: int
    hypothesis: str
    metric: float
    commit: str | None
    previous: float | None  # the champion it beat
    delta_previous: float | None
    relative_previous: float | None
    delta_baseline: float | None
    relative_baseline: float | None
    diff: str = ""


@dataclass
class Spending:
    wall_s: float
    wall_budget_s: float | None
    measured: int
    iterations_budget: int | None
    tokens_in: int
    tokens_out: int
    tokens_budget: int | None
    cost_usd: float
    cost_budget: float | None
    measuring_s: float  # time spent inside experiments (proposing + measuring)


@dataclass
class InFlight:
    """An experiment being proposed or measured now, and where: its worker (None with one worker)
    and, once it has a sample, the node and devices of the last one."""

    id: int
    hypothesis: str
    started: float
    elapsed_s: float
    output_tail: str
    worker: int | None = None
    node: str = ""
    devices: str = ""
    placement: str = ""  # node and devices in a few words, as ExperimentRow.placement


@dataclass
class Machine:
    fingerprint: str
    experiments: int  # counted as RunView.experiment_count counts them
    baseline: bool  # whether the baseline was measured here
    info: dict[str, Any]


@dataclass
class Statistic:
    title: str
    after_experiment: int | None
    summary: str
    values: list[tuple[str, str]]


@dataclass
class YAxis:
    """How the plot draws its y axis: what was asked, what is drawn, and why they differ."""

    scale: str  # "linear" or "log"
    wanted: str  # one of Y_SCALES
    note: str = ""  # set when log was wanted but cannot be drawn


@dataclass
class PendingReview:
    """A would-be keep waiting for a person ([review]): `ratchet review approve` or `reject`."""

    id: int
    hypothesis: str
    metric: float | None
    why: str
    branch: str


@dataclass
class RunView:
    name: str
    branch: str
    base_commit: str
    metric: str
    direction: str
    created: float
    generated: float
    active: bool
    baseline: float | None
    champion: float | None
    champion_id: int | None
    champion_commit: str | None  # the champion's commit (the baseline's is its parent)
    lock_holder: int | None  # the pid of the process holding the run's lock (-1 unknown), or None
    experiments: list[ExperimentRow]
    # Experiments measured: every view shows this one number. The baseline (#0), an abandoned
    # experiment or the one in flight has a row of its own but is not one of them.
    experiment_count: int
    kept: list[KeptChange]
    counts: dict[str, int]
    spending: Spending
    # The newest experiment in flight while a run holds the lock (what readers of one read), and
    # ``running``: every one of them, by id (several with [run] workers = N).
    in_flight: InFlight | None
    hardware: list[Machine]
    y_axis: YAxis
    statistics: list[Statistic] = field(default_factory=list)
    pending_reviews: list[PendingReview] = field(default_factory=list)
    running: list[InFlight] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def experiment_count(experiments: list[Experiment]) -> int:
    """Experiments measured, as the budget counts them: not the baseline, abandoned or running ones."""
    return measured_count(experiments)


def run_view(root: Path, ledger: Ledger | None, info: RunInfo, *, diffs: bool = True, y_scale: str = "auto") -> RunView:
    """Everything the views show of ``info``. ``ledger``: None before the run has one (an agent may
    ask first); ``diffs``: read the keeps' diffs; ``y_scale``: one of :data:`Y_SCALES`. One read of
    the ledger, one pass over the rows (and one git call per keep when ``diffs``)."""
    experiments = ledger.experiments(info.name) if ledger is not None else []
    return view_of(root, ledger, info, experiments, diffs=diffs, y_scale=y_scale)


def view_of(
    root: Path, ledger: Ledger | None, info: RunInfo, experiments: Sequence[Experiment], *, diffs: bool, y_scale: str,
    memo: RowMemo | None = None,
) -> RunView:
    """:func:`run_view` of ``experiments`` already read (all of the run's, by id); ``memo``: see
    :func:`experiment_rows`."""
    experiments = list(experiments)
    baseline = next((e.metric for e in experiments if e.verdict is Verdict.BASELINE), None)
    rows = experiment_rows(experiments, memo)
    kept: list[KeptChange] = []
    champion: float | None = None
    champion_id: int | None = None
    champion_commit: str | None = None
    for e in experiments:
        if e.verdict is Verdict.BASELINE:
            champion, champion_id, champion_commit = e.metric, e.id, e.commit or e.parent_commit
        elif e.verdict is Verdict.KEEP and e.metric is not None:
            kept.append(_kept(root, e, champion, baseline, diffs))
            champion, champion_id, champion_commit = e.metric, e.id, e.commit or e.parent_commit
    holder = run_lock_holder(root / STATE_DIR, info.name)
    running = in_flight(experiments) if holder is not None else []
    active = bool(running)
    tokens_in = sum(e.tokens_in or 0 for e in experiments)
    tokens_out = sum(e.tokens_out or 0 for e in experiments)
    budget = info.config.get("budget", {}) or {}
    spending = Spending(
        wall_s=ledger.wall_spent(info.name) if ledger is not None else 0.0,
        wall_budget_s=_number(budget.get("wall")),
        measured=experiment_count(experiments),
        iterations_budget=budget.get("iterations"),
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        tokens_budget=budget.get("tokens"),
        cost_usd=sum(e.cost_usd or 0.0 for e in experiments),
        cost_budget=_number(budget.get("cost_usd")),
        measuring_s=sum(e.duration or 0.0 for e in experiments),
    )
    counts: dict[str, int] = {}
    for e in experiments:
        key = e.verdict.value if e.verdict else "running"
        counts[key] = counts.get(key, 0) + 1
    return RunView(
        name=info.name,
        branch=info.branch,
        base_commit=info.base_commit,
        metric=info.metric_name,
        direction=info.direction,
        created=info.created,
        generated=time.time(),
        active=active,
        baseline=baseline,
        champion=champion,
        champion_id=champion_id,
        champion_commit=champion_commit,
        lock_holder=holder,
        experiments=rows,
        experiment_count=spending.measured,
        kept=kept,
        counts=counts,
        spending=spending,
        in_flight=running[-1] if running else None,
        running=running,
        hardware=_machines(ledger, experiments) if ledger is not None else [],
        y_axis=y_axis(rows, info.direction, y_scale),
        statistics=_statistics(ledger, info.name, experiments) if ledger is not None else [],
        pending_reviews=[
            PendingReview(item.experiment.id, item.experiment.hypothesis, item.experiment.metric, item.why, item.branch)
            for item in pending_reviews(experiments)
        ],
    )


def plotted(rows: list[ExperimentRow]) -> tuple[list[float], list[float]]:
    """The numbers the plot places: each decided experiment's metric, and the running best."""
    points = [r.metric for r in rows if r.verdict is not None and r.metric is not None]
    bests = [r.best for r in rows if r.verdict is not None and r.best is not None]
    return points, bests


def y_limits(values: list[float], bests: list[float], minimize: bool, *, log: bool = False) -> tuple[float, float]:
    """The y range: all numbers, except far outliers on the losing side (a diverged run's 1e9
    would flatten the story; the plot marks them at the edge). ``log``: the range is found among
    the logarithms (numbers of 0 or less left out) and given back as plain numbers. The plot
    script (assets/plot.js, ``yDomain``) does the same."""
    if log:
        low, high = y_limits([math.log10(v) for v in values if v > 0], [math.log10(v) for v in bests if v > 0], minimize)
        return 10**low, 10**high
    if not values:
        return 0.0, 1.0
    reference = bests or values
    low, high = min(reference), max(reference)
    span = (high - low) or abs(high) * 0.1 or 1.0
    limit = high + 4 * span if minimize else low - 4 * span
    shown = [v for v in values if (v <= limit if minimize else v >= limit)] + reference
    low, high = min(shown), max(shown)
    pad = ((high - low) or abs(high) * 0.1 or 1.0) * 0.06
    return low - pad, high + pad


def y_axis(rows: list[ExperimentRow], direction: str, wanted: str = "auto") -> YAxis:
    """Log when asked, or on "auto" when the numbers a linear plot shows span more than a decade
    (then a keep from 100 to 90 and one from 2 to 1.8 look alike). A number of 0 or less has no
    place on a log axis: then it stays linear, with a note that says why."""
    if wanted not in Y_SCALES:
        raise ValueError(f"{wanted!r} is not one of {', '.join(Y_SCALES)}")
    values, bests = plotted(rows)
    low, high = y_limits(values, bests, direction == "minimize")
    shown = [v for v in values + bests if low <= v <= high]
    positive = [v for v in shown if v > 0]
    if wanted == "linear" or not positive or (wanted == "auto" and max(positive) <= DECADE * min(positive)):
        return YAxis("linear", wanted)
    # Every running best is some experiment's metric: counting the metrics counts each number once.
    below = sum(1 for v in values if low <= v <= high and v <= 0)
    if below:
        numbers = "1 number is" if below == 1 else f"{below} numbers are"
        return YAxis("linear", wanted, f"linear scale: {numbers} 0 or less, and a log scale cannot show them")
    return YAxis("log", wanted)


# id -> (the experiment object, the (best, champion before, baseline) its row was made with, the row)
RowMemo = dict[int, tuple[Experiment, tuple[float | None, float | None, float | None], "ExperimentRow"]]


def experiment_rows(experiments: Sequence[Experiment], memo: RowMemo | None = None) -> list[ExperimentRow]:
    """Every experiment as a row: against the baseline, against the champion its verdict saw, and
    the champion once it was decided (the plot's running best).

    ``memo``, kept by a caller that reads the same run again (the dashboard's follower): a row is
    made again only for an experiment that is a new object (read again) or whose champion before
    it or running best moved; the others are the rows of the last call, as they were."""
    baseline = next((e.metric for e in experiments if e.verdict is Verdict.BASELINE), None)
    rows: list[ExperimentRow] = []
    best: float | None = None  # the champion after each decision, as the plot steps it
    before: float | None = None  # the champion's recorded score the next verdict compares with
    for e in experiments:
        if e.verdict is Verdict.BASELINE or (e.verdict is Verdict.KEEP and e.metric is not None):
            best = e.metric
        inputs = (best, before, baseline)
        known = memo.get(e.id) if memo is not None else None
        if known is not None and known[0] is e and known[1] == inputs:
            rows.append(known[2])
        else:
            compared = None if e.verdict in (None, Verdict.BASELINE) else e.comparison(before)
            rows.append(_row(e, best if e.verdict is not None else None, baseline, compared))
            if memo is not None:
                memo[e.id] = (e, inputs, rows[-1])
        if e.verdict in (Verdict.KEEP, Verdict.BASELINE) and e.metric is not None:
            before = e.metric
    return rows


def champion_before(experiments: Sequence[Experiment], experiment_id: int) -> Experiment | None:
    """The champion an experiment was measured against: the last keep (or the baseline) before it."""
    found = None
    for e in experiments:
        if e.id >= experiment_id:
            break
        if e.verdict in (Verdict.KEEP, Verdict.BASELINE) and e.metric is not None:
            found = e
    return found


def _row(e: Experiment, best: float | None, baseline: float | None, compared: Comparison | None) -> ExperimentRow:
    raw = e.extra.get("candidate_samples")
    samples = [v for v in (_float(x) for x in raw) if v is not None and math.isfinite(v)] if isinstance(raw, list) else []
    return ExperimentRow(
        id=e.id, verdict=e.verdict.value if e.verdict else None, state=e.state, metric=_finite(e.metric),
        best=_finite(best), hypothesis=e.hypothesis, reason=e.reason, proposer=e.proposer, commit=e.commit,
        parent_commit=e.parent_commit, started=e.started, duration=e.duration, tokens_in=e.tokens_in,
        tokens_out=e.tokens_out, cost_usd=e.cost_usd,
        vs_baseline=None if e.verdict is Verdict.BASELINE else relative(baseline, e.metric),
        samples=len(samples), spread=(min(samples), max(samples)) if len(samples) > 1 else None,
        p_value=_finite(_float(e.extra.get("p_value"))), holdout=_finite(_float(e.extra.get("holdout"))),
        overfit=bool(e.extra.get("overfit")), champion=compared.champion if compared else None,
        champion_remeasured=compared.remeasured if compared else False,
        change=f"{compared.change:+.2%}" if compared and compared.change is not None else "",
        worker=worker_of(e), placement=placement_text(last_placement(e)),
    )  # fmt: skip


def worker_of(e: Experiment) -> int | None:
    """The worker slot that ran ``e`` (``extra["worker"]``, written with several workers), or None."""
    worker = e.extra.get("worker")
    return worker if isinstance(worker, int) and not isinstance(worker, bool) else None


def last_placement(e: Experiment) -> dict[str, Any] | None:
    """Where ``e``'s last sample ran (``extra["placements"]``: side, node, devices, attempt), or None."""
    placements = e.extra.get("placements")
    found = [p for p in placements if isinstance(p, dict)] if isinstance(placements, list) else []
    return found[-1] if found else None


def placement_text(placement: dict[str, Any] | None) -> str:
    """A placement in a few words: "node-1 gpu 0,1", "node-1", "gpu 3"; ", retried" when its first
    attempt's worker died; "" when there is none."""
    if placement is None:
        return ""
    node, devices = str(placement.get("node") or ""), str(placement.get("devices") or "")
    text = " ".join(part for part in (node, f"gpu {devices}" if devices else "") if part)
    attempt = placement.get("attempt")
    if isinstance(attempt, int) and attempt > 1 and text:
        text += ", retried"
    return text


def _kept(root: Path, e: Experiment, previous: float | None, baseline: float | None, diffs: bool) -> KeptChange:
    assert e.metric is not None
    return KeptChange(
        id=e.id, hypothesis=e.hypothesis, metric=e.metric, commit=e.commit, previous=previous,
        delta_previous=None if previous is None else e.metric - previous,
        relative_previous=relative(previous, e.metric),
        delta_baseline=None if baseline is None else e.metric - baseline,
        relative_baseline=relative(baseline, e.metric),
        diff=experiment_diff(root, e) if diffs else "",
    )  # fmt: skip


def relative(reference: float | None, value: float | None) -> float | None:
    if reference is None or value is None or reference == 0 or not math.isfinite(value):
        return None
    return (value - reference) / abs(reference)


def _finite(value: float | None) -> float | None:
    # JSON has no NaN or infinity; a plot has no place for them either.
    return value if value is not None and math.isfinite(value) else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def experiment_diff(root: Path, experiment: Experiment, limit: int = DIFF_LIMIT) -> str:
    """What an experiment changed (:func:`ratchet.workspace.git.experiment_diff`), cut at ``limit``
    characters: a report must stay a file a browser opens at once."""
    text = workspace_git.experiment_diff(root, experiment.commit, experiment.log_dir)
    if len(text) > limit:
        text = text[:limit] + f"\n… diff cut at {limit} characters (`ratchet show {experiment.id}` prints it all)\n"
    return text


def output_tail(experiment: Experiment, limit: int = TAIL_BYTES) -> str:
    """The last output of an experiment: the ledger's tail once it is done, the log files while in flight."""
    if experiment.verdict is not None and experiment.output_tail:
        return experiment.output_tail
    log_dir = Path(experiment.log_dir)
    try:
        logs = sorted(
            (p for p in log_dir.iterdir() if p.suffix in (".stdout", ".stderr") and p.is_file()),
            key=lambda p: (p.stat().st_mtime, p.name),
        )
    except OSError:
        return ""
    parts = []
    for path in logs[-2:]:  # the command running now writes the newest files
        text = read_tail(path, limit)
        if text.strip():
            parts.append(f"--- {path.name} ---\n{text.rstrip()}")
    return "\n".join(parts)


def in_flight(experiments: Sequence[Experiment], *, tails: bool = True) -> list[InFlight]:
    """Every experiment of ``experiments`` without a verdict yet, by id, as :class:`InFlight`
    (``tails``: with the newest output of each, read from its logs). Only the run holding the lock
    has experiments in flight: the caller asks it (a row left "running" by a killed run is none)."""
    return [_in_flight(e, tail=tails) for e in experiments if e.verdict is None]


def _in_flight(e: Experiment, *, tail: bool = True) -> InFlight:
    where = last_placement(e) or {}
    return InFlight(
        id=e.id, hypothesis=e.hypothesis, started=e.started, elapsed_s=max(0.0, time.time() - e.started),
        output_tail=output_tail(e) if tail else "", worker=worker_of(e), node=str(where.get("node") or ""),
        devices=str(where.get("devices") or ""), placement=placement_text(where or None),
    )  # fmt: skip


def _machines(ledger: Ledger, experiments: list[Experiment]) -> list[Machine]:
    counts: dict[str, int] = {}
    for e in experiments:
        if e.hardware:
            counts[e.hardware] = counts.get(e.hardware, 0) + experiment_count([e])
    baseline = next((e.hardware for e in experiments if e.verdict is Verdict.BASELINE), None)
    return [Machine(fp, n, fp == baseline, ledger.hardware(fp) or {}) for fp, n in counts.items()]


def _statistics(ledger: Ledger, run: str, experiments: list[Experiment]) -> list[Statistic]:
    """The newest noise estimate and confirmation of the run, as label/value pairs."""
    found = []
    for kind, extra_key, title in STATISTICS:
        events = ledger.events(run, kind) if hasattr(ledger, "events") else []
        if events:
            data, after = events[-1], events[-1].get("after_experiment")
        else:
            source = next((e for e in reversed(experiments) if isinstance(e.extra.get(extra_key), dict)), None)
            if source is None:
                continue
            data, after = source.extra[extra_key], source.id
        percent = data.get("scale") == "log"  # gains on a log scale are ratios: shown as percentages
        pairs = data.get("pairs")
        interval = not isinstance(pairs, int) or pairs >= 2
        summary = str(data.get("summary", ""))
        values = []
        for key, value in data.items():
            if key in _HIDDEN or isinstance(value, (list, dict)):
                continue
            if key in _INTERVAL_KEYS and not interval:
                if key == _INTERVAL_KEYS[0]:
                    values.append(("95% CI", NO_INTERVAL))
                continue
            style = "%" if key == "relative" else "+%" if percent and key in ("gain", "ci_low", "ci_high") else ""
            values.append((_LABELS.get(key, key.replace("_", " ")), _format(value, style)))
        if not interval:
            summary = _INTERVAL_CLAUSE.sub("", summary)
        found.append(Statistic(title=title, after_experiment=after, summary=summary, values=values))
    if (control := _error_control(experiments)) is not None:
        # Before the confirmation: the final interval against the baseline stays the last word.
        last_is_confirmation = bool(found) and found[-1].title == STATISTICS[-1][2]
        found.insert(len(found) - 1 if last_is_confirmation else len(found), control)
    return found


def _error_control(experiments: list[Experiment]) -> Statistic | None:
    """The run's estimated false-keep share: each test's level summed, over the keeps (an upper
    estimate of the expected share under the tests' own guarantees; e-LOND keeps it <= fdr)."""
    levels = [e.extra["test_level"] for e in experiments if isinstance(e.extra.get("test_level"), (int, float))]
    if not levels:
        return None
    keeps = sum(1 for e in experiments if e.verdict is Verdict.KEEP and isinstance(e.extra.get("test_level"), (int, float)))
    controls = {str(e.extra.get("error_control")) for e in experiments if "test_level" in e.extra}
    share = sum(levels) / keeps if keeps else None
    how = "run-level (e-LOND)" if controls == {"run"} else "per candidate" if controls == {"candidate"} else "mixed"
    summary = (
        f"Estimated false-keep share of this run's keeps: at most {share:.1%} ({how} error control, {len(levels)} tests, {keeps} keeps)"
        if share is not None else f"No keep yet among {len(levels)} tests ({how} error control)"
    )
    values = [("error control", how), ("tests", str(len(levels))), ("keeps", str(keeps)),
              ("est. false-keep share", "-" if share is None else f"{share:.1%}")]  # fmt: skip
    return Statistic(title="Error control", after_experiment=experiments[-1].id if experiments else None, summary=summary, values=values)


def _format(value: Any, style: str = "") -> str:
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "-"}[value]
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:+.2%}" if style == "+%" else f"{value:.2%}" if style == "%" else f"{value:.6g}"
    return str(value)


def run_is_active(root: Path, run: str) -> bool:
    """Whether a ``ratchet run`` holds the run's lock now (the loop takes it exclusively)."""
    return run_lock_holder(root / STATE_DIR, run) is not None


# What changes between two polls without a write to the ledger: the clock, the lock, the output of
# the experiments in flight, the sessions' wall time. Everything else is the rows' and the events'.
_LIVE = ("generated", "active", "lock_holder", "in_flight", "spending", "running")


def _json_safe(data: Any) -> Any:
    """Data of the views (dataclasses, dicts, lists, numbers) as JSON: NaN and infinity become null
    (as html.finite_json, which the screens share). As ``asdict`` and then that, without
    ``asdict``'s deep copy, which was half of a page's first poll at 10,000 rows."""
    if type(data) in _PLAIN:
        return data
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    # (Plain values are tested inline: a call per field was a third of a first poll.)
    if isinstance(data, dict):
        return {key: value if type(value) in _PLAIN else _json_safe(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [value if type(value) in _PLAIN else _json_safe(value) for value in data]
    if hasattr(type(data), "__dataclass_fields__"):
        names = _FIELD_NAMES.get(type(data)) or _FIELD_NAMES.setdefault(type(data), tuple(f.name for f in fields(data)))
        return {
            name: value if type(value) in _PLAIN else _json_safe(value) for name in names for value in [getattr(data, name)]
        }
    return data


_PLAIN = frozenset({str, int, bool, type(None)})  # JSON as they are (a float may be NaN)
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


@dataclass
class Poll:
    """What a follower of a run gets: the rows it lacks and the view's other fields."""

    data: dict[str, Any]  # RunView.to_json() less the rows the asker has (and less the unchanged summary)
    changed: bool  # anything but the live fields changed since the asker's cursor


class RunFollower:
    """The read model of one run kept between polls (the dashboard's): the rows are read again only
    when the ledger's revision of the run moved (:meth:`Ledger.revision` grows with every write of
    a row, one updated in place too, and of an event), and then only the rows written since. A poll
    that finds nothing new costs the live fields alone: the lock, the clock, the tail in flight.

    An asker holds a cursor: the last id it has, the revision and the token of the answer it got.
    It gets the rows after that id and those whose row *in the view* changed since (a keep found
    later moves the running best of every row after it); everything when the token is not this
    follower's (the server restarted) or a row was deleted since."""

    def __init__(self, root: Path, run: str, *, y_scale: str = "auto") -> None:
        self.root, self.run, self.y_scale = root, run, y_scale
        self.token = secrets.token_hex(6)
        self._lock = threading.Lock()  # a server answers polls from several threads
        self._info: RunInfo | None = None
        self._revision, self._reset = -1, 0
        self._experiments: dict[int, Experiment] = {}
        self._view: RunView | None = None
        self._rows: dict[int, ExperimentRow] = {}
        self._row_json: dict[int, dict[str, Any]] = {}
        self._row_revision: dict[int, int] = {}
        self._row_memo: RowMemo = {}
        self._summary: dict[str, Any] = {}
        self._running: list[Experiment] = []

    def view(self, ledger: Ledger, info: RunInfo) -> RunView:
        """The run's whole view, as :func:`run_view` (without diffs) reads it, from the cache."""
        with self._lock:
            self._refresh(ledger, info)
            assert self._view is not None
            return replace(self._view, **self._live(ledger, info))

    def poll(self, ledger: Ledger, info: RunInfo, *, after: int | None = None, revision: int | None = None, token: str | None = None) -> Poll:
        with self._lock:
            self._refresh(ledger, info)
            live = self._live(ledger, info)
            known = token == self.token and revision is not None and revision >= self._reset
            cursor = {"token": self.token, "revision": self._revision, "last_id": max(self._rows, default=-1)}
            if known and revision == self._revision:
                rows = [self._row_json[i] for i in self._rows if after is None or i > after]
                return Poll({**self._live_json(live), "experiments": rows, "complete": False, "changed": bool(rows), "cursor": cursor}, bool(rows))
            if known:
                assert revision is not None
                rows = [self._row_json[i] for i in self._rows if (after is not None and i > after) or self._row_revision[i] > revision]
                complete = False
            else:
                rows, complete = list(self._row_json.values()), True
            data = {**self._summary, **self._live_json(live), "experiments": rows, "complete": complete, "changed": True, "cursor": cursor}
            return Poll(data, True)

    def _refresh(self, ledger: Ledger, info: RunInfo) -> None:
        revision, reset = ledger.revision(info.name)
        if self._view is not None and revision == self._revision and info == self._info:
            return
        whole = self._view is None or info != self._info or reset > self._revision or revision < self._revision
        if whole:
            self._experiments, self._row_memo = {}, {}
            read = ledger.experiments(info.name)
        else:
            read = ledger.experiments(info.name, changed_since=self._revision)
        for e in read:
            # The tails stay in the ledger: the view shows a tail only while in flight, from the logs.
            # (Each row read is a fresh object of this follower's alone: set in place, not copied.)
            e.output_tail = ""
            if any(g.output_tail for g in e.guards):
                e.guards = [replace(g, output_tail="") if g.output_tail else g for g in e.guards]
            self._experiments[e.id] = e
        if not whole and any(e.id < max(self._experiments) for e in read if e.id not in self._rows):
            self._experiments = dict(sorted(self._experiments.items()))  # an id below the newest: keep id order
        experiments = list(self._experiments.values())
        view = view_of(self.root, ledger, info, experiments, diffs=False, y_scale=self.y_scale, memo=self._row_memo)
        rows = {row.id: row for row in view.experiments}
        for row_id, row in rows.items():
            if whole or ((known := self._rows.get(row_id)) is not row and known != row):  # (a row from the memo is the same object)
                self._row_json[row_id] = _json_safe(row)
                self._row_revision[row_id] = revision
        for gone in set(self._row_json) - set(rows):
            del self._row_json[gone], self._row_revision[gone]
            self._row_memo.pop(gone, None)
        self._rows, self._view, self._info = rows, view, info
        self._revision, self._reset = revision, reset
        self._running = [e for e in experiments if e.verdict is None]
        self._summary = {
            f.name: _json_safe(value)
            for f in fields(view)
            if f.name not in _LIVE and f.name != "experiments"
            for value in [getattr(view, f.name)]
        }

    def _live(self, ledger: Ledger, info: RunInfo) -> dict[str, Any]:
        assert self._view is not None
        holder = run_lock_holder(self.root / STATE_DIR, info.name)
        # As of the revision: a write to one of their rows moves the revision.
        running = in_flight(self._running) if holder is not None else []
        return {
            "generated": time.time(),
            "active": bool(running),
            "lock_holder": holder,
            "in_flight": running[-1] if running else None,
            "spending": replace(self._view.spending, wall_s=ledger.wall_spent(info.name)),
            "running": running,
        }

    @staticmethod
    def _live_json(live: dict[str, Any]) -> dict[str, Any]:
        return {key: _json_safe(value) for key, value in live.items()}
