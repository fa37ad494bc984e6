"""The command line: parse, call, print. Everything it does lives in the modules it calls."""

from __future__ import annotations

import enum
import json
import sys
from contextlib import closing, contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Iterator, Optional

import typer
from typer.core import TyperCommand

from ratchet.commands.demo import DEFAULT_EXAMPLE
from ratchet.config import ConfigError
from ratchet.project import Project, ProjectError
from ratchet.workspace.git import GitError, WorkspaceError

if TYPE_CHECKING:
    from rich.console import Console

    from ratchet.commands.review import Reviewer
    from ratchet.config import Config
    from ratchet.ledger import Ledger, RunInfo

# Each command imports what it uses inside its function: `ratchet --help`, `status` and `log`
# must not pay for the loop, numpy, the config's models or Rich's syntax highlighter
# (tests/test_cli.py checks what `import ratchet.cli` loads).

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


@cache
def _console(stderr: bool) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


class _Screen:
    """stdout or stderr as a Rich console, made on first use: machine output (``--json``) needs none."""

    def __init__(self, stderr: bool) -> None:
        self.stderr = stderr

    def __getattr__(self, name: str) -> Any:
        return getattr(_console(self.stderr), name)

    @property
    def console(self) -> Console:
        return _console(self.stderr)


out = _Screen(stderr=False)
err = _Screen(stderr=True)


def _print_version(wanted: bool) -> None:
    if wanted:
        from ratchet._version import __version__

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


@contextmanager
def _one_line(*errors: type[Exception], code: int = 1) -> Iterator[None]:
    """What a command expects to go wrong, as one line on stderr and exit ``code``: no traceback."""
    try:
        yield
    except errors as exc:
        raise _fail(str(exc), code) from None


def _project(config: Path | None = None) -> Project:
    with _one_line(WorkspaceError):
        return Project.find(Path.cwd(), config)


def _config(project: Project, code: int = 2) -> Config:
    with _one_line(ConfigError, code=code):
        return project.config()


# ---------------------------------------------------------------- init / run / demo


@app.command()
def init(
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
    agent: Annotated[Optional[str], typer.Option("--agent", help="Also write a coding agent's glue: claude, codex or generic (rules for the agent, MCP config).")] = None,
    recipe: Annotated[Optional[str], typer.Option("--recipe", help="Start from a recipe: its ratchet.toml, program.md and harness skeleton, every choice commented (--list-recipes names them).")] = None,
    list_recipes: Annotated[bool, typer.Option("--list-recipes", help="List the recipes (what each is for, its metric, which proposer fits) and exit.")] = False,
) -> None:
    """Write a commented ratchet.toml and a program.md brief (or a recipe's files); keep .ratchet/ out of git."""
    from ratchet.commands.scaffold import ScaffoldError, init_project, recipes
    from ratchet.report import text

    if list_recipes:
        text.print_recipes(out.console, recipes())
        return
    project = _project()
    # The starter files' refusal exits 1, a recipe's or an agent's 2, as they always have.
    with _one_line(ScaffoldError, code=1 if recipe is None and agent is None else 2):
        lines = init_project(project.root, recipe=recipe, agent=agent, force=force)
    for line in lines:
        out.print(line, markup=False)


