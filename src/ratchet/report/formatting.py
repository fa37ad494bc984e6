"""How every screen writes a verdict and a number: light enough for a command that prints one
line (``status``, ``log``), without the live display and its Rich widgets."""

from __future__ import annotations

from ratchet.experiment import Verdict

# Rich style names, per verdict.
VERDICT_STYLE = {
    Verdict.BASELINE: "bold cyan",
    Verdict.KEEP: "bold green",
    Verdict.DISCARD: "yellow",
    Verdict.CRASH: "red",
    Verdict.TIMEOUT: "red",
    Verdict.INVALID: "magenta",
    Verdict.TAMPERED: "bold white on red",
    Verdict.ABANDONED: "dim",
    Verdict.OVERFIT: "yellow",
    Verdict.NEEDS_REVIEW: "bold blue",
    Verdict.STALE: "magenta",
    Verdict.LOST: "red",
}


def format_metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def format_change(reference: float | None, value: float | None) -> str:
    if reference is None or value is None or reference == 0:
        return ""
    return f"{(value - reference) / abs(reference):+.2%}"
