"""The terminal view of ``ratchet run``: one line per experiment, and a live panel on a TTY."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ratchet.budget import Budget, Progress, hms
from ratchet.events import RunObserver
from ratchet.experiment import Experiment, Verdict
from ratchet.report.data import worker_of
from ratchet.report.formatting import VERDICT_STYLE, format_change, format_metric

if TYPE_CHECKING:
    from ratchet.config import Config
    from ratchet.events import RunSummary
    from ratchet.ledger import RunInfo

SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
# Verdicts in the panel's "last" row: how many, and the short word each gets.
RECENT_VERDICTS = 8


def sparkline(values: Sequence[float], width: int = 32) -> str:
    """The values as a row of block characters, lowest ▁ to highest █; a long series is sampled."""
    if not values:
        return ""
    if len(values) > width:  # evenly spaced samples, always ending on the latest value
        values = [values[round(i * (len(values) - 1) / (width - 1))] for i in range(width)]
    low, high = min(values), max(values)
    if high == low:
        return SPARK_BLOCKS[0] * len(values)
    top = len(SPARK_BLOCKS) - 1
    return "".join(SPARK_BLOCKS[round((v - low) / (high - low) * top)] for v in values)


class Display(RunObserver):
    """The loop's announcements as plain lines on a console (the base of the live panel)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)
        self.metric_name = "metric"
        self.baseline: float | None = None
        # The champion's recorded score: what a verdict that does not re-measure compares with.
        self.champion: float | None = None
        self.started = time.monotonic()
        self.finished_this_session = 0

    def start(self, info: "RunInfo", config: "Config", resumed: bool) -> None:
        self.metric_name = info.metric_name
        verb = "Resuming" if resumed else "Starting"
        self.console.print(
            f"{verb} run [bold]{info.name}[/] on branch [bold]{info.branch}[/] "
            f"({info.metric_name}, {info.direction}; proposer {config.proposer.kind})"
        )

    def experiment_started(self, experiment: Experiment) -> None:
        pass

    def experiment_done(self, experiment: Experiment) -> None:
        assert experiment.verdict is not None
        comparison = None
        if experiment.verdict is Verdict.BASELINE:
            self.baseline = experiment.metric
        else:
            self.finished_this_session += 1
            # The comparison the verdict made (a re-measured champion), never a stale score.
            comparison = experiment.comparison(self.champion)
        if experiment.verdict in (Verdict.BASELINE, Verdict.KEEP) and experiment.metric is not None:
            self.champion = experiment.metric
        style = VERDICT_STYLE.get(experiment.verdict, "")
        worker = worker_of(experiment)  # set only when the run has several workers
        line = Text.assemble(
            (f"#{experiment.id:<4}", "bold"),
            (f"{experiment.verdict.value:<9}", style),
            (f" w{worker}" if worker is not None else "", "cyan"),
            f" {self.metric_name}={format_metric(experiment.metric)}",
            (f" ({comparison.describe()})" if comparison is not None else "", "dim"),
            f"  {' '.join(experiment.hypothesis.split())[:90]}",
        )
        self.console.print(line)
        if experiment.verdict not in (Verdict.KEEP, Verdict.DISCARD, Verdict.BASELINE) and experiment.reason:
            self.console.print(Text(f"      {experiment.reason}", style="dim"))
        for guard in experiment.guards:  # a failing guard's own words, not just its exit code
            if not guard.passed and not guard.skipped:
                self.console.print(Text("      " + guard.failure_text().replace("\n", "\n      "), style="dim"))

    def progress(self, progress: Progress, budget: Budget, baseline: float | None, champion: float | None) -> None:
        self.baseline = baseline
        self.champion = champion

    def champion_is(self, baseline: float | None, champion: float | None) -> None:
        """The run's baseline and champion scores, when no progress report precedes an experiment (a try)."""
        self.baseline = baseline
        self.champion = champion

    def message(self, text: str) -> None:
        self.console.print(text)

    def warning(self, text: str) -> None:
        self.console.print(Text(f"warning: {text}", style="yellow"))

    def alarm(self, text: str) -> None:
        self.console.print(Text(f"!!! {text} !!!", style="bold white on red"))

    def finish(self, summary: "RunSummary") -> None:
        counts = ", ".join(f"{n} {verdict}" for verdict, n in sorted(summary.counts.items()))
        change = format_change(summary.baseline_metric, summary.champion_metric)
        self.console.print(f"Stopped: {summary.stop_reason}.")
        self.console.print(
            f"Champion {self.metric_name}={format_metric(summary.champion_metric)} "
            f"(baseline {format_metric(summary.baseline_metric)}{', ' + change if change else ''}) "
            f"at {summary.champion_commit[:7]} on {summary.branch}. Experiments: {counts}."
        )

    def close(self) -> None:
        pass


PlainDisplay = Display


@dataclass
class Running:
    """An experiment in flight, as the panel shows it."""

    experiment: Experiment
    started: float  # time.monotonic() when it started
    samples: int = 0


