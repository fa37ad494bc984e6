"""The ways to compare a candidate with its champion (``verdict.mode``): single, repeat, sequential.

Trusted code: it only sees numbers the harness measured, drawn through a :class:`SampleSource`.
Scale and threshold of ``min_effect`` come from :mod:`ratchet.verdict.effect`.
"""

from __future__ import annotations

import abc
import random
import statistics
from dataclasses import dataclass, field
from typing import Any, Protocol

from ratchet.config import Effect, VerdictSection
from ratchet.experiment import Verdict
from ratchet.verdict import stats
from ratchet.verdict.decision import Decision
from ratchet.verdict.effect import log_scale_for, relative_change, threshold_on_scale
from ratchet.verdict.stats import improvement


class SampleSource(Protocol):
    """Where a policy draws its samples from: each call is one fresh measurement. The executors'
    ``Sampler`` is the one that measures checkouts; a simulation may draw from a distribution."""

    stored_champion: float

    def candidate(self) -> float: ...

    def champion(self) -> float: ...


@dataclass
class Judgement:
    """A policy's decision on the metric, with the samples and statistics behind it."""

    decision: Decision
    candidate: list[float] = field(default_factory=list)
    champion: list[float] = field(default_factory=list)
    p_value: float | None = None
    log_scale: bool = False

    @property
    def candidate_value(self) -> float:
        """The candidate's metric as recorded: the median of its samples."""
        return statistics.median(self.candidate)

    def to_json(self) -> dict[str, Any]:
        return {
            "candidate_samples": self.candidate,
            "champion_samples": self.champion,
            "p_value": self.p_value,
            "scale": "log" if self.log_scale else "absolute",
        }


class VerdictPolicy(abc.ABC):
    """Decides whether a candidate beats the champion. Swappable per ``verdict.mode``."""

    #: whether the policy measures the champion again (needs the champion's checkout)
    remeasures_champion = False

    def judge(self, sampler: SampleSource, rng: random.Random) -> Judgement:
        """Measure through ``sampler`` and decide on the metric alone (guards come after)."""
        value = sampler.candidate()
        return Judgement(self.would_keep(sampler.stored_champion, value), candidate=[value])

    @abc.abstractmethod
    def would_keep(self, champion: float, candidate: float) -> Decision:
        """One candidate value against one champion value: KEEP when better enough."""


def _describe(champion: float, candidate: float) -> str:
    change = relative_change(champion, candidate)
    return f"{candidate:.6g} vs champion {champion:.6g}" + (f" ({change:+.2%})" if change is not None else "")


class SingleMeasurement(VerdictPolicy):
    """Keep when one measurement beats the champion's by more than ``min_effect``."""

    def __init__(self, direction: str, min_effect: Effect) -> None:
        self.direction = direction
        self.min_effect = min_effect

    def would_keep(self, champion: float, candidate: float) -> Decision:
        # One value each: the difference in the metric's units, never on the log scale.
        gain = improvement(self.direction, champion, candidate)
        needed = threshold_on_scale(self.min_effect, False, champion)
        shown = _describe(champion, candidate)
        if gain > needed:
            return Decision(Verdict.KEEP, f"better: {shown}")
        if gain > 0:
            return Decision(Verdict.DISCARD, f"better by less than min_effect {self.min_effect}: {shown}")
        return Decision(Verdict.DISCARD, f"not better: {shown}")


class RepeatedMeasurement(VerdictPolicy):
    """n measurements of each side, interleaved in random order; the medians are compared."""

    remeasures_champion = True

    def __init__(self, section: VerdictSection, direction: str) -> None:
        self.section = section
        self.direction = direction
        self.single = SingleMeasurement(direction, section.min_effect)

    def would_keep(self, champion: float, candidate: float) -> Decision:
        return self.single.would_keep(champion, candidate)

    def judge(self, sampler: SampleSource, rng: random.Random) -> Judgement:
        cand: list[float] = []
        champ: list[float] = []
        for _ in range(self.section.repeats):
            measure_pair(sampler, rng, cand, champ)
        decision = self.single.would_keep(statistics.median(champ), statistics.median(cand))
        decision = Decision(decision.verdict, f"medians of {len(cand)}: {decision.reason}")
        return Judgement(decision, cand, champ)


