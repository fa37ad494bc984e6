"""``ratchet report --png``: the progress plot alone, as an image (matplotlib, an optional extra)."""

from __future__ import annotations

from pathlib import Path

from ratchet.report import require
from ratchet.report.data import ExperimentRow, RunView, plotted, y_limits

# Verdicts drawn as a cross under the axis when they left no number; the legend names them.
FAILURES = ("crash", "timeout", "invalid", "tampered", "abandoned")
FAILURE_LABEL = "crash, timeout, invalid, tampered: no number"  # the report's legend says the same


def write_png(view: RunView, output: Path, *, width: float = 10.0, height: float = 4.5, dpi: int = 120) -> None:
    """The same picture as the report's plot: faint discards, kept dots, the running best as a step,
    failures as crosses under the axis, on the y scale the view chose."""
    matplotlib = require("matplotlib", "ratchet report --png")
    matplotlib.use("Agg")  # no display needed, and none is wanted
    import matplotlib.pyplot as plt

    rows = view.experiments
    points = [r for r in rows if r.verdict is not None and r.metric is not None]
    decided = [r for r in rows if r.verdict is not None and r.best is not None]
    failures = [r for r in rows if r.verdict in FAILURES and r.metric is None]
    log = view.y_axis.scale == "log"
    figure, axes = plt.subplots(figsize=(width, height), dpi=dpi)
    try:
        if log:  # ticks at 1, 2 and 5 of each decade, written plainly, as in the report
            from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

            axes.set_yscale("log")
            axes.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            axes.yaxis.set_minor_formatter(NullFormatter())
        faint = [r for r in points if r.verdict not in ("keep", "baseline")]
        axes.scatter(*_xy(faint), s=18, color="#8a94a3", alpha=0.35, label="discarded", zorder=2)
        kept = [r for r in points if r.verdict == "keep"]
        axes.scatter(*_xy(kept), s=40, color="#1f9d55", edgecolor="#0f5c31", label="kept", zorder=4)
        base = [r for r in points if r.verdict == "baseline"]
        axes.scatter(*_xy(base), s=40, color="#2f6fdf", edgecolor="#173f86", label="baseline", zorder=4)
        if decided:
            xs = [r.id for r in decided] + [rows[-1].id]
            ys = [r.best for r in decided if r.best is not None]
            ys.append(ys[-1])
            axes.step(xs, ys, where="post", color="#1f9d55", linewidth=1.8, label="running best", zorder=3)
        # x in experiments, y in the axes' height: a row of crosses just above the x axis.
        axes.scatter([r.id for r in failures], [0.04] * len(failures), transform=axes.get_xaxis_transform(),
                     marker="x", s=30, color="#d64545", label=FAILURE_LABEL, zorder=4)  # fmt: skip
        for r in kept:  # the original autoresearch plot names each keep
            axes.annotate(_short(r.hypothesis), (r.id, r.metric), textcoords="offset points", xytext=(4, 6),
                          fontsize=7, color="#0f5c31", rotation=20)  # fmt: skip
        values, bests = plotted(rows)
        low, high = y_limits(values, bests, view.direction == "minimize", log=log)
        axes.set_ylim(low, high)
        for r in points:  # far outliers on the losing side: a marker at the edge, as in the report
            if r.metric is not None and not low <= r.metric <= high:
                edge, marker = (high, "^") if r.metric > high else (low, "v")
                axes.scatter([r.id], [edge], marker=marker, s=30, color="#8a94a3", clip_on=False, zorder=2)
        better = "lower" if view.direction == "minimize" else "higher"
        axes.set_xlabel("experiment")
        axes.set_ylabel(f"{view.metric} ({better} is better{', log scale' if log else ''})")
        title = f"ratchet run {view.name}: {view.experiment_count} experiments, {len(kept)} kept"
        axes.set_title(title + (f"\n{view.y_axis.note}" if view.y_axis.note else ""), fontsize=11)
        axes.grid(True, color="#eef0f3")
        axes.legend(loc="best", fontsize=8, frameon=False)
        figure.tight_layout()
        figure.savefig(output, format="png")
    finally:
        plt.close(figure)


def _xy(rows: list[ExperimentRow]) -> tuple[list[int], list[float]]:
    return [r.id for r in rows if r.metric is not None], [r.metric for r in rows if r.metric is not None]


def _short(text: str, limit: int = 38) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