class LiveDisplay(Display):
    """Plain lines scroll above a live panel: iteration, best vs baseline, counts, budget, ETA, and
    one row per experiment in flight (one per worker with [run] workers = N).

    The driver thread announces experiments started and done, a worker's thread may announce a
    sample, and Rich's refresh thread draws the panel: what they share is read and written under
    one lock, never held while printing (printing takes Rich's own lock, which the refresh holds)."""

    def __init__(self, console: Console | None = None) -> None:
        super().__init__(console)
        self.live = Live(console=self.console, auto_refresh=True, refresh_per_second=4, transient=True)
        self._lock = threading.Lock()
        self.counts: dict[Verdict, int] = {}
        self.running: dict[int, Running] = {}  # by experiment id
        self.progress_state: tuple[Progress, Budget, float | None, float | None] | None = None
        # The champion's metric after each experiment of this session (the running best), and
        # the newest verdicts: the trend and the mood of the run at a glance.
        self.best_history: list[float] = []
        self.recent: deque[Verdict] = deque(maxlen=RECENT_VERDICTS)
        self.live.start()
        self.live.update(self, refresh=False)

    def experiment_started(self, experiment: Experiment) -> None:
        with self._lock:
            self.running[experiment.id] = Running(experiment, time.monotonic())

    def sample(self, experiment: Experiment, role: str, value: float) -> None:
        with self._lock:
            found = self.running.get(experiment.id)
            if found is not None and role == "candidate":
                found.samples += 1

    def experiment_done(self, experiment: Experiment) -> None:
        assert experiment.verdict is not None
        with self._lock:
            self.counts[experiment.verdict] = self.counts.get(experiment.verdict, 0) + 1
            self.running.pop(experiment.id, None)
            if experiment.verdict in (Verdict.BASELINE, Verdict.KEEP) and experiment.metric is not None:
                self.best_history.append(experiment.metric)
            elif self.best_history:
                self.best_history.append(self.best_history[-1])
            if experiment.verdict is not Verdict.BASELINE:
                self.recent.append(experiment.verdict)
        super().experiment_done(experiment)

    def progress(self, progress: Progress, budget: Budget, baseline: float | None, champion: float | None) -> None:
        super().progress(progress, budget, baseline, champion)
        with self._lock:
            self.progress_state = (progress, budget, baseline, champion)
            if not self.best_history and champion is not None:  # a resumed run: start from its champion
                self.best_history.append(champion)

    def __rich__(self) -> Panel:
        with self._lock:
            return self._panel()

    def _panel(self) -> Panel:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="dim")
        table.add_column()
        if self.progress_state is not None:
            progress, budget, baseline, champion = self.progress_state
            total = "" if budget.iterations is None else f"/{budget.iterations}"
            table.add_row("iteration", f"{progress.measured}{total}")
            change = format_change(baseline, champion)
            table.add_row("best", f"{format_metric(champion)}  (baseline {format_metric(baseline)}{', ' + change if change else ''})")
            left = []
            if (n := budget.iterations_left(progress)) is not None:
                left.append(f"{n} experiments")
            if (w := budget.wall_left(progress)) is not None:
                left.append(hms(w))
            table.add_row("budget left", ", ".join(left) or "unbounded")
            eta = self._eta(budget, progress)
            if eta is not None:
                table.add_row("ETA", hms(eta))
        counts = "  ".join(
            f"[{VERDICT_STYLE[v]}]{v.value}[/] {n}" for v, n in self.counts.items() if v is not Verdict.BASELINE
        )
        table.add_row("verdicts", counts or "-")
        if len(self.best_history) > 1:
            table.add_row("best so far", Text.assemble(
                (sparkline(self.best_history), "green"),
                f"  {format_metric(self.best_history[0])} → {format_metric(self.best_history[-1])}",
            ))  # fmt: skip
        if self.recent:
            table.add_row("last", Text(" ").join(Text(v.value, style=VERDICT_STYLE[v]) for v in self.recent))
        now = time.monotonic()
        # One row per worker busy (by worker; an experiment without one is the only one in flight).
        for flight in sorted(self.running.values(), key=lambda r: (worker_of(r.experiment) or 0, r.experiment.id)):
            table.add_row("running", Text(running_text(flight, now)))
        return Panel(Group(table), title="ratchet", expand=False)

    def _eta(self, budget: Budget, progress: Progress) -> float | None:
        if not self.finished_this_session:
            return None
        per_experiment = (time.monotonic() - self.started) / self.finished_this_session
        estimates = []
        if (n := budget.iterations_left(progress)) is not None:
            estimates.append(n * per_experiment)
        if (w := budget.wall_left(progress)) is not None:
            estimates.append(w)
        return min(estimates) if estimates else None

    def finish(self, summary: "RunSummary") -> None:
        self.close()
        super().finish(summary)

    def close(self) -> None:
        if self.live.is_started:
            self.live.stop()


def running_text(flight: Running, now: float) -> str:
    """A row of the panel: "w2  #12 for 34s, 3 samples  <hypothesis>" ("w2" with several workers)."""
    e = flight.experiment
    worker = worker_of(e)
    samples = f", {flight.samples} sample{'s' if flight.samples != 1 else ''}" if flight.samples else ""
    hypothesis = " ".join(e.hypothesis.split())
    text = f"{f'w{worker}  ' if worker is not None else ''}#{e.id} for {now - flight.started:.0f}s{samples}"
    return text + (f"  {hypothesis[:60]}{'…' if len(hypothesis) > 60 else ''}" if hypothesis else "")


def make_display(console: Console | None = None) -> Display:
    """A live panel on a terminal; plain lines anywhere else (CI, pipes, tests)."""
    console = console or Console(highlight=False)
    return LiveDisplay(console) if console.is_terminal else Display(console)
