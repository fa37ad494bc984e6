"""``ratchet report``: one self-contained HTML file that tells a run's story, and works offline.

The file embeds its style, its plot script and its data; it loads nothing. Everything a
proposer wrote (hypotheses, diffs, output) is escaped: it is untrusted text.
"""

from __future__ import annotations

import json
import math
import time
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from ratchet._version import __version__
from ratchet.budget import hms
from ratchet.ledger import Ledger, RunInfo
from ratchet.report.data import RunView, run_view
from ratchet.report.formatting import format_metric

# Rows of the full ledger table in the report; longer runs show the newest ones.
ALL_ROWS_LIMIT = 2000


def asset(name: str) -> str:
    """A file of ``report/assets`` (the plot script, the style sheet), as text."""
    return (resources.files("ratchet.report") / "assets" / name).read_text(encoding="utf-8")


def json_for_script(data: Any) -> Markup:
    """JSON that is safe inside a <script> element: no '<', '>' or '&' can close or open a tag."""
    text = json.dumps(finite_json(data), allow_nan=False, separators=(",", ":"), default=str)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def finite_json(data: Any) -> Any:
    # JSON has no NaN or infinity: they become null (the plot leaves such a number out).
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite_json(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_json(value) for value in data]
    return data


def fmt_delta(value: float | None) -> str:
    return "" if value is None else f"{value:+.4g}"


def fmt_percent(value: float | None) -> str:
    return "" if value is None else f"{value:+.2%}"


def better_class(delta: float | None, direction: str) -> str:
    """'good' when a change moves the metric the right way, 'bad' when the wrong way."""
    if not delta:
        return ""
    return "good" if (delta < 0) == (direction == "minimize") else "bad"


def fmt_time(timestamp: float | None) -> str:
    return "-" if timestamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def diff_lines(diff: str) -> list[tuple[str, str]]:
    """Lines of a unified diff with a class each, for colouring."""
    lines = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---", "diff --git", "index ", "new file", "deleted file")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = ""
        lines.append((kind, line))
    return lines


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("ratchet.report", "templates"),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        metric=format_metric, delta=fmt_delta, percent=fmt_percent, hms=hms, datetime=fmt_time, diff_lines=diff_lines
    )
    env.globals.update(asset=asset, better=better_class, version=__version__)
    return env


def plot_data(view: RunView) -> dict[str, Any]:
    """What the plot script needs, and no more (diffs stay out of the embedded JSON)."""
    data = view.to_json()
    return {
        "name": data["name"],
        "metric": data["metric"],
        "direction": data["direction"],
        "experiments": data["experiments"],
        "in_flight": data["in_flight"],
        "running": data["running"],
        "y_axis": data["y_axis"],
    }


def render_report(view: RunView, repository: Path) -> str:
    rows = view.experiments[-ALL_ROWS_LIMIT:]
    return environment().get_template("report.html.j2").render(
        view=view,
        repository=str(repository),
        rows=list(reversed(rows)),
        rows_cut=len(view.experiments) - len(rows),
        plot_json=json_for_script(plot_data(view)),
        holdout_of={row.id: row.holdout for row in view.experiments},
    )


def write_report(root: Path, ledger: Ledger, info: RunInfo, output: Path, *, y_scale: str = "auto") -> RunView:
    """Read the run, write the report to ``output``; return what was shown."""
    view = run_view(root, ledger, info, y_scale=y_scale)
    output.write_text(render_report(view, root), encoding="utf-8")
    return view
