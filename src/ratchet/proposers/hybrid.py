"""The ``hybrid`` proposer: an LLM proposes structure, TPE fits the numbers the structure exposes.

The earth-system case of the use-case catalog: a model proposes formula structures, a TPE
optimizer fits their coefficients. Each cycle is:

1. a **structure** step: the llm proposer's conversation, told to make a structural change and to
   mark its numeric constants (``a = 0.5  # ratchet: -2..2``, as for the optuna proposer);
2. ``tuning_trials`` **tuning** steps: TPE samples values for the marked numbers of that structure
   and each sample is written into it.

Every step is an ordinary experiment: ratchet measures it with the frozen harness, judges it, and
keeps it or not. While the structure has not been kept, each tuning step carries the structure
along (its edits plus the sampled numbers, on top of the champion); once one of the cycle's
experiments is kept, the structure is the champion and tuning goes on from there.

Why this design rather than the two the issue names. A short Optuna study *inside* the proposer,
whose best trial becomes the candidate, would need the proposer to run the metric itself, outside
the harness check and the verdict: the trust model says only ratchet measures. TPE-until-plateau
*then* an LLM change (autoresearch-rl) judges each new structure with the numbers it came with,
so a structure that is right but badly parametrised is discarded before anything fits it. Here a
structure is judged by its best fitted version, and each fit is measured like anything else.

In the ledger, ``proposal.step`` is ``"structure"`` or ``"tuning"`` (and ``proposal.structure``
the id of the structure a tuning step belongs to); hypotheses start with ``[structure]`` or
``[tuning i/N of #id]``. The cycle's state is read back from the ledger (and the structure's
edits from the proposer's state folder), so a resumed run carries on where it stopped.

With several workers, structure steps are llm conversations side by side; the tuning steps of
one structure are chosen under a lock, counting the ones still being measured (those in flight,
and those this proposer handed out that the loop has not yet listed) so that a structure gets
``tuning_trials`` of them in all, each a different sample: the running ones join the study as
running trials, which TPE's constant liar steers away from.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.config import HybridProposerSection
from ratchet.experiment import Experiment, Verdict
from ratchet.proposers._edits import diff_key
from ratchet.proposers._params import Param, discover_params, normalize, render_edits
from ratchet.proposers.base import Proposal, ProposalContext, ProposerError
from ratchet.proposers.llm import LLMProposer
from ratchet.proposers.optuna import (
    OptunaProposer,
    _display_names,
    _distribution,
    _is_finite,
    _show,
)

if TYPE_CHECKING:
    from ratchet.measure.containment import Containment

STRUCTURES_DIR = "structures"
OVERLAY_DIR = "overlay"


class HybridProposer(LLMProposer):
    kind = "hybrid"

    def __init__(
        self,
        section: HybridProposerSection,
        *,
        root: Path,
        direction: str,
        money_budget: bool = False,
        containment: Containment | None = None,
    ) -> None:
        super().__init__(section, root=root, money_budget=money_budget, containment=containment)
        self.hybrid = section
        self.direction = direction
        # Tuning steps handed out and not yet in the history: experiment id -> its meta.
        self._handed: dict[int, dict[str, Any]] = {}
        self._tuning = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        del state["_tuning"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._tuning = threading.Lock()

    def resume(self, history: tuple[Experiment, ...], state_dir: Path) -> None:
        super().resume(history, state_dir)
        with self._tuning:
            self._handed = {}  # a new session: what was in flight is in the ledger now

    def propose(self, context: ProposalContext) -> Proposal:
        structure = _current_structure(context.history)
        if structure is not None:
            with self._tuning:
                trials = [e for e in context.history if _step(e) == "tuning" and e.proposal_meta.get("structure") == structure.id]
                running = self._running(context, structure.id)
                if len(trials) + len(running) < self.hybrid.tuning_trials:
                    proposal = self._tune(context, structure, trials, running)
                    if proposal is not None:
                        self._handed[context.iteration] = dict(proposal.meta)
                        return proposal
        return self._structure(context)

    def _running(self, context: ProposalContext, structure: int) -> list[dict[str, Any]]:
        """The metas of ``structure``'s tuning steps being measured now (none with one worker)."""
        done = {e.id for e in context.history}
        for id in [id for id in self._handed if id in done]:
            del self._handed[id]
        running = {id: meta for id, meta in self._handed.items() if id != context.iteration}
        running.update({e.id: e.proposal_meta for e in context.in_flight if e.id != context.iteration and e.proposal_meta})
        return [meta for meta in running.values() if meta.get("step") == "tuning" and meta.get("structure") == structure]

    # ------------------------------------------------------------ structure steps

    def _structure(self, context: ProposalContext) -> Proposal:
        change = self.propose_change(context, structural=True, tuning_trials=self.hybrid.tuning_trials)
        folder = context.state_dir / STRUCTURES_DIR
        folder.mkdir(parents=True, exist_ok=True)
        # The structure's files, kept so that its tuning steps (after a restart too) can rebuild it.
        (folder / f"{context.iteration}.json").write_text(json.dumps(change.edits))
        with self._overlay(context, change.edits) as overlay:
            params = self._params(overlay, context, change.edits)
        meta = {**change.meta, "step": "structure", "structure": context.iteration}
        if params:
            meta["params"] = {param.name: param.value for param in params}
        return Proposal(hypothesis=f"[structure] {change.hypothesis}", edits=change.edits, meta=meta, usage=change.usage)

    # ------------------------------------------------------------ tuning steps

    def _tune(
        self, context: ProposalContext, structure: Experiment, trials: list[Experiment], running: list[dict[str, Any]]
    ) -> Proposal | None:
        """The next TPE trial on ``structure``'s numbers, or None when it has nothing to tune."""
        kept = structure.verdict is Verdict.KEEP or any(t.verdict is Verdict.KEEP for t in trials)
        pending: dict[str, str] = {}
        if not kept:  # carry the structure along until one of its versions is kept
            try:
                pending = json.loads((context.state_dir / STRUCTURES_DIR / f"{structure.id}.json").read_text())
            except (OSError, ValueError):
                return None
        with self._overlay(context, pending) as overlay:
            params = self._params(overlay, context, pending)
            if not params:
                return None
            values = self._sample(params, structure, trials, running)
            try:
                rendered = render_edits(overlay, params, values)
            except ValueError as exc:
                raise ProposerError(f"tuning structure #{structure.id}: {exc}") from None
        edits = {**pending, **rendered}
        originals = {path: _read(context.worktree, path) for path in edits}
        names = _display_names(params)
        number = len(trials) + len(running) + 1
        summary = ", ".join(f"{names[p.name]}={_show(values[p.name])}" for p in params)
        return Proposal(
            hypothesis=f"[tuning {number}/{self.hybrid.tuning_trials} of #{structure.id}] {summary}",
            edits=edits,
            meta={
                "step": "tuning",
                "structure": structure.id,
                "trial": number,
                "params": values,
                "diff_key": diff_key(originals, edits),
            },
        )

    def _sample(
        self, params: list[Param], structure: Experiment, trials: list[Experiment], running: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """TPE's next values for ``params``, from the structure's measured versions; the running
        ones are running trials of the study, so the constant liar keeps the sample off them."""
        import optuna

        distributions = {param.name: _distribution(param.spec) for param in params}
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # Shifted by the steps running too: two steps sampled side by side do not share a seed.
        seed = None if self.hybrid.seed is None else self.hybrid.seed + structure.id * 1000 + len(trials) + len(running)
        with warnings.catch_warnings():  # constant_liar is "experimental" before optuna 5 (its default since)
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.hybrid.startup_trials, constant_liar=True)
        study = optuna.create_study(direction=self.direction, sampler=sampler)  # type: ignore[arg-type]
        # What the ledger knows about this structure is the study: nothing else to keep in sync.
        for experiment in [structure, *trials]:
            known = experiment.proposal_meta.get("params")
            if (
                experiment.verdict is not None and experiment.verdict.judged_on_metric
                and _is_finite(experiment.metric)
                and all(guard.passed for guard in experiment.guards)
                and isinstance(known, dict)
                and set(known) == set(distributions)
            ):
                try:
                    study.add_trial(
                        optuna.trial.create_trial(params=known, distributions=distributions, value=float(experiment.metric))  # type: ignore[arg-type]
                    )
                except ValueError:
                    pass  # a value outside its (changed) range
        for meta in running:
            known = meta.get("params")
            if isinstance(known, dict) and set(known) == set(distributions):
                try:
                    study.add_trial(
                        optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING, params=known, distributions=distributions)
                    )
                except ValueError:
                    pass
        trial = study.ask()
        return {
            param.name: normalize(OptunaProposer._suggest(trial, param, distributions[param.name]), param.spec)
            for param in params
        }

    # ------------------------------------------------------------ helpers

    @contextlib.contextmanager
    def _overlay(self, context: ProposalContext, edits: dict[str, str]) -> Iterator[Path]:
        """A scratch copy of the scope's files at the champion with ``edits`` written over them,
        removed after use: one folder per call, as several workers may propose at once."""
        context.state_dir.mkdir(parents=True, exist_ok=True)
        overlay = Path(tempfile.mkdtemp(prefix=f"{OVERLAY_DIR}-", dir=context.state_dir))
        try:
            for path in {*context.scope_files, *edits}:
                target = overlay / path
                target.parent.mkdir(parents=True, exist_ok=True)
                if path in edits:
                    target.write_text(edits[path], encoding="utf-8", errors="surrogateescape")
                elif (context.worktree / path).is_file():
                    shutil.copyfile(context.worktree / path, target)
            yield overlay
        finally:
            shutil.rmtree(overlay, ignore_errors=True)

    def _params(self, overlay: Path, context: ProposalContext, edits: dict[str, str]) -> list[Param]:
        files = sorted({*context.scope_files, *edits})
        try:
            return discover_params(overlay, [], files, markers=True)
        except ValueError as exc:
            raise ProposerError(f"the structure's markers: {exc}") from None


def _step(experiment: Experiment) -> str | None:
    return experiment.proposal_meta.get("step")


def _current_structure(history: tuple[Experiment, ...]) -> Experiment | None:
    """The last structure step, if it was measured (a structure that crashed is not worth tuning)."""
    for experiment in reversed(history):
        if _step(experiment) == "structure":
            return experiment if experiment.verdict is not None and experiment.verdict.judged_on_metric else None
    return None


def _read(worktree: Path, path: str) -> str | None:
    target = worktree / path
    return target.read_bytes().decode("utf-8", errors="surrogateescape") if target.is_file() else None