class SequentialPairs(VerdictPolicy):
    """Interleaved pairs with a group-sequential paired t-test.

    After each pair from 3 to ``max_pairs``: keep when the one-sided p-value of "mean
    difference > min_effect" is below the Pocock threshold that holds the whole sequence's
    false-keep rate at ``alpha``; discard as soon as the mean difference is at or below
    ``min_effect`` (futility) or at ``max_pairs``. A metric without spread (deterministic) is
    decided on one pair.
    """

    remeasures_champion = True

    def __init__(self, section: VerdictSection, direction: str, deterministic: bool = False) -> None:
        self.section = section
        self.direction = direction
        self.deterministic = deterministic
        self.threshold = stats.pocock_threshold(section.alpha, section.max_pairs)

    def would_keep(self, champion: float, candidate: float) -> Decision:
        return SingleMeasurement(self.direction, self.section.min_effect).would_keep(champion, candidate)

    def judge(self, sampler: SampleSource, rng: random.Random) -> Judgement:
        if self.deterministic:
            # Same code, same number: one measurement of the candidate against the champion's.
            value = sampler.candidate()
            decision = self.would_keep(sampler.stored_champion, value)
            return Judgement(Decision(decision.verdict, f"deterministic metric: {decision.reason}"), [value])
        cand: list[float] = []
        champ: list[float] = []
        p = 1.0
        for n in range(1, self.section.max_pairs + 1):
            measure_pair(sampler, rng, cand, champ)
            if n < stats.MIN_PAIRS:
                continue
            log_scale = log_scale_for(self.section, cand + champ)
            diffs = [improvement(self.direction, a, b, log_scale) for a, b in zip(champ, cand)]
            effect = threshold_on_scale(self.section.min_effect, log_scale, statistics.median(champ))
            p = stats.paired_p_value(diffs, effect)
            mean = statistics.fmean(diffs)
            shown = _describe(statistics.median(champ), statistics.median(cand))
            if p < self.threshold:
                reason = f"better after {n} pairs (p={p:.3g} < {self.threshold:.3g}): medians {shown}"
                return Judgement(Decision(Verdict.KEEP, reason), cand, champ, p, log_scale)
            if mean <= effect:
                reason = f"not better after {n} pairs (mean difference at or below min_effect): medians {shown}"
                return Judgement(Decision(Verdict.DISCARD, reason), cand, champ, p, log_scale)
        shown = _describe(statistics.median(champ), statistics.median(cand))
        reason = f"not shown better in {self.section.max_pairs} pairs (p={p:.3g}): medians {shown}"
        return Judgement(Decision(Verdict.DISCARD, reason), cand, champ, p, log_scale_for(self.section, cand + champ))


def measure_pair(sampler: SampleSource, rng: random.Random, cand: list[float], champ: list[float]) -> None:
    """One interleaved pair: a candidate sample onto ``cand`` and a champion sample onto ``champ``.

    Random order within a pair: drift (a machine warming up) hits both sides alike. The verdict's
    policies, the A/A calibration and the confirmation race all draw their pairs through here.
    """
    if rng.random() < 0.5:
        cand.append(sampler.candidate())
        champ.append(sampler.champion())
    else:
        champ.append(sampler.champion())
        cand.append(sampler.candidate())


def policy_for(section: VerdictSection, direction: str, deterministic: bool = False) -> VerdictPolicy:
    if section.mode == "single":
        return SingleMeasurement(direction, section.min_effect)
    if section.mode == "repeat":
        return RepeatedMeasurement(section, direction)
    if section.mode == "sequential":
        return SequentialPairs(section, direction, deterministic)
    raise ValueError(f"unknown verdict mode {section.mode!r}")  # pragma: no cover - config validates
