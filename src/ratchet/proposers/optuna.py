"""The ``optuna`` proposer: tune declared or marked literals with a persistent Optuna TPE study.

One ratchet run is one Optuna study, kept on disk in the proposer's ``state_dir``. A proposal is
one trial: ``ask`` -> write the sampled values into the scope -> the loop measures -> ``tell``.
The trial number travels in ``Proposal.meta`` so that a crash between ask and tell can be repaired
from the ledger on resume.

With several workers (``[run] workers``), several trials are asked before any is told, and told
in whatever order their measurements end. The sampler is TPE with ``constant_liar``: a trial
still running counts as a bad result, so the next asks spread out instead of drawing the same
promising point again. One lock serializes every use of the study: the journal storage is
thread-safe on its own, but the sampler's random state is not, and an ask and its suggestions
must happen together so that the next ask sees the point the previous one took.
"""

from __future__ import annotations

import math
import threading
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.config import OptunaProposerSection, ParamSpec
from ratchet.experiment import Experiment
from ratchet.proposers._params import Param, discover_params, normalize, render_edits
from ratchet.proposers.base import (
    Outcome,
    Proposal,
    ProposalContext,
    Proposer,
    ProposerError,
)

if TYPE_CHECKING:  # optuna is imported lazily: `ratchet --help` should not pay for it
    import optuna

STUDY_NAME = "ratchet"
JOURNAL_FILE = "optuna.journal"
_STUDY_TOKEN = "ratchet_study"  # a study user attr: tells this study's trials from a deleted one's


NO_PARAMS_HELP = (
    "the optuna proposer found no parameters to tune; mark a literal in a scope file with a trailing "
    "comment such as `lr = 0.01  # ratchet: log 1e-4..1e-1` (or `// ratchet: int 1..8` in C-like files), "
    'or declare one in ratchet.toml: [[proposer.params]] file = "config.yaml", key = "train.lr", range = "log 1e-4..1e-1"'
)


def _distribution(spec: ParamSpec) -> optuna.distributions.BaseDistribution:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if spec.kind == "choice":
        return CategoricalDistribution(list(spec.choices))
    assert spec.low is not None and spec.high is not None
    if spec.kind == "int":
        step = 1 if spec.step is None else spec.step
        if step != int(step):
            raise ValueError(f"{spec}: an int range needs an integer step")
        return IntDistribution(int(spec.low), int(spec.high), log=spec.log, step=int(step))
    return FloatDistribution(spec.low, spec.high, log=spec.log, step=spec.step)


def _is_finite(value: float | None) -> bool:
    return value is not None and not isinstance(value, bool) and math.isfinite(value)


def _repair_journal(path: Path) -> None:
    """Drop a half-written last record, the one trace a kill -9 in mid-append can leave.

    Optuna appends one newline-terminated JSON line per operation; a torn tail would make every
    later append unreadable. Only this session writes the file, so truncating it is safe.
    """
    if not path.exists():
        return
    with path.open("rb+") as handle:
        data = handle.read()
        if data and not data.endswith(b"\n"):
            handle.truncate(data.rfind(b"\n") + 1)


