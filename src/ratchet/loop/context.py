"""What a proposer is shown before it proposes: the brief, the scope's files, the champion, the
history without the holdout, what the budget has left."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TypeVar

from ratchet.experiment import Experiment
from ratchet.loop.parts import Parts
from ratchet.loop.state import RunState
from ratchet.proposers import ProposalContext
from ratchet.verdict import redact_for_proposer
from ratchet.workspace.worktree import Candidate, Workspace


_Amount = TypeVar("_Amount", int, float)


class ContextBuilder:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.brief = parts.read_brief()
        self._scope_cache: tuple[str, tuple[str, ...]] | None = None
        # The history as the proposer sees it, entry by entry: each experiment is redacted once,
        # not once per later context (that grew with the run: 16 µs x the history, per experiment).
        self._redacted: list[tuple[Experiment, str, int, Experiment]] = []
        self._lock = threading.Lock()  # workers build contexts at once

    def context(
        self, experiment: Experiment, state: RunState, workspace: Workspace | None = None, in_flight: tuple[Experiment, ...] = ()
    ) -> ProposalContext:
        parts = self.parts
        return ProposalContext(
            run=parts.run_name,
            iteration=experiment.id,
            worktree=(workspace or parts.workspace).worktree,
            brief=self.brief,
            scope=tuple(parts.scope.globs),
            scope_files=self._scope_files(state.champion),
            metric_name=parts.config.metric.name,
            direction=parts.config.metric.direction,
            champion_metric=state.champion_metric,
            baseline_metric=state.baseline_metric,
            history=self._history(state.history),
            state_dir=parts.run_dir / "proposer",
            log_dir=Path(experiment.log_dir),
            tokens_left=_share(parts.budget.tokens_left(state.progress), in_flight) if state.progress else None,
            cost_left_usd=_share(parts.budget.cost_left(state.progress), in_flight) if state.progress else None,
            in_flight=tuple(redact_for_proposer(e) for e in in_flight),
        )

    def _history(self, history: list[Experiment]) -> tuple[Experiment, ...]:
        with self._lock:
            cache = self._redacted
            done = len(cache)
            # The common case: the same history, longer (a finished experiment is not changed
            # again): only the new entries are redacted; otherwise each entry is checked.
            start = done if 0 < done <= len(history) and cache[0][0] is history[0] and cache[-1][0] is history[done - 1] else 0
            for index, experiment in enumerate(history[start:], start):
                if index < len(cache):
                    source, reason, keys, _ = cache[index]
                    if source is experiment and reason is experiment.reason and keys == len(experiment.extra):
                        continue
                    del cache[index:]  # another history (a snapshot, a resume): redo from here
                cache.append((experiment, experiment.reason, len(experiment.extra), redact_for_proposer(experiment)))
            del cache[len(history):]
            return tuple(entry[3] for entry in cache)

    def _scope_files(self, champion: str) -> tuple[str, ...]:
        # Listing the tree costs a git process; it only changes when the champion does.
        with self._lock:
            if self._scope_cache is None or self._scope_cache[0] != champion:
                workspace = self.parts.workspace
                self._scope_cache = (champion, tuple(self.parts.scope.select(workspace.tracked_files(champion, cwd=self.parts.repo_root))))
            return self._scope_cache[1]

    def kept(self, commit: str, candidate: Candidate, workspace: Workspace | None = None) -> None:
        """The new champion's scope files are the old ones plus what the keep added, minus what it
        deleted: no need to list the tree again."""
        worktree = (workspace or self.parts.workspace).worktree
        with self._lock:
            if self._scope_cache is None:
                return
            files = set(self._scope_cache[1]) | set(candidate.paths)
            files -= {path for path in candidate.paths if not os.path.lexists(worktree / path)}
            self._scope_cache = (commit, tuple(sorted(files)))


def _share(left: _Amount | None, in_flight: tuple[Experiment, ...]) -> _Amount | None:
    """What one proposal may spend of what is left: with others in flight (still spending), its
    equal share, so that N proposals at once cannot spend N times the rest."""
    if left is None or not in_flight:
        return left
    share = left / (len(in_flight) + 1)
    return type(left)(share)
