"""``ratchet report --png``: the progress plot alone, as an image (matplotlib, an optional extra)."""

from __future__ import annotations

from pathlib import Path

from ratchet.report import require
from ratchet.report.data import ExperimentRow, RunView


def write_png(view: RunView, output: Path, *, width: float = 10.0, height: float = 4.5, dpi: int = 120) -> None:
    """The same picture as the report's plot: faint discards, kept dots, the running best as a step."""
    matplotlib = require("matplotlib", "ratchet report --png")
    matplotlib.use("Agg")  # no display needed, and none is wanted
    import matplotlib.pyplot as plt

    rows = view.experiments
    points = [r for r in rows if r.verdict is not None and r.metric is not None]
    decided = [r for r in rows if r.verdict is not None and r.best is not None]
    figure, axes = plt.subplots(figsize=(width, height), dpi=dpi)
    try:
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
        for r in kept:  # the original autoresearch plot names each keep
            axes.annotate(_short(r.hypothesis), (r.id, r.metric), textcoords="offset points", xytext=(4, 6),
                          fontsize=7, color="#0f5c31", rotation=20)  # fmt: skip
        low, high = y_limits(points, [r.best for r in decided if r.best is not None], view.direction == "minimize")
        axes.set_ylim(low, high)
        for r in points:  # far outliers on the losing side: a marker at the edge, as in the report
            if r.metric is not None and not low <= r.metric <= high:
                edge, marker = (high, "^") if r.metric > high else (low, "v")
                axes.scatter([r.id], [edge], marker=marker, s=30, color="#8a94a3", clip_on=False, zorder=2)
        better = "lower" if view.direction == "minimize" else "higher"
        axes.set_xlabel("experiment")
        axes.set_ylabel(f"{view.metric} ({better} is better)")
        axes.set_title(f"ratchet run {view.name}: {view.spending.measured} experiments, {len(kept)} kept", fontsize=11)
        axes.grid(True, color="#eef0f3")
        axes.legend(loc="best", fontsize=8, frameon=False)
        figure.tight_layout()
        figure.savefig(output, format="png")
    finally:
        plt.close(figure)


def _xy(rows: list[ExperimentRow]) -> tuple[list[int], list[float]]:
    return [r.id for r in rows if r.metric is not None], [r.metric for r in rows if r.metric is not None]


def y_limits(points: list[ExperimentRow], bests: list[float], minimize: bool) -> tuple[float, float]:
    """All numbers, except far outliers on the losing side (a diverged run's 1e9 flattens the story)."""
    values = [r.metric for r in points if r.metric is not None]
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


def _short(text: str, limit: int = 38) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
