"""The command line: parse, call, print. Everything it does lives in the modules it calls."""

from __future__ import annotations

import enum
import json
import math
import sys
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from typer.core import TyperCommand

from ratchet._version import __version__
from ratchet.budget import hms
from ratchet.commands.demo import DEFAULT_EXAMPLE, DemoError, prepare_demo
from ratchet.commands.review import Reviewer, ReviewError, diff_of
from ratchet.commands.scaffold import (
    ScaffoldError,
    recipes,
    write_recipe,
    write_starter_files,
)
from ratchet.commands.show import experiment_data, status_data
from ratchet.config import Config, ConfigError, parse_effect
from ratchet.experiment import Experiment, Verdict
from ratchet.ledger import Ledger, RunInfo, autoresearch_tsv, results_tsv
from ratchet.loop import Loop, RunError
from ratchet.project import Project, ProjectError
from ratchet.report.terminal import (
    VERDICT_STYLE,
    format_change,
    format_metric,
    make_display,
)
from ratchet.workspace.git import GitError, WorkspaceError, git

if TYPE_CHECKING:
    from ratchet.commands.analysis import Calibration

app = typer.Typer(
    name="ratchet",
    help="Run the autoresearch loop on a git project whose success is a number: propose a change "
    "inside the scope, measure the metric with a frozen harness, keep real improvements as commits "
    "on ratchet/<run>, record everything in the ledger.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: Rich markup would eat "[run] name" from a help text, and Typer's Rich
    # panels label every flag with a type ("--json <bool>") as if it took a value.
    rich_markup_mode=None,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _print_version(wanted: bool) -> None:
    if wanted:
        out.print(f"ratchet {__version__}", markup=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print ratchet's version and exit.")] = False,
) -> None:
    # No docstring: the app's help stays the one above.
    pass


class _Command(TyperCommand):
    """Usage lines the way click writes them, ``show [OPTIONS] EXPERIMENT``: Typer 0.2x writes a
    required argument as ``{experiment_id}``, which reads like a template left unfilled."""

    # ctx: click's Context, which Typer 0.29 vendors as typer._click (typer.Context is a subclass of it).
    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = (param.metavar or param.name or "").upper()
                pieces.append(name if param.required else f"[{name}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces

RunOption = Annotated[Optional[str], typer.Option("--run", "-r", help="Run name (default: the config's run, else the newest).")]
ConfigOption = Annotated[Optional[Path], typer.Option("--config", "-c", help="Config file (default: ratchet.toml at the repository root).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"ratchet: error: {message}", markup=False)
    return typer.Exit(code)


def _project(config: Path | None = None) -> Project:
    try:
        return Project.find(Path.cwd(), config)
    except WorkspaceError as exc:
        raise _fail(str(exc)) from None


def _config(project: Project, code: int = 2) -> Config:
    try:
        return project.config()
    except ConfigError as exc:
        raise _fail(str(exc), code) from None


# ---------------------------------------------------------------- init / run / demo


@app.command()
def init(
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
    agent: Annotated[Optional[str], typer.Option("--agent", help="Also write a coding agent's glue: claude, codex or generic (rules for the agent, MCP config).")] = None,
    recipe: Annotated[Optional[str], typer.Option("--recipe", help="Start from a recipe: its ratchet.toml, program.md and harness skeleton, every choice commented (--list-recipes names them).")] = None,
    list_recipes: Annotated[bool, typer.Option("--list-recipes", help="List the recipes (what each is for, its metric, which proposer fits) and exit.")] = False,
) -> None:
    """Write a commented ratchet.toml and a program.md brief (or a recipe's files); keep .ratchet/ out of git."""
    if list_recipes:
        for found in recipes():
            out.print(f"{found.name:<14} {found.title}", markup=False, highlight=False)
            out.print(f"{'':<14} metric: {found.metric}; proposer: {found.proposer}; one experiment: {found.experiment_time}", markup=False, highlight=False)
        out.print("\nratchet init --recipe NAME writes its files here; ratchet demo --example NAME runs its complete example.", markup=False)
        return
    project = _project()
    if recipe is not None:
        try:
            written = write_recipe(project.root, recipe, force=force)
        except ScaffoldError as exc:
            raise _fail(str(exc), 2) from None
        for path in written:
            out.print(f"wrote {path}", markup=False)
        guide = resources.files("ratchet") / "examples" / recipe / "README.md"  # where pip put it
        out.print(f"Read the comments in ratchet.toml (and {guide}), point them at your project, then: ratchet doctor && ratchet run", markup=False)
        return
    if agent is not None:
        from ratchet.commands.agent_glue import write_agent_files

        try:
            for line in write_agent_files(project.root, agent, force=force):
                out.print(line, markup=False)
        except ScaffoldError as exc:
            raise _fail(str(exc), 2) from None
        return
    try:
        written = write_starter_files(project.root, force=force)
    except ScaffoldError as exc:
        raise _fail(str(exc)) from None
    for path in written:
        out.print(f"wrote {path}")
    out.print("Edit the scope, the metric command and the proposer in ratchet.toml, then: ratchet run")


@app.command()
def run(
    config: ConfigOption = None,
    iterations: Annotated[Optional[int], typer.Option("--iterations", "-n", min=0, help="Experiments to run in this run (overrides budget.iterations).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Run name (overrides [run] name).")] = None,
) -> None:
    """Run the loop: baseline first, then experiments until the budget ends or Ctrl-C. Run again to resume.

    Exit codes: 0 a budget spent or the target reached; 1 the run could not start or go on (the
    baseline failed, git failed); 2 the config is wrong; 4 stopped by experiments failing in a
    row (budget.max_consecutive_crashes); 130 interrupted (Ctrl-C).
    """
    project = _project(config)
    code = _run_loop(project, iterations=iterations, name=name)
    if code:
        raise typer.Exit(code)


def _run_loop(project: Project, *, iterations: int | None, name: str | None) -> int:
    """The loop, with its one-line errors; returns the exit code its stop calls for."""
    cfg = _config(project)
    try:
        cfg = cfg if name is None else cfg.with_run_name(name)
    except ValueError as exc:
        raise _fail(f"--name: {exc}", 2) from None
    display = make_display(out)
    try:
        return Loop(project.root, cfg, iterations=iterations, observer=display).run().exit_code
    except (RunError, WorkspaceError, GitError) as exc:
        display.close()
        raise _fail(str(exc)) from None
    finally:
        display.close()


@app.command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", "-d", help="Where to create the demo repository (must not exist).")] = Path("ratchet-demo"),
    iterations: Annotated[int, typer.Option("--iterations", "-n", min=1, help="Experiments to run.")] = 20,
    example: Annotated[str, typer.Option("--example", help="Which bundled example.")] = DEFAULT_EXAMPLE,
) -> None:
    """Copy a bundled example into a new git repository and run the loop there."""
    target = directory.resolve()
    try:
        prepare_demo(target, example)
    except (DemoError, GitError, OSError) as exc:
        raise _fail(str(exc)) from None
    out.print(f"Demo repository: {target} (example {example!r}, branch main)")
    project = Project.find(target)
    code = _run_loop(project, iterations=iterations, name=None)
    try:
        branch = f"ratchet/{project.config().run.name}"
    except ConfigError:  # a bundled example's config always loads; said by _run_loop otherwise
        branch = "ratchet/<run>"
    out.print(
        f"\nResults: the kept experiments are commits on {branch} in {target}.\n"
        f"  cd {target}\n  ratchet log            # every experiment\n  ratchet show 1         # one experiment, with its diff\n"
        f"  ratchet export         # results.tsv\n  git log --oneline {branch}"
    )
    if code:
        raise typer.Exit(code)


# ---------------------------------------------------------------- reading the ledger


def _open(run_name: str | None) -> tuple[Project, Ledger, RunInfo]:
    project = _project()
    try:
        ledger = project.ledger()
        return project, ledger, project.pick_run(ledger, run_name)
    except ProjectError as exc:
        raise _fail(str(exc)) from None


@app.command()
def status(run: RunOption = None, as_json: JsonOption = False) -> None:
    """Where a run stands: champion against baseline, verdict counts, budget spent."""
    project, ledger, info = _open(run)
    data = status_data(project, ledger, info)
    ledger.close()
    if as_json:
        out.print_json(json.dumps(data))
        return
    state = f"running (pid {data['pid']})" if data["active"] else "not running"
    out.print(f"[bold]{data['run']}[/] on {data['branch']} — {state}")
    if data.get("sandbox_warning"):
        out.print(f"[yellow]warning:[/] {data['sandbox_warning']}", highlight=False)
    change = format_change(data["baseline"], data["champion"])
    out.print(
        f"{data['metric']} ({data['direction']}): champion {format_metric(data['champion'])} "
        f"(experiment {data['champion_experiment']}), baseline {format_metric(data['baseline'])}"
        + (f", {change}" if change else "")
    )
    counts = ", ".join(f"{n} {v}" for v, n in sorted(data["counts"].items()))
    out.print(f"experiments: {data['experiments']} measured, besides the baseline ({counts})")
    budget = data["budget"]
    iterations = f"{data['measured']}/{budget['iterations']}" if budget["iterations"] is not None else str(data["measured"])
    wall = hms(data["wall_spent_s"]) + (f"/{hms(budget['wall_s'])}" if budget["wall_s"] else "")
    spending = ""
    if data["tokens"] or budget["tokens"] or budget["cost_usd"]:
        tokens = f"{data['tokens']}" + (f"/{budget['tokens']}" if budget["tokens"] else "")
        cost = f"${data['cost_usd']:.4f}" + (f"/${budget['cost_usd']:g}" if budget["cost_usd"] else "")
        spending = f", {tokens} tokens, {cost}"
    out.print(f"budget: {iterations} iterations, {wall} wall time{spending}")
    if data["noise"] and not data["noise"]["deterministic"]:
        noise = data["noise"]
        relative = f" ({noise['relative']:.2%})" if noise.get("relative") is not None else ""
        out.print(f"noise: one measurement sd {noise['sd_single']:.4g}{relative} (A/A, {noise['pairs']} pairs)")
    if data["holdout_trend"]:
        trend = " → ".join(f"{h['holdout']:.6g}{' (overfit)' if h['overfit'] else ''}" for h in data["holdout_trend"])
        out.print(f"holdout (champions): {trend}")
    if data["confirmation"]:
        out.print(data["confirmation"]["summary"], markup=False)
    if data["pending_reviews"]:
        waiting = ", ".join(f"#{item['id']} ({item['why']})" for item in data["pending_reviews"])
        out.print(f"waiting for review: {waiting} — ratchet review", markup=False)
    if data["last"]:
        last = data["last"]
        out.print(f"last: #{last['id']} {last['verdict'] or 'running'} — {last['hypothesis']}", markup=False)


@app.command("log")
def log_(run: RunOption = None, as_json: JsonOption = False) -> None:
    """Every experiment of a run: id, verdict, metric, commit, hypothesis."""
    _, ledger, info = _open(run)
    experiments = ledger.experiments(info.name)
    ledger.close()
    if as_json:
        out.print_json(json.dumps([e.to_json() for e in experiments]))
        return
    baseline = next((e.metric for e in experiments if e.verdict is Verdict.BASELINE), None)
    table = Table(title=f"{info.name}: {info.metric_name} ({info.direction})", title_justify="left")
    for column, justify in (("id", "right"), ("verdict", "left"), (info.metric_name, "right"), ("vs baseline", "right"), ("commit", "left"), ("hypothesis", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for e in experiments:
        verdict = e.verdict.value if e.verdict else "running"
        style = VERDICT_STYLE.get(e.verdict, "") if e.verdict else ""
        table.add_row(
            str(e.id), f"[{style}]{verdict}[/]" if style else verdict, format_metric(e.metric),
            format_change(baseline, e.metric) if e.verdict is not Verdict.BASELINE else "",
            (e.commit or "")[:7], Text(" ".join(e.hypothesis.split())),  # Text: "[tuning …]" is not markup
        )  # fmt: skip
    out.print(table)


@app.command(cls=_Command)
def show(experiment_id: Annotated[int, typer.Argument(metavar="EXPERIMENT", help="Experiment id (0 is the baseline).")], run: RunOption = None, as_json: JsonOption = False) -> None:
    """One experiment: hypothesis, verdict, metric, guards, diff, output tail."""
    project, ledger, info = _open(run)
    experiment = ledger.experiment(info.name, experiment_id)
    ledger.close()
    if experiment is None:
        raise _fail(f"run {info.name!r} has no experiment {experiment_id}")
    data = experiment_data(project, experiment)
    if as_json:
        out.print_json(json.dumps(data))
        return
    _print_experiment(info, experiment, data["diff"])


def _print_experiment(info: RunInfo, e: Experiment, diff: str) -> None:
    verdict = e.verdict.value if e.verdict else "running"
    out.print(f"[bold]experiment {e.id}[/] of {info.name}: [{VERDICT_STYLE.get(e.verdict, '') if e.verdict else ''}]{verdict}[/]")
    out.print(f"hypothesis: {e.hypothesis or '-'}", markup=False)
    if e.reason:
        out.print(f"reason:     {e.reason}", markup=False)
    out.print(f"{info.metric_name}: {format_metric(e.metric)}   parent {e.parent_commit[:7]}   commit {(e.commit or '-')[:7]}")
    duration = f"{e.duration:.2f}s" if e.duration is not None else "-"
    out.print(f"proposer: {e.proposer}   duration {duration}   hardware {e.hardware}   logs {e.log_dir}", markup=False)
    for guard in e.guards:
        mark = "pass" if guard.passed else "FAIL"
        value = f" = {guard.value:g}" if guard.value is not None else ""
        out.print(f"guard {guard.name}: {mark}{value} {guard.reason}", markup=False)
        if not guard.passed and guard.output_tail.strip():  # why it failed, in its own words
            out.print("\n".join("    " + line for line in guard.output_tail.rstrip().splitlines()), markup=False, highlight=False)
    if diff.strip():
        out.print("\n[bold]diff[/]")
        out.print(Syntax(diff, "diff", theme="ansi_dark", background_color="default"))
    if e.output_tail.strip():
        out.print("\n[bold]output tail[/]")
        out.print(e.output_tail, markup=False)


class ExportFormat(str, enum.Enum):
    ratchet = "ratchet"
    autoresearch = "autoresearch"


@app.command()
def export(
    run: RunOption = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the TSV ('-' for stdout).")] = Path("results.tsv"),
    format_: Annotated[ExportFormat, typer.Option("--format", "-f", help="ratchet (every verdict and column) or autoresearch (its five columns, for its analysis.ipynb).")] = ExportFormat.ratchet,
) -> None:
    """Write results.tsv (tab-separated), one row per experiment.

    --format ratchet (default) is lossless: id, verdict, <metric>, commit, parent_commit, memory_gb,
    description, reason, proposer, started, ended, duration_s, guards, hardware, tokens_in,
    tokens_out, cost_usd, state, log_dir, proposal, extra; full precision, full shas. A candidate that
    was not kept was never committed: its commit is empty, its diff is <log_dir>/proposal.diff.

    --format autoresearch writes exactly the five columns of Karpathy's program.md, for its
    analysis.ipynb: commit (7 characters), val_bpb (the metric, whatever its name, %.6f), memory_gb
    (%.1f), status, description; 0.000000 and 0.0 on crash rows. Verdict -> status:

    \b
      baseline, keep                               -> keep
      discard, overfit                             -> discard
      crash, timeout, invalid, tampered, abandoned -> crash (no usable number)

    A verdict autoresearch lacks is named in brackets after the description. memory_gb is the peak
    resident memory (RAM, not GPU memory) of the metric command's largest process in the last
    measurement. Running experiments are left out.
    """
    _, ledger, info = _open(run)
    experiments = ledger.experiments(info.name)
    ledger.close()
    if format_ is ExportFormat.autoresearch:
        text = autoresearch_tsv(experiments)
        if info.direction == "maximize":
            err.print(f"ratchet: note: this run maximizes {info.metric_name}; analysis.ipynb takes lower val_bpb as better", markup=False)
    else:
        text = results_tsv(experiments, info.metric_name)
    if str(output) == "-":
        sys.stdout.write(text)
        return
    output.write_text(text)
    out.print(f"wrote {output} ({text.count(chr(10)) - 1} experiments)")


# ---------------------------------------------------------------- report / dashboard

YScaleOption = Annotated[str, typer.Option("--y-scale", help="The plot's y axis: auto (log when the numbers span more than a decade), linear or log.")]


def _y_scale(value: str) -> str:
    from ratchet.report.data import Y_SCALES

    if value not in Y_SCALES:
        raise _fail(f"--y-scale: {value!r} is not one of {', '.join(Y_SCALES)}", 2)
    return value


@app.command()
def report(
    run_name: Annotated[Optional[str], typer.Argument(metavar="RUN", help="Run name (default: the config's run, else the newest).", show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Where to write (default: ratchet-<run>.html, or .png with --png).")] = None,
    png: Annotated[bool, typer.Option("--png", help="Write the progress plot alone, as a PNG image (needs matplotlib).")] = False,
    y_scale: YScaleOption = "auto",
) -> None:
    """Write one self-contained HTML file (works offline): progress plot, kept changes with diffs, verdicts, budget, hardware."""
    from ratchet.report import MissingDependency
    from ratchet.report.html import write_report
    from ratchet.report.png import write_png

    y_scale = _y_scale(y_scale)
    project, ledger, info = _open(run_name)
    target = output or Path(f"ratchet-{info.name.replace('/', '-')}.{'png' if png else 'html'}")
    try:
        if png:
            from ratchet.report.data import run_view

            write_png(run_view(project.root, ledger, info, diffs=False, y_scale=y_scale), target)
        else:
            write_report(project.root, ledger, info, target, y_scale=y_scale)
    except MissingDependency as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        ledger.close()
    out.print(f"wrote {target}")


@app.command()
def dashboard(
    host: Annotated[str, typer.Option("--host", help="Address to listen on; the default serves this machine only.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="Port to listen on (0: any free port).")] = 8765,
    y_scale: YScaleOption = "auto",
) -> None:
    """Serve a live page that follows this repository's runs: plot, experiment in flight, ledger with diffs."""
    from ratchet.report import MissingDependency

    y_scale = _y_scale(y_scale)
    project = _project()
    try:
        from ratchet.report.dashboard import is_loopback, serve

        if not is_loopback(host):
            err.print(f"ratchet: warning: {host} is reachable from other machines; the dashboard shows diffs and output to anyone who connects", markup=False)
        serve(project.root, host, port, ready=lambda url: out.print(f"Dashboard of {project.root} on {url} (Ctrl-C to stop)"), y_scale=y_scale)
    except MissingDependency as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


@app.command()
def calibrate(
    pairs: Annotated[int, typer.Option("--pairs", "-p", min=2, help="A/A pairs to measure (2 measurements each).")] = 10,
    power: Annotated[float, typer.Option("--power", min=0.05, max=0.99, help="Wanted probability of keeping a real effect.")] = 0.8,
    effect: Annotated[Optional[str], typer.Option("--effect", help="An effect to plan for: a number in the metric's units, or '2%'.")] = None,
    run: RunOption = None,
    config: ConfigOption = None,
) -> None:
    """Measure the noise: the champion against itself; recommend min_effect and pairs (power planning)."""
    from ratchet.commands.analysis import AnalysisError
    from ratchet.commands.analysis import calibrate as measure_noise
    from ratchet.workspace.worktree import BRANCH_PREFIX

    project = _project(config)
    cfg = _config(project)
    wanted = None
    if effect is not None:
        try:
            wanted = parse_effect(effect)
        except ValueError as exc:
            raise _fail(f"--effect: {exc}", 2) from None
    name = run or cfg.run.name
    branch = BRANCH_PREFIX + name
    try:
        commit = git(project.root, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False).strip()
        head = git(project.root, "rev-parse", "HEAD").strip()
        commit = commit or head
        out.print(f"Measuring {commit[:7]} ({branch if commit != head else 'HEAD'}) against itself, {pairs} pairs…")
        result = measure_noise(project.root, cfg, commit, head, pairs, power, wanted, progress=lambda m: err.print(m, markup=False))
    except (AnalysisError, GitError, WorkspaceError) as exc:
        raise _fail(str(exc)) from None
    _print_calibration(result, cfg, pairs, power, effect)


def _print_calibration(result: Calibration, cfg: Config, pairs: int, power: float, effect: str | None) -> None:
    noise = result.noise
    scale = "log-ratio" if noise.log_scale else cfg.metric.name
    if noise.deterministic:
        out.print(f"The metric is deterministic (all {2 * pairs} measurements gave {noise.mean:.6g}): one measurement decides; any min_effect works.")
        return
    if noise.log_scale:  # log-ratios read as percentages of the metric
        out.print(
            f"noise: one measurement sd {math.expm1(noise.sd_single):.2%} of the metric; "
            f"one paired comparison sd {math.expm1(noise.sd_pair):.2%}"
        )
    else:
        relative = f" ({noise.relative:.2%} of the metric)" if noise.relative is not None else ""
        out.print(f"noise: one measurement sd {noise.sd_single:.4g} {scale}{relative}; one paired comparison sd {noise.sd_pair:.4g}")
    v = cfg.verdict
    # In the form [verdict] min_effect takes: a log-ratio is no setting anyone can write.
    out.print(
        f"recommended: min_effect = {result.min_effect_setting} (under [verdict]) — the smallest effect `sequential` "
        f"with max_pairs = {v.max_pairs} keeps with probability {power:.0%} at alpha = {v.alpha}",
        markup=False,
    )
    if result.effect is not None:
        needed = result.pairs_for_effect
        if needed is None:
            shown = "more than 50 pairs (raise the effect or lower the noise)"
        elif needed > v.max_pairs:
            shown = f"{needed} pairs; this run stops at max_pairs = {v.max_pairs}: raise it to {needed} to resolve it"
        else:
            shown = f"{needed} pairs (within this run's max_pairs = {v.max_pairs})"
        out.print(f"to detect {effect} with power {power:.0%}: {shown}", markup=False)


review_app = typer.Typer(
    help="The review queue: would-be keeps that [review] sends to a person. Without a subcommand: list them.",
    no_args_is_help=False,
    rich_markup_mode=None,
)
app.add_typer(review_app, name="review")

ReviewId = Annotated[int, typer.Argument(metavar="EXPERIMENT", help="The held experiment's id (ratchet review lists them).")]


def _reviewer(config: Path | None) -> Reviewer:
    project = _project(config)
    return Reviewer(project.root, _config(project), display=make_display(err))


@review_app.callback(invoke_without_command=True)
def review(ctx: typer.Context, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List the would-be keeps waiting for a person: why they wait, their figures and diffs."""
    if ctx.invoked_subcommand is not None:
        return
    reviewer = _reviewer(config)
    queue = reviewer.queue()
    if as_json:
        items = [{**item.experiment.to_json(), "branch": item.branch, "review_commit": item.commit, "why": item.why, "diff": diff_of(reviewer.root, item)} for item in queue]
        out.print(json.dumps(items, indent=1), markup=False)
        return
    if not queue:
        out.print(f"Nothing waits for review in run {reviewer.run!r}.", markup=False)
        return
    for item in queue:
        e = item.experiment
        out.print(f"#{e.id}  {format_metric(e.metric)}  {' '.join(e.hypothesis.split())}", markup=False)
        out.print(f"     waits because {item.why}; held on {item.branch}", markup=False)
        out.print(f"     verdict then: {e.reason}", markup=False)
        out.print(Syntax(diff_of(reviewer.root, item), "diff", theme="ansi_dark", background_color="default"))
    out.print("ratchet review approve ID (re-measured against the champion of now) | ratchet review reject ID -m WHY", markup=False)


@review_app.command("approve", cls=_Command)
def review_approve(experiment_id: ReviewId, config: ConfigOption = None) -> None:
    """Measure the held change against the current champion under the run's verdict policy; keep it only if it still wins.

    Exit 0 kept; 1 not kept (no longer better, or stale: it does not apply to the champion any
    more); 3 nothing was done (not waiting, a run holds the lock).
    """
    try:
        result = _reviewer(config).approve(experiment_id)
    except ReviewError as exc:
        raise _fail(str(exc), 3) from None
    out.print(f"#{result.id} {result.verdict}: {result.reason}", markup=False)
    if result.verdict is not Verdict.KEEP:
        raise typer.Exit(1)


@review_app.command("reject", cls=_Command)
def review_reject(
    experiment_id: ReviewId,
    message: Annotated[str, typer.Option("--message", "-m", help="Why, for the ledger.")] = "",
    config: ConfigOption = None,
) -> None:
    """Reject a held change: it never joins the run branch; the ledger keeps why."""
    try:
        _reviewer(config).reject(experiment_id, message)
    except ReviewError as exc:
        raise _fail(str(exc), 3) from None
    out.print(f"#{experiment_id} rejected" + (f": {message}" if message else ""), markup=False)


@app.command()
def ablate(run: RunOption = None, config: ConfigOption = None) -> None:
    """Leave-one-out: re-measure the champion with each kept commit reverted; name keeps that add nothing."""
    from ratchet.commands.analysis import AnalysisError
    from ratchet.commands.analysis import ablate as leave_one_out

    project, ledger, info = _open(run)
    cfg = _config(project)
    kept = [e for e in ledger.experiments(info.name) if e.verdict is Verdict.KEEP and e.commit]
    if not kept:
        raise _fail(f"run {info.name!r} has no kept experiment to ablate")
    champion = git(project.root, "rev-parse", info.branch).strip()
    out.print(f"Ablating {len(kept)} kept experiment{'s' if len(kept) > 1 else ''} of {info.name} (champion {champion[:7]})…")
    try:
        results = leave_one_out(project.root, cfg, info.name, info.base_commit, champion, kept, progress=lambda m: err.print(m, markup=False))
    except (AnalysisError, GitError, WorkspaceError) as exc:
        raise _fail(str(exc)) from None
    ledger.add_event(info.name, "ablation", {"champion": champion, "results": [r.__dict__ for r in results]})
    ledger.close()
    table = Table(title=f"{info.name}: leave-one-out", title_justify="left")
    for column in ("id", "commit", "contributes", "hypothesis", "detail"):
        table.add_column(column)
    for r in results:
        mark = "[green]yes[/]" if r.contributes else ("[red]NO[/]" if r.contributes is False else "?")
        table.add_row(str(r.experiment), r.commit[:7], mark, Text(r.hypothesis), Text(r.detail))
    out.print(table)
    idle = [r for r in results if r.contributes is False]
    if idle:
        out.print("Kept but not contributing: " + ", ".join(f"#{r.experiment} ({r.commit[:7]})" for r in idle))


@app.command()
def doctor(config: ConfigOption = None) -> None:
    """Check the set-up: git, the sandbox, the config, scope and harness, the metric (run twice on the champion) and each guard (once).

    A command that fails in the sandbox and works outside it is named as the sandbox's doing,
    with the hidden path or variable. `ratchet run` refuses what doctor fails on before its
    baseline (a scope or harness glob that matches nothing).
    """
    from ratchet.commands.doctor import diagnose

    project = _project(config)
    out.print(f"ratchet doctor: {project.root}")
    style = {"ok": "green", "warn": "yellow", "fail": "bold red"}

    def show(finding: Any) -> None:
        _print_check(f"[{style[finding.status]}]{finding.status:<4}[/]", 4, finding.what, finding.detail, finding.fix)

    findings = diagnose(project.root, project.config_path, report=show)
    failed = [f for f in findings if f.status == "fail"]
    if failed:
        raise _fail(f"{len(failed)} check{'s' if len(failed) > 1 else ''} failed")
    out.print("All checks passed." if not any(f.status == "warn" for f in findings) else "No failure; see the warnings above.")


def _print_check(mark: str, width: int, what: str, detail: str, fix: str) -> None:
    """One finding of doctor or probe: its (markup) mark, what was checked, what was found, the fix."""
    out.print(f"  {mark} {what}: ", end="")
    out.print(detail, markup=False)
    if fix:
        out.print(f"{'':<{width + 3}}fix: {fix}", markup=False)


@app.command()
def probe(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Red-team the harness before a run: try a proposer's attacks on the champion in a throwaway checkout.

    Fake metric lines, a replaced stdout, harness rewrites, writes outside the checkout, the
    holdout's files, a daemon, a timeout, a planted conftest.py; each caught, NOT CAUGHT (with
    the config change that would catch it) or skipped. Exit 0: nothing gets through; 1: something
    does; 2: the probe cannot run (a config error, or the metric fails on the champion).
    """
    from ratchet.commands.probe import EXIT_CANNOT_PROBE, ProbeError, red_team

    project = _project(config)
    cfg = _config(project, EXIT_CANNOT_PROBE)
    mark = {"caught": "[green]caught    [/]", "not caught": "[bold red]NOT CAUGHT[/]", "skipped": "[dim]skipped   [/]"}

    def show(result: Any) -> None:
        _print_check(mark[result.status], 10, result.attack, result.detail, result.fix)

    def begin(report: Any) -> None:
        fake = f"; attacks claim {report.fake_value:.6g}" if report.fake_value is not None else ""
        out.print(f"ratchet probe: {project.root}", markup=False)
        out.print(f"  champion: {report.where}, {report.metric} {report.champion_value:.6g}{fake}", markup=False)
        for note in report.notes:
            out.print(f"  note: {note}", markup=False)

    try:
        quiet = lambda _: None  # noqa: E731
        report = red_team(project.root, cfg, report=quiet if as_json else show, begin=quiet if as_json else begin)
    except (ProbeError, GitError, WorkspaceError) as exc:
        raise _fail(str(exc), EXIT_CANNOT_PROBE) from None
    if as_json:
        out.print_json(json.dumps(report.to_json()))
    else:
        out.print("[bold red]Summary:[/] " if report.exit_code else "[green]Summary:[/] ", end="")
        out.print(f"{report.summary()} (logs: {report.log_dir})", markup=False)
    raise typer.Exit(report.exit_code)


# ---------------------------------------------------------------- agents drive, ratchet judges


@app.command("try")
def try_(
    message: Annotated[str, typer.Option("--message", "-m", help="The hypothesis: what you changed and why it should help.")],
    patch: Annotated[Optional[Path], typer.Option("--patch", help="Try this unified diff (against the champion; '-' reads stdin) instead of the working tree's changes.")] = None,
    again: Annotated[bool, typer.Option("--again", help="Measure the change even if the ledger already measured the same change on this champion (refused as invalid otherwise).")] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Judge the working tree's changes inside the scope against the run's champion.

    Exit 0: kept (the working tree moves to the new champion); 1: discarded, crashed or timed
    out (back to the champion); 2: invalid (outside the scope, the harness, nothing changed);
    3: nothing was tried (a run holds the lock, a broken config).
    """
    from ratchet.commands.referee import EXIT_NOT_TRIED, Referee, TryRefused
    from ratchet.report.terminal import Display

    try:
        text = None if patch is None else sys.stdin.read() if str(patch) == "-" else patch.read_text(errors="surrogateescape")
    except OSError as exc:
        raise _fail(f"--patch: cannot read {patch}: {exc.strerror or exc}", EXIT_NOT_TRIED) from None
    try:
        project = Project.find(Path.cwd(), config)
        cfg = project.config()
        report = Referee(project.root, cfg, display=Display(err), config_path=project.config_path).try_change(message, text, again=again)
    except (WorkspaceError, ConfigError) as exc:
        raise _fail(str(exc), EXIT_NOT_TRIED) from None
    except TryRefused as exc:
        raise _fail(str(exc), exc.exit_code) from None
    if as_json:
        out.print_json(report.model_dump_json())
    else:
        for line in report.lines(cfg.metric.name):
            out.print(line, markup=False)
    raise typer.Exit(report.exit_code)


@app.command("mcp")
def mcp_(config: ConfigOption = None) -> None:
    """Serve MCP on stdio for a coding agent: tools status, history, show, try, context; the brief and the ledger as resources."""
    from ratchet.mcp_server import MissingMCP, serve

    project = _project(config)
    try:
        serve(project.root, project.config_path)
    except MissingMCP as exc:
        raise _fail(str(exc)) from None


def main() -> None:
    try:
        app()
    except ConfigError as exc:  # pragma: no cover - commands catch their own; this is the net
        err.print(f"ratchet: error: {exc}", markup=False)
        raise SystemExit(2) from None


if __name__ == "__main__":  # pragma: no cover
    main()