class OptunaProposer(Proposer):
    """Propose the next Optuna TPE trial as literal edits in the scope."""

    kind = "optuna"
    # Trials are asked and told under one lock; running ones steer the next asks (constant liar).
    concurrent = True

    def __init__(self, config: OptunaProposerSection, *, direction: str) -> None:
        if direction not in ("minimize", "maximize"):
            raise ValueError(f"direction must be 'minimize' or 'maximize' (got {direction!r})")
        self.config = config
        self.direction = direction
        self._study: optuna.Study | None = None
        self._token = ""
        # Trials this session asked and has not told yet, in the order asked.
        self._open: list[int] = []
        self._lock = threading.RLock()  # re-entrant: propose may open the study (resume) itself

    def __getstate__(self) -> dict[str, Any]:
        # A copy (the contract's fresh proposer, a deepcopy) gets a lock of its own.
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    # ------------------------------------------------------------ lifecycle

    def resume(self, history: tuple[Experiment, ...], state_dir: Path) -> None:
        """Open (or create) the study in ``state_dir`` and settle trials a crash left RUNNING."""
        with self._lock:
            self._resume(history, state_dir)

    def _resume(self, history: tuple[Experiment, ...], state_dir: Path) -> None:
        import optuna
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / JOURNAL_FILE
        # Why a journal file rather than SQLite: each operation is one small append + fsync, so a
        # kill -9 leaves at worst a torn last line and a stale lock file, both cleared here (the
        # state_dir belongs to this run, and a run has one session at a time). SQLite's commits
        # are just as safe, but Optuna's RDB storage creates its schema in several non-atomic
        # steps (tables, version row, alembic stamp) and costs ~0.5 s of SQLAlchemy per session.
        _repair_journal(path)
        path.with_name(path.name + ".lock").unlink(missing_ok=True)
        # grace_period: should a lock still go stale (another process?), take it over after 5 s.
        lock = JournalFileOpenLock(str(path), grace_period=5)
        storage = optuna.storages.JournalStorage(JournalFileBackend(str(path), lock))
        try:
            study = optuna.create_study(
                storage=storage, study_name=STUDY_NAME, direction=self.direction, load_if_exists=True  # type: ignore[arg-type]
            )
        except ValueError as exc:
            raise ProposerError(f"cannot open the optuna study in {path}: {exc}") from None
        if study.direction.name.lower() != self.direction:
            raise ProposerError(
                f"the optuna study in {path} was made to {study.direction.name.lower()}, but the metric now says "
                f"{self.direction}; start a new run (or delete that file) to change direction"
            )
        self._token = study.user_attrs.get(_STUDY_TOKEN) or ""
        if not self._token:
            self._token = uuid.uuid4().hex[:12]
            study.set_user_attr(_STUDY_TOKEN, self._token)
        # A fixed seed would replay the same start-up samples after every resume; shifting it by
        # the number of trials so far keeps runs reproducible without repeating proposals.
        trials = study.get_trials(deepcopy=False)
        seed = None if self.config.seed is None else self.config.seed + len(trials)
        with warnings.catch_warnings():  # constant_liar is "experimental" before optuna 5 (its default since)
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.sampler = optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=self.config.startup_trials, constant_liar=True
            )
        self._study = study
        self._repair(history)

    def _repair(self, history: tuple[Experiment, ...]) -> None:
        """Tell every RUNNING trial what the ledger knows about it, or FAIL if it knows nothing.

        A kill -9 with several workers leaves several trials RUNNING: each is settled on its own
        from its experiment's row (the trial number is in its ``proposal_meta``)."""
        import optuna

        assert self._study is not None
        measured: dict[int, float] = {}
        for experiment in history:
            meta = experiment.proposal_meta or {}
            trial = meta.get("trial")
            if not isinstance(trial, int) or meta.get("study", self._token) != self._token:
                continue
            judged = experiment.verdict is not None and experiment.verdict.judged_on_metric
            if judged and all(guard.passed for guard in experiment.guards) and _is_finite(experiment.metric):
                measured[trial] = float(experiment.metric)  # type: ignore[arg-type]
        for trial in self._study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            if trial.number in measured:
                self._study.tell(trial.number, measured[trial.number], skip_if_finished=True)
            else:
                self._study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        self._open = []

    def close(self) -> None:
        """Nothing to flush: every journal append is already fsynced."""
        with self._lock:
            self._study = None
            self._open = []

    # ------------------------------------------------------------ proposing

    def propose(self, context: ProposalContext) -> Proposal:
        # The worktree is this experiment's own: reading and rewriting it needs no lock.
        try:
            params = discover_params(context.worktree, self.config.params, context.scope_files, self.config.markers)
            distributions = {param.name: _distribution(param.spec) for param in params}
        except ValueError as exc:
            raise ProposerError(str(exc)) from None
        if not params:
            raise ProposerError(NO_PARAMS_HELP)
        with self._lock:
            if self._study is None:  # the loop normally calls resume first; be forgiving
                self._resume(context.history, context.state_dir)
            study = self._study
            assert study is not None
            if not study.get_trials(deepcopy=False):
                self._add_champion(params, distributions, context.champion_metric)
            trial = study.ask()
            self._open.append(trial.number)
            try:
                values = {param.name: normalize(self._suggest(trial, param, distributions[param.name]), param.spec) for param in params}
            except Exception as exc:  # noqa: BLE001 - whatever went wrong, the trial must not stay RUNNING
                self._fail(trial.number)
                raise ProposerError(f"optuna trial {trial.number}: {exc}") from None
        try:
            edits = render_edits(context.worktree, params, values)
        except Exception as exc:  # noqa: BLE001 - as above
            with self._lock:
                self._fail(trial.number)
            raise ProposerError(f"optuna trial {trial.number}: {exc}") from None
        names = _display_names(params)
        summary = ", ".join(f"{names[p.name]}={_show(values[p.name])}" for p in params)
        return Proposal(
            hypothesis=f"optuna trial {trial.number}: {summary}",
            edits=edits,
            meta={"trial": trial.number, "study": self._token, "params": values},
        )

    @staticmethod
    def _suggest(trial: optuna.Trial, param: Param, distribution: Any) -> Any:
        from optuna.distributions import CategoricalDistribution, IntDistribution

        if isinstance(distribution, CategoricalDistribution):
            return trial.suggest_categorical(param.name, distribution.choices)
        if isinstance(distribution, IntDistribution):
            return trial.suggest_int(param.name, distribution.low, distribution.high, step=distribution.step, log=distribution.log)
        return trial.suggest_float(param.name, distribution.low, distribution.high, step=distribution.step, log=distribution.log)

    def _add_champion(self, params: list[Param], distributions: dict[str, Any], metric: float | None) -> None:
        """Seed a fresh study with the champion's values and metric, so TPE starts from what is known."""
        import optuna

        assert self._study is not None
        if not _is_finite(metric):
            return
        try:
            trial = optuna.trial.create_trial(
                params={param.name: param.value for param in params},
                distributions=distributions,
                value=float(metric),  # type: ignore[arg-type]
                user_attrs={"ratchet": "champion"},
            )
        except ValueError:
            return  # a current value outside its range: the sampler just starts without it
        self._study.add_trial(trial)

    def _fail(self, number: int) -> None:
        import optuna

        assert self._study is not None
        self._study.tell(number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        if number in self._open:
            self._open.remove(number)

    # ------------------------------------------------------------ learning

    def observe(self, outcome: Outcome) -> None:
        """Tell the trial its metric for a measured verdict, FAIL for anything else.

        Outcomes may come in any order. One without a proposal names no trial: it is the open
        trial when there is exactly one (one worker); with several open, each is told by its
        own outcome, or settled from the ledger on resume.
        """
        with self._lock:
            if self._study is None:
                return
            meta = outcome.proposal.meta if outcome.proposal is not None else {}
            number = meta.get("trial", self._open[0] if len(self._open) == 1 else None)
            if not isinstance(number, int):
                return
            if outcome.verdict.judged_on_metric and outcome.guards_passed and _is_finite(outcome.metric):
                self._study.tell(number, float(outcome.metric), skip_if_finished=True)  # type: ignore[arg-type]
                if number in self._open:
                    self._open.remove(number)
            else:
                self._fail(number)


def _display_names(params: list[Param]) -> dict[str, str]:
    """Short names (``lr``) in hypotheses, full ``file:key`` names only where short ones collide."""
    counts: dict[str, int] = {}
    for param in params:
        counts[param.short_name] = counts.get(param.short_name, 0) + 1
    return {param.name: param.short_name if counts[param.short_name] == 1 else param.name for param in params}


def _show(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