@app.command()
def run(
    config: ConfigOption = None,
    iterations: Annotated[Optional[int], typer.Option("--iterations", "-n", min=0, help="Experiments to run in this run (overrides budget.iterations).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Run name (overrides [run] name).")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", min=1, max=256, help="Experiments in flight at once, each in its own worktree (overrides [run] workers).")] = None,
    executor: Annotated[Optional[str], typer.Option("--executor", help="Where measurements run: local or ray (overrides [executor] kind).")] = None,
    address: Annotated[Optional[str], typer.Option("--address", help="The Ray cluster to join: auto or ray://host:port (overrides [executor] address).")] = None,
) -> None:
    """Run the loop: baseline first, then experiments until the budget ends or Ctrl-C. Run again to resume.

    With --workers N, N experiments are in flight at once; a keep is only ever decided against
    the champion of that moment (a candidate whose champion moved is re-applied and measured
    again, or recorded stale). Ctrl-C once lets the experiments in flight finish; twice abandons them.

    Exit codes: 0 a budget spent or the target reached; 1 the run could not start or go on (the
    baseline failed, git failed); 2 the config is wrong; 4 stopped by experiments failing in a
    row (budget.max_consecutive_crashes); 130 interrupted (Ctrl-C).
    """
    if executor is not None and executor not in ("local", "ray"):
        raise _fail(f"--executor: {executor!r} is not an executor (local or ray)", 2)
    if address is not None and (executor or "ray") != "ray":
        raise _fail("--address is for the ray executor (--executor ray)", 2)
    project = _project(config)
    code = _run_loop(project, iterations=iterations, name=name, workers=workers, executor=executor, address=address)
    if code:
        raise typer.Exit(code)


def _run_loop(
    project: Project, *, iterations: int | None, name: str | None, workers: int | None = None,
    executor: str | None = None, address: str | None = None,
) -> int:  # fmt: skip
    """The loop, with its one-line errors; returns the exit code its stop calls for."""
    from ratchet.loop import Loop, RunError
    from ratchet.report.terminal import make_display

    cfg = _config(project)
    try:
        cfg = cfg if name is None else cfg.with_run_name(name)
    except ValueError as exc:
        raise _fail(f"--name: {exc}", 2) from None
    if executor is not None or address is not None:
        update = {"kind": "ray" if address is not None and executor is None else executor or cfg.executor.kind}
        if address is not None:
            update["address"] = address
        cfg = cfg.model_copy(update={"executor": cfg.executor.model_copy(update=update)})
    display = make_display(out.console)
    try:
        return Loop(project.root, cfg, iterations=iterations, observer=display, workers=workers).run().exit_code
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
    from ratchet.commands.demo import DemoError, prepare_demo
    from ratchet.report import text

    target = directory.resolve()
    with _one_line(DemoError, GitError, OSError):
        prepare_demo(target, example)
    out.print(f"Demo repository: {target} (example {example!r}, branch main)")
    project = Project.find(target)
    code = _run_loop(project, iterations=iterations, name=None)
    try:
        branch = f"ratchet/{project.config().run.name}"
    except ConfigError:  # a bundled example's config always loads; said by _run_loop otherwise
        branch = "ratchet/<run>"
    text.print_demo_results(out.console, target, branch)
    if code:
        raise typer.Exit(code)


# ---------------------------------------------------------------- reading the ledger


def _open(run_name: str | None) -> tuple[Project, Ledger, RunInfo]:
    project = _project()
    with _one_line(ProjectError):
        ledger = project.ledger()
        return project, ledger, project.pick_run(ledger, run_name)


@app.command()
def status(run: RunOption = None, as_json: JsonOption = False) -> None:
    """Where a run stands: champion against baseline, verdict counts, budget spent."""
    from ratchet.commands.show import status_data

    project, ledger, info = _open(run)
    data = status_data(project, ledger, info)
    ledger.close()
    if as_json:
        _print_json(data)
        return
    from ratchet.report import text

    text.print_status(out.console, data)


@app.command("log")
def log_(
    run: RunOption = None,
    as_json: JsonOption = False,
    last: Annotated[Optional[int], typer.Option("--last", "-n", min=0, help="Only the newest N experiments.")] = None,
    since: Annotated[Optional[int], typer.Option("--since", metavar="ID", help="Only the experiments after experiment ID (a follower's cursor: the last id it has).")] = None,
) -> None:
    """Every experiment of a run: id, verdict, metric, commit, hypothesis.

    --json writes one JSON array, one experiment a line, as the rows come from the ledger.
    """
    _, ledger, info = _open(run)
    with closing(ledger):
        rows = ledger.iter_experiments(info.name, after=since, last=last)
        if as_json:
            _stream_json(e.to_json() for e in rows)
            return
        experiments = list(rows)
        # A part of the run still shows each change against the baseline (experiment 0).
        first = experiments[0] if since is None and last is None and experiments else ledger.experiment(info.name, 0)
    from ratchet.report import text

    text.print_log(out.console, info, experiments, baseline=first)


def _stream_json(items: Iterator[dict[str, Any]]) -> None:
    """A JSON array written as it is read, one item a line: memory and time stay per row (no Rich)."""
    write = sys.stdout.write
    write("[")
    for n, item in enumerate(items):
        write(",\n" if n else "\n")
        write(json.dumps(item, ensure_ascii=False))
    write("\n]\n")


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@app.command(cls=_Command)
def show(experiment_id: Annotated[int, typer.Argument(metavar="EXPERIMENT", help="Experiment id (0 is the baseline).")], run: RunOption = None, as_json: JsonOption = False) -> None:
    """One experiment: hypothesis, verdict, metric, guards, diff, output tail."""
    from ratchet.commands.show import experiment_data

    project, ledger, info = _open(run)
    experiment = ledger.experiment(info.name, experiment_id)
    ledger.close()
    if experiment is None:
        raise _fail(f"run {info.name!r} has no experiment {experiment_id}")
    data = experiment_data(project, experiment)
    if as_json:
        _print_json(data)
        return
    from ratchet.report import text

    text.print_experiment(out.console, info, experiment, data["diff"])


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
    from ratchet.commands.show import export_tsv

    _, ledger, info = _open(run)
    with closing(ledger):
        tsv, note = export_tsv(ledger, info, autoresearch=format_ is ExportFormat.autoresearch)
    if note:
        err.print(f"ratchet: note: {note}", markup=False)
    if str(output) == "-":
        sys.stdout.write(tsv)
        return
    output.write_text(tsv)
    out.print(f"wrote {output} ({tsv.count(chr(10)) - 1} experiments)")


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
    from ratchet.commands.show import report_path, write_run_report
    from ratchet.report import MissingDependency

    y_scale = _y_scale(y_scale)
    project, ledger, info = _open(run_name)
    target = output or report_path(info, png=png)
    try:
        write_run_report(project, ledger, info, target, png=png, y_scale=y_scale)
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
    from ratchet.commands.analysis import AnalysisError, calibration_target
    from ratchet.commands.analysis import calibrate as measure_noise
    from ratchet.config import parse_effect

    project = _project(config)
    cfg = _config(project)
    wanted = None
    if effect is not None:
        try:
            wanted = parse_effect(effect)
        except ValueError as exc:
            raise _fail(f"--effect: {exc}", 2) from None
    with _one_line(AnalysisError, GitError, WorkspaceError):
        target = calibration_target(project.root, run or cfg.run.name)
        out.print(f"Measuring {target.commit[:7]} ({target.label}) against itself, {pairs} pairs…")
        result = measure_noise(project.root, cfg, target.commit, target.head, pairs, power, wanted, progress=lambda m: err.print(m, markup=False))
    for line in result.lines(cfg, pairs, power, effect):
        out.print(line, markup=False)


review_app = typer.Typer(
    help="The review queue: would-be keeps that [review] sends to a person. Without a subcommand: list them.",
    no_args_is_help=False,
    rich_markup_mode=None,
)
app.add_typer(review_app, name="review")

ReviewId = Annotated[int, typer.Argument(metavar="EXPERIMENT", help="The held experiment's id (ratchet review lists them).")]


def _reviewer(config: Path | None) -> Reviewer:
    from ratchet.commands.review import Reviewer
    from ratchet.report.terminal import make_display

    project = _project(config)
    return Reviewer(project.root, _config(project), display=make_display(err.console))


@review_app.callback(invoke_without_command=True)
def review(ctx: typer.Context, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List the would-be keeps waiting for a person: why they wait, their figures and diffs."""
    from ratchet.commands.review import diff_of, pending_json
    from ratchet.report import text

    if ctx.invoked_subcommand is not None:
        return
    reviewer = _reviewer(config)
    queue = reviewer.queue()
    if as_json:
        out.print(json.dumps([pending_json(reviewer.root, item) for item in queue], indent=1), markup=False)
        return
    text.print_review_queue(out.console, reviewer.run, queue, lambda item: diff_of(reviewer.root, item))


@review_app.command("approve", cls=_Command)
def review_approve(experiment_id: ReviewId, config: ConfigOption = None) -> None:
    """Measure the held change against the current champion under the run's verdict policy; keep it only if it still wins.

    Exit 0 kept; 1 not kept (no longer better, or stale: it does not apply to the champion any
    more); 3 nothing was done (not waiting, a run holds the lock).
    """
    from ratchet.commands.review import ReviewError
    from ratchet.experiment import Verdict

    with _one_line(ReviewError, code=3):
        result = _reviewer(config).approve(experiment_id)
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
    from ratchet.commands.review import ReviewError

    with _one_line(ReviewError, code=3):
        _reviewer(config).reject(experiment_id, message)
    out.print(f"#{experiment_id} rejected" + (f": {message}" if message else ""), markup=False)


@app.command()
def ablate(run: RunOption = None, config: ConfigOption = None) -> None:
    """Leave-one-out: re-measure the champion with each kept commit reverted; name keeps that add nothing."""
    from ratchet.commands.analysis import (
        AnalysisError,
        ablate_and_record,
        plan_ablation,
    )
    from ratchet.report import text

    project, ledger, info = _open(run)
    cfg = _config(project)
    with _one_line(AnalysisError, GitError, WorkspaceError), closing(ledger):
        plan = plan_ablation(project.root, ledger, info)
        kept = len(plan.kept)
        out.print(f"Ablating {kept} kept experiment{'s' if kept > 1 else ''} of {info.name} (champion {plan.champion[:7]})…")
        results = ablate_and_record(project.root, cfg, ledger, plan, progress=lambda m: err.print(m, markup=False))
    text.print_ablation(out.console, info.name, results)


@app.command()
def doctor(config: ConfigOption = None) -> None:
    """Check the set-up: git, the sandbox, the config, scope and harness, the metric (run twice on the champion) and each guard (once).

    A command that fails in the sandbox and works outside it is named as the sandbox's doing,
    with the hidden path or variable. `ratchet run` refuses what doctor fails on before its
    baseline (a scope or harness glob that matches nothing).
    """
    from ratchet.commands.doctor import diagnose
    from ratchet.report import text

    project = _project(config)
    out.print(f"ratchet doctor: {project.root}")
    findings = diagnose(project.root, project.config_path, report=lambda finding: text.print_finding(out.console, finding))
    failed = [f for f in findings if f.status == "fail"]
    if failed:
        raise _fail(f"{len(failed)} check{'s' if len(failed) > 1 else ''} failed")
    out.print("All checks passed." if not any(f.status == "warn" for f in findings) else "No failure; see the warnings above.")


@app.command()
def probe(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Red-team the harness before a run: try a proposer's attacks on the champion in a throwaway checkout.

    Fake metric lines, a replaced stdout, harness rewrites, writes outside the checkout, the
    holdout's files, a daemon, a timeout, a planted conftest.py; each caught, NOT CAUGHT (with
    the config change that would catch it) or skipped. Exit 0: nothing gets through; 1: something
    does; 2: the probe cannot run (a config error, or the metric fails on the champion).
    """
    from ratchet.commands.probe import EXIT_CANNOT_PROBE, ProbeError, red_team
    from ratchet.report import text

    project = _project(config)
    cfg = _config(project, EXIT_CANNOT_PROBE)
    with _one_line(ProbeError, GitError, WorkspaceError, code=EXIT_CANNOT_PROBE):
        if as_json:
            report = red_team(project.root, cfg)
        else:
            show = lambda result: text.print_attack(out.console, result)  # noqa: E731
            report = red_team(project.root, cfg, report=show, begin=lambda start: text.print_probe_start(out.console, project.root, start))
    if as_json:
        out.print_json(json.dumps(report.to_json()))
    else:
        text.print_probe_summary(out.console, report)
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
        patch_text = None if patch is None else sys.stdin.read() if str(patch) == "-" else patch.read_text(errors="surrogateescape")
    except OSError as exc:
        raise _fail(f"--patch: cannot read {patch}: {exc.strerror or exc}", EXIT_NOT_TRIED) from None
    try:
        project = Project.find(Path.cwd(), config)
        cfg = project.config()
        report = Referee(project.root, cfg, display=Display(err.console), config_path=project.config_path).try_change(message, patch_text, again=again)
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
    with _one_line(MissingMCP):
        serve(project.root, project.config_path)


def main() -> None:
    try:
        app()
    except ConfigError as exc:  # pragma: no cover - commands catch their own; this is the net
        err.print(f"ratchet: error: {exc}", markup=False)
        raise SystemExit(2) from None


if __name__ == "__main__":  # pragma: no cover
    main()
