"""What an agent that drives ratchet may see of a run: the ledger, without the holdout.

The proposer never sees the holdout metric (the trust model): its values live in an
experiment's ``extra`` and in the reason of an overfit verdict. Every view handed to an agent
(``ratchet try``'s report, the MCP tools and resources) is built here, so the cut is made once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from pydantic import BaseModel

from ratchet.config import Config
from ratchet.experiment import Experiment, Verdict, measured_count, pending_reviews
from ratchet.ledger import LEDGER_FILE, Ledger
from ratchet.proposers.base import ProposalContext
from ratchet.proposers.brief import render_brief
from ratchet.report.terminal import format_change, format_metric
from ratchet.state import STATE_DIR, run_lock_holder
from ratchet.workspace.git import GitError, git
from ratchet.workspace.scope import Globs
from ratchet.workspace.worktree import BRANCH_PREFIX

HIDDEN = "the holdout check's details are hidden from proposers"
HYPOTHESIS_CHARS = 160
# The champion's files shown by `context`, in total; a larger scope is listed without text.
CONTEXT_FILE_CHARS = 60_000
_HOLDOUT_KEYS = ("holdout", "overfit")


class ExperimentRow(BaseModel):
    """One experiment, compact: what `history` lists."""

    id: int
    verdict: str
    metric: float | None
    # The comparison the verdict made: the champion's value it saw (re-measured when the
    # policy measures the champion again; else its recorded score) and the change against it.
    champion: float | None = None
    champion_remeasured: bool = False
    change: str  # e.g. "-3.10%": the candidate against `champion`; negative = the metric went down
    hypothesis: str
    commit: str | None


class ExperimentDetail(ExperimentRow):
    """One experiment in full: what `show` returns."""

    reason: str
    parent_commit: str
    proposer: str
    duration_s: float | None
    guards: list[dict[str, Any]]
    measurement: dict[str, Any]  # the verdict's statistics (samples, test), holdout removed
    diff: str
    output_tail: str


class RunStatus(BaseModel):
    """Where a run stands."""

    run: str
    branch: str
    metric: str
    direction: str
    started: bool  # False until the first try (or `ratchet run`) measures the baseline
    active: bool  # a `ratchet run` (or another try) holds the run right now
    champion: float | None
    champion_commit: str | None
    champion_experiment: int | None
    baseline: float | None
    experiments: int  # measured: the baseline, abandoned experiments and the one in flight aside
    counts: dict[str, int]
    last: ExperimentRow | None
    pending_reviews: list[int] = []  # would-be keeps waiting for a person (`ratchet review`)


# ---------------------------------------------------------------- the cut


def proposer_reason(experiment: Experiment) -> str:
    """The verdict's reason with anything about the holdout cut out."""
    reason = experiment.reason
    at = reason.lower().find("holdout")
    if at < 0 and experiment.verdict is not Verdict.OVERFIT:
        return reason
    head = reason[:at] if at >= 0 else reason
    cut = max(head.rfind(", but"), head.rfind("; "))
    kept = head[:cut] if cut > 0 else ""
    return f"{kept} ({HIDDEN})" if kept else f"({HIDDEN})"


def without_holdout(experiment: Experiment) -> Experiment:
    """A copy the proposer may see: no holdout values, no holdout reason."""
    import dataclasses

    extra = {key: value for key, value in experiment.extra.items() if key not in _HOLDOUT_KEYS}
    return dataclasses.replace(experiment, extra=extra, reason=proposer_reason(experiment))


# ---------------------------------------------------------------- rows


