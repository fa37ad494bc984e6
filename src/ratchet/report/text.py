"""The command line's views, printed on a Rich console: a run's status, log and experiments, an
ablation, the review queue, doctor's and probe's findings, the recipes. They print what the ledger
(or a command) already says; they decide nothing."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ratchet.budget import hms
from ratchet.experiment import Experiment, Verdict
from ratchet.report.data import last_placement, placement_text, worker_of
from ratchet.report.formatting import VERDICT_STYLE, format_change, format_metric

if TYPE_CHECKING:  # what a command found is only read here: the commands sit above the screens
    from rich.console import Console
    from rich.syntax import Syntax

    from ratchet.commands.analysis import Ablation
    from ratchet.experiment import Pending
    from ratchet.ledger import RunInfo
    from ratchet.workspace.preflight import Finding
    from ratchet.commands.probe.findings import AttackResult, ProbeReport
    from ratchet.commands.scaffold import Recipe


def _diff(diff: str) -> Syntax:
    from rich.syntax import Syntax  # pygments: only for a command that prints a diff

    return Syntax(diff, "diff", theme="ansi_dark", background_color="default")


def _verdict(e: Experiment) -> str:
    """The verdict with its colour, as markup; "running" before there is one."""
    verdict = e.verdict.value if e.verdict else "running"
    style = VERDICT_STYLE.get(e.verdict, "") if e.verdict else ""
    return f"[{style}]{verdict}[/]" if style else verdict


def print_status(console: Console, data: dict[str, Any]) -> None:
    """``ratchet status``: what :func:`ratchet.commands.show.status_data` says, one fact a line."""
    state = f"running (pid {data['pid']})" if data["active"] else "not running"
    console.print(f"[bold]{data['run']}[/] on {data['branch']} — {state}")
    if data.get("sandbox_warning"):
        console.print("[yellow]warning:[/] ", end="")
        console.print(data["sandbox_warning"], markup=False, highlight=False)  # "[sandbox] mode" is no markup
    change = format_change(data["baseline"], data["champion"])
    console.print(
        f"{data['metric']} ({data['direction']}): champion {format_metric(data['champion'])} "
        f"(experiment {data['champion_experiment']}), baseline {format_metric(data['baseline'])}"
        + (f", {change}" if change else "")
    )
    counts = ", ".join(f"{n} {v}" for v, n in sorted(data["counts"].items()))
    console.print(f"experiments: {data['experiments']} measured, besides the baseline ({counts})")
    console.print(f"budget: {_budget_line(data)}")
    if data["noise"] and not data["noise"]["deterministic"]:
        noise = data["noise"]
        relative = f" ({noise['relative']:.2%})" if noise.get("relative") is not None else ""
        console.print(f"noise: one measurement sd {noise['sd_single']:.4g}{relative} (A/A, {noise['pairs']} pairs)")
    if data["holdout_trend"]:
        trend = " → ".join(f"{h['holdout']:.6g}{' (overfit)' if h['overfit'] else ''}" for h in data["holdout_trend"])
        console.print(f"holdout (champions): {trend}")
    if data["confirmation"]:
        console.print(data["confirmation"]["summary"], markup=False)
    if data["pending_reviews"]:
        waiting = ", ".join(f"#{item['id']} ({item['why']})" for item in data["pending_reviews"])
        console.print(f"waiting for review: {waiting} — ratchet review", markup=False)
    for flight in data.get("running") or []:
        worker = f" on worker {flight['worker']}" if flight.get("worker") is not None else ""
        where = f" ({flight['placement']})" if flight.get("placement") else ""
        what = " ".join((flight.get("hypothesis") or "").split()) or "(proposing)"
        console.print(f"running: #{flight['id']}{worker}{where} for {_since(flight['elapsed_s'])} — {what}", markup=False)
    if data["last"]:
        last = data["last"]
        console.print(f"last: #{last['id']} {last['verdict'] or 'running'} — {last['hypothesis']}", markup=False)


def _since(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 60 else hms(seconds)


def _budget_line(data: dict[str, Any]) -> str:
    """Spent against the budget: iterations, wall time and, when either counts, tokens and money."""
    budget = data["budget"]
    iterations = f"{data['measured']}/{budget['iterations']}" if budget["iterations"] is not None else str(data["measured"])
    wall = hms(data["wall_spent_s"]) + (f"/{hms(budget['wall_s'])}" if budget["wall_s"] else "")
    spending = ""
    if data["tokens"] or budget["tokens"] or budget["cost_usd"]:
        tokens = f"{data['tokens']}" + (f"/{budget['tokens']}" if budget["tokens"] else "")
        cost = f"${data['cost_usd']:.4f}" + (f"/${budget['cost_usd']:g}" if budget["cost_usd"] else "")
        spending = f", {tokens} tokens, {cost}"
    return f"{iterations} iterations, {wall} wall time{spending}"


def print_log(console: Console, info: RunInfo, experiments: Sequence[Experiment], *, baseline: Experiment | None = None) -> None:
    """``ratchet log``: one row per experiment, its metric against the baseline's (``baseline``:
    the run's first experiment, when ``experiments`` are a part of the run that may lack it)."""
    from rich.table import Table
    from rich.text import Text

    found = (e for e in (*experiments, *([baseline] if baseline else [])) if e.verdict is Verdict.BASELINE)
    reference = next((e.metric for e in found), None)
    table = Table(title=f"{info.name}: {info.metric_name} ({info.direction})", title_justify="left")
    # The worker column, when the run had several workers ([run] workers = N).
    workers = any(worker_of(e) is not None for e in experiments)
    columns = [("id", "right"), ("verdict", "left"), (info.metric_name, "right"), ("vs baseline", "right"), ("commit", "left")]
    for column, justify in [*columns, *([("worker", "left")] if workers else []), ("hypothesis", "left")]:
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for e in experiments:
        worker = worker_of(e)
        where = [Text((f"w{worker} " if worker is not None else "") + placement_text(last_placement(e)))] if workers else []
        table.add_row(
            str(e.id), _verdict(e), format_metric(e.metric),
            format_change(reference, e.metric) if e.verdict is not Verdict.BASELINE else "",
            (e.commit or "")[:7], *where, Text(" ".join(e.hypothesis.split())),  # Text: "[tuning …]" is not markup
        )  # fmt: skip
    console.print(table)


