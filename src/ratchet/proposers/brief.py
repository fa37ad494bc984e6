"""The brief handed to a proposer that reads text: program.md plus what the loop knows."""

from __future__ import annotations

from ratchet.experiment import Verdict
from ratchet.proposers.base import ProposalContext

HISTORY_ROWS = 40
# Experiments in flight shown to a proposer (several workers): a bound, so a prompt does not grow
# with ``[run] workers``; the rest are counted in one line.
IN_FLIGHT_ROWS = 16

RULES = """\
## Rules
- Change only files inside the scope above; any other change is rejected unmeasured.
- Never touch the harness (the measurement's files): a change there is caught and discarded.
- One idea per experiment, so that its effect can be measured on its own.
- Write a one-line hypothesis (what you changed and why it should help) to the hypothesis file.
- Numbers you measure yourself are ignored: ratchet measures every candidate itself.
"""


def history_table(context: ProposalContext, rows: int = HISTORY_ROWS) -> str:
    """A compact table of earlier experiments, discards and crashes included (so ideas are not repeated)."""
    done = [e for e in context.history if e.verdict is not None]
    if not done:
        return "(no experiments yet)"
    lines = ["| id | verdict | metric | hypothesis |", "|---:|---|---:|---|"]
    for experiment in done[-rows:]:
        metric = "" if experiment.metric is None else f"{experiment.metric:.6g}"
        hypothesis = " ".join(experiment.hypothesis.split())[:160] or "-"
        lines.append(f"| {experiment.id} | {experiment.verdict} | {metric} | {hypothesis} |")
    if len(done) > rows:
        lines.insert(2, f"| … | {len(done) - rows} older experiments omitted | | |")
    return "\n".join(lines)


def in_flight(context: ProposalContext, chars: int = 160, rows: int = IN_FLIGHT_ROWS) -> tuple[list[tuple[int, str]], int]:
    """The other experiments being measured now, as (id, hypothesis cut to ``chars``), and how many
    more were left out. Only those already proposed: one still being proposed has nothing to avoid."""
    proposed = [e for e in context.in_flight if e.hypothesis.strip() and e.id != context.iteration]
    shown = []
    for experiment in proposed[:rows]:
        text = " ".join(experiment.hypothesis.split())
        shown.append((experiment.id, text if len(text) <= chars else text[: chars - 1] + "…"))
    return shown, len(proposed) - len(shown)


def in_flight_section(context: ProposalContext) -> str:
    """The brief's "being measured now" section, or "" when nothing else is in flight."""
    shown, more = in_flight(context)
    if not shown:
        return ""
    lines = [f"- #{id} {hypothesis}" for id, hypothesis in shown]
    if more:
        lines.append(f"- … and {more} more")
    return "\n## Being measured now: do not propose these again\n" + "\n".join(lines) + "\n"


def render_brief(context: ProposalContext, hypothesis_file: str) -> str:
    champion = "unknown" if context.champion_metric is None else f"{context.champion_metric:.6g}"
    baseline = "unknown" if context.baseline_metric is None else f"{context.baseline_metric:.6g}"
    kept = sum(1 for e in context.history if e.verdict is Verdict.KEEP)
    goal = "lower" if context.direction == "minimize" else "higher"
    files = "\n".join(f"- {path}" for path in context.scope_files) or "- (none)"
    return f"""{context.brief.rstrip()}

# Experiment {context.iteration} of run {context.run}

Metric: `{context.metric_name}`, {goal} is better. Champion: {champion} (baseline {baseline}, {kept} kept so far).

## Scope (the files you may change)
Globs: {", ".join(context.scope)}
{files}

## History
{history_table(context)}
{in_flight_section(context)}
{RULES}
Hypothesis file: {hypothesis_file}
"""