def _short(text: str, limit: int = HYPOTHESIS_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def champion_before(experiments: Sequence[Experiment], experiment_id: int) -> Experiment | None:
    """The champion an experiment was measured against: the last keep (or the baseline) before it."""
    found = None
    for e in experiments:
        if e.id >= experiment_id:
            break
        if e.verdict in (Verdict.KEEP, Verdict.BASELINE) and e.metric is not None:
            found = e
    return found


def rows(experiments: Sequence[Experiment]) -> list[ExperimentRow]:
    """Every finished experiment, its metric's change against the champion of its time."""
    out: list[ExperimentRow] = []
    champion: float | None = None
    for e in experiments:
        if e.verdict is None:
            continue
        compared = None if e.verdict is Verdict.BASELINE else e.comparison(champion)
        out.append(
            ExperimentRow(
                id=e.id, verdict=e.verdict.value, metric=e.metric,
                champion=compared.champion if compared else None,
                champion_remeasured=compared.remeasured if compared else False,
                change=format_change(compared.champion, compared.candidate) if compared else "",
                hypothesis=_short(e.hypothesis), commit=e.commit,
            )
        )  # fmt: skip
        if e.verdict in (Verdict.KEEP, Verdict.BASELINE) and e.metric is not None:
            champion = e.metric
    return out


def history_lines(table: Sequence[ExperimentRow], last: int = 5) -> list[str]:
    """A few rows as plain lines, newest last: the short history printed after a try."""
    lines = []
    for row in table[-last:]:
        change = ""
        if row.change and row.champion is not None:
            how = "re-measured" if row.champion_remeasured else "recorded"
            change = f" ({row.change} vs champion {format_metric(row.champion)} {how})"
        lines.append(f"  #{row.id:<4} {row.verdict:<9} {format_metric(row.metric)}{change}  {row.hypothesis}")
    return lines


def detail(root: Path, experiment: Experiment, experiments: Sequence[Experiment]) -> ExperimentDetail:
    seen = without_holdout(experiment)
    (row,) = [r for r in rows(experiments) if r.id == experiment.id] or [
        ExperimentRow(id=experiment.id, verdict="running", metric=None, change="", hypothesis=_short(experiment.hypothesis), commit=None)
    ]
    return ExperimentDetail(
        **row.model_dump(),
        reason=seen.reason,
        parent_commit=experiment.parent_commit,
        proposer=experiment.proposer,
        duration_s=experiment.duration,
        guards=[guard.to_json() for guard in experiment.guards],
        measurement=seen.extra,
        diff=diff_of(root, experiment),
        output_tail=experiment.output_tail,
    )


def diff_of(root: Path, experiment: Experiment) -> str:
    if experiment.commit:
        try:
            return git(root, "show", "--format=", "--patch", experiment.commit)
        except GitError:
            pass
    for name in ("proposal.diff", "proposal.patch"):
        path = Path(experiment.log_dir) / name
        if experiment.log_dir and path.exists():
            return path.read_text(errors="replace")
    return ""


# ---------------------------------------------------------------- the run


class RunView:
    """Read-only access to one run of a repository, as an agent may see it."""

    def __init__(self, root: Path, config: Config) -> None:
        self.root = root
        self.config = config
        self.run = config.run.name
        self.branch = BRANCH_PREFIX + self.run
        self.scope = Globs(config.scope.mutable)
        self.ledger_path = root / STATE_DIR / LEDGER_FILE

    def experiments(self) -> list[Experiment]:
        if not self.ledger_path.exists():
            return []
        ledger = Ledger(self.ledger_path)
        try:
            return ledger.experiments(self.run)
        finally:
            ledger.close()

    def champion_commit(self) -> str:
        """The tip of the run branch; before the run exists, HEAD (where the run will start)."""
        tip = git(self.root, "rev-parse", "--verify", "--quiet", f"refs/heads/{self.branch}", check=False).strip()
        tip = tip or git(self.root, "rev-parse", "--verify", "--quiet", "HEAD", check=False).strip()
        if not tip:
            raise GitError(f"{self.root} has no commit yet; commit your project first")
        return tip

    def active(self) -> bool:
        return run_lock_holder(self.root / STATE_DIR, self.run) is not None

    def status(self) -> RunStatus:
        experiments = self.experiments()
        table = rows(experiments)
        counts: dict[str, int] = {}
        for row in table:
            counts[row.verdict] = counts.get(row.verdict, 0) + 1
        baseline = next((e for e in experiments if e.verdict is Verdict.BASELINE), None)
        champion = next((e for e in reversed(experiments) if e.verdict in (Verdict.KEEP, Verdict.BASELINE)), None)
        return RunStatus(
            run=self.run,
            branch=self.branch,
            metric=self.config.metric.name,
            direction=self.config.metric.direction,
            started=baseline is not None,
            active=self.active(),
            champion=champion.metric if champion else None,
            champion_commit=(champion.commit or champion.parent_commit) if champion else None,
            champion_experiment=champion.id if champion else None,
            baseline=baseline.metric if baseline else None,
            experiments=measured_count(experiments),  # the baseline, abandoned ones and the one in flight aside
            counts=counts,
            last=table[-1] if table else None,
            pending_reviews=[item.experiment.id for item in pending_reviews(experiments)],
        )

    def history(self, last: int | None = None) -> list[ExperimentRow]:
        table = rows(self.experiments())
        return table[-last:] if last else table

    def show(self, experiment_id: int) -> ExperimentDetail | None:
        experiments = self.experiments()
        found = next((e for e in experiments if e.id == experiment_id), None)
        return None if found is None else detail(self.root, found, experiments)

    def context(self, hypothesis_hint: str) -> str:
        """The brief as the LLM proposer gets it (program.md, metric, scope, history, rules),
        then the scope's files at the champion."""
        experiments = self.experiments()
        champion_commit = self.champion_commit()
        done = [e for e in experiments if e.verdict is not None]
        champion = next((e for e in reversed(done) if e.verdict in (Verdict.KEEP, Verdict.BASELINE)), None)
        baseline = next((e for e in done if e.verdict is Verdict.BASELINE), None)
        files = self.scope.select(_tree(self.root, champion_commit))
        brief_path = self.root / self.config.run.brief
        context = ProposalContext(
            run=self.run,
            iteration=(experiments[-1].id + 1) if experiments else 0,
            worktree=self.root,
            brief=brief_path.read_text(errors="replace") if brief_path.is_file() else "",
            scope=tuple(self.scope.globs),
            scope_files=tuple(files),
            metric_name=self.config.metric.name,
            direction=self.config.metric.direction,
            champion_metric=champion.metric if champion else None,
            baseline_metric=baseline.metric if baseline else None,
            history=tuple(without_holdout(e) for e in done),
            state_dir=self.root / STATE_DIR / "runs" / self.run / "proposer",
            log_dir=self.root / STATE_DIR,
        )
        text = render_brief(context, hypothesis_hint)
        return text + "\n" + _files_section(self.root, champion_commit, files)


def _tree(root: Path, commit: str) -> list[str]:
    out = git(root, "ls-tree", "-r", "-z", "--name-only", "--full-tree", commit)
    return [path for path in out.split("\0") if path]


def _files_section(root: Path, commit: str, files: Sequence[str]) -> str:
    short = commit[:7]
    parts = [f"## The scope's files at the champion ({short})"]
    texts: list[tuple[str, str | None]] = []
    total = 0
    for path in files:
        try:
            data = git(root, "show", f"{commit}:{path}")
        except GitError:
            texts.append((path, None))
            continue
        if "\0" in data[:8192]:
            texts.append((path, None))
            continue
        texts.append((path, data))
        total += len(data)
        if total > CONTEXT_FILE_CHARS:
            break  # no need to read the rest
    if total > CONTEXT_FILE_CHARS:
        parts.append(f"(their text is over {CONTEXT_FILE_CHARS} characters: open the files themselves)")
        parts += [f"- {path}" for path in files]
        return "\n".join(parts) + "\n"
    for path, text in texts:
        if text is None:
            parts.append(f"\n### {path}\n(binary, not shown)")
        else:
            parts.append(f"\n### {path}\n```\n{text.rstrip()}\n```")
    return "\n".join(parts) + "\n"