def print_experiment(console: Console, info: RunInfo, e: Experiment, diff: str) -> None:
    """``ratchet show``: one experiment, its guards (a failed one in its own words), diff and output."""
    console.print(f"[bold]experiment {e.id}[/] of {info.name}: {_verdict(e)}")
    console.print(f"hypothesis: {e.hypothesis or '-'}", markup=False)
    if e.reason:
        console.print(f"reason:     {e.reason}", markup=False)
    if (level := level_line(e)) is not None:
        console.print(f"test:       {level}", markup=False)
    console.print(f"{info.metric_name}: {format_metric(e.metric)}   parent {e.parent_commit[:7]}   commit {(e.commit or '-')[:7]}")
    duration = f"{e.duration:.2f}s" if e.duration is not None else "-"
    console.print(f"proposer: {e.proposer}   duration {duration}   hardware {e.hardware}   logs {e.log_dir}", markup=False)
    for guard in e.guards:
        mark = "pass" if guard.passed else "FAIL"
        value = f" = {guard.value:g}" if guard.value is not None else ""
        console.print(f"guard {guard.name}: {mark}{value} {guard.reason}", markup=False)
        if not guard.passed and guard.output_tail.strip():  # why it failed, in its own words
            console.print("\n".join("    " + line for line in guard.output_tail.rstrip().splitlines()), markup=False, highlight=False)
    if diff.strip():
        console.print("\n[bold]diff[/]")
        console.print(_diff(diff))
    if e.output_tail.strip():
        console.print("\n[bold]output tail[/]")
        console.print(e.output_tail, markup=False)


def level_line(e: Experiment) -> str | None:
    """The level the verdict tested this candidate at, and under which error control, if it recorded one."""
    level = e.extra.get("test_level")
    if not isinstance(level, (int, float)) or isinstance(level, bool):
        return None
    control = e.extra.get("error_control")
    how = {"run": "run-level error control (e-LOND)", "candidate": "per-candidate alpha"}.get(str(control), str(control or "per-candidate alpha"))
    shown = f"at level {level:.3g} ({how})"
    e_value = e.extra.get("e_value")
    if isinstance(e_value, (int, float)) and not isinstance(e_value, bool) and e_value > 0:
        shown += f", e-value {e_value:.3g}"
    return shown


def print_ablation(console: Console, run: str, results: Sequence[Ablation]) -> None:
    """``ratchet ablate``: whether each kept commit contributes, then the ones that do not."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{run}: leave-one-out", title_justify="left")
    for column in ("id", "commit", "contributes", "hypothesis", "detail"):
        table.add_column(column)
    for r in results:
        mark = "[green]yes[/]" if r.contributes else ("[red]NO[/]" if r.contributes is False else "?")
        table.add_row(str(r.experiment), r.commit[:7], mark, Text(r.hypothesis), Text(r.detail))
    console.print(table)
    idle = [r for r in results if r.contributes is False]
    if idle:
        console.print("Kept but not contributing: " + ", ".join(f"#{r.experiment} ({r.commit[:7]})" for r in idle))


def print_review_queue(console: Console, run: str, queue: Sequence[Pending], diff_of: Callable[[Pending], str]) -> None:
    """``ratchet review``: each held experiment, why it waits, the verdict it had, its diff."""
    if not queue:
        console.print(f"Nothing waits for review in run {run!r}.", markup=False)
        return
    for item in queue:
        e = item.experiment
        console.print(f"#{e.id}  {format_metric(e.metric)}  {' '.join(e.hypothesis.split())}", markup=False)
        console.print(f"     waits because {item.why}; held on {item.branch}", markup=False)
        console.print(f"     verdict then: {e.reason}", markup=False)
        console.print(_diff(diff_of(item)))
    console.print("ratchet review approve ID (re-measured against the champion of now) | ratchet review reject ID -m WHY", markup=False)


# ---------------------------------------------------------------- set-up: recipes, demo, doctor, probe


def print_recipes(console: Console, found: Sequence[Recipe]) -> None:
    """``ratchet init --list-recipes``: each recipe, what it measures, which proposer fits."""
    for recipe in found:
        console.print(f"{recipe.name:<14} {recipe.title}", markup=False, highlight=False)
        console.print(f"{'':<14} metric: {recipe.metric}; proposer: {recipe.proposer}; one experiment: {recipe.experiment_time}", markup=False, highlight=False)
    console.print("\nratchet init --recipe NAME writes its files here; ratchet demo --example NAME runs its complete example.", markup=False)


def print_demo_results(console: Console, target: Path, branch: str) -> None:
    """After ``ratchet demo``: where the results are and the commands that read them."""
    console.print(
        f"\nResults: the kept experiments are commits on {branch} in {target}.\n"
        f"  cd {target}\n  ratchet log            # every experiment\n  ratchet show 1         # one experiment, with its diff\n"
        f"  ratchet export         # results.tsv\n  git log --oneline {branch}"
    )


def print_check(console: Console, mark: str, width: int, what: str, detail: str, fix: str) -> None:
    """One finding of doctor or probe: its (markup) mark, what was checked, what was found, the fix."""
    console.print(f"  {mark} {what}: ", end="")
    console.print(detail, markup=False)
    if fix:
        console.print(f"{'':<{width + 3}}fix: {fix}", markup=False)


_FINDING_MARK = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def print_finding(console: Console, finding: Finding) -> None:
    """One check of ``ratchet doctor``, as it comes."""
    print_check(console, f"[{_FINDING_MARK[finding.status]}]{finding.status:<4}[/]", 4, finding.what, finding.detail, finding.fix)


_ATTACK_MARK = {"caught": "[green]caught    [/]", "not caught": "[bold red]NOT CAUGHT[/]", "skipped": "[dim]skipped   [/]"}


def print_probe_start(console: Console, root: Path, report: ProbeReport) -> None:
    """``ratchet probe`` once the champion is measured: what the attacks are up against."""
    fake = f"; attacks claim {report.fake_value:.6g}" if report.fake_value is not None else ""
    console.print(f"ratchet probe: {root}", markup=False)
    console.print(f"  champion: {report.where}, {report.metric} {report.champion_value:.6g}{fake}", markup=False)
    for note in report.notes:
        console.print(f"  note: {note}", markup=False)


def print_attack(console: Console, result: AttackResult) -> None:
    """One attack of ``ratchet probe``, as it comes: caught, NOT CAUGHT (with the fix) or skipped."""
    print_check(console, _ATTACK_MARK[result.status], 10, result.attack, result.detail, result.fix)


def print_probe_summary(console: Console, report: ProbeReport) -> None:
    console.print("[bold red]Summary:[/] " if report.exit_code else "[green]Summary:[/] ", end="")
    console.print(f"{report.summary()} (logs: {report.log_dir})", markup=False)
