"""The ways to compare a candidate with its champion (``verdict.mode``): single, repeat, sequential,
and auto's powered sequential test (the default; noisy metrics), each at the level the run's error
control sets (:mod:`ratchet.verdict.error_control`).

Trusted code: it only sees numbers the harness measured, drawn through a :class:`SampleSource`.
Scale and threshold of ``min_effect`` come from :mod:`ratchet.verdict.effect`.
"""

from __future__ import annotations

import abc
import math
import random
import statistics
from dataclasses import dataclass, field
from typing import Any, Protocol

from ratchet.config import Effect, VerdictSection
from ratchet.experiment import Verdict
from ratchet.verdict import stats
from ratchet.verdict.decision import Decision
from ratchet.verdict.effect import log_scale_for, relative_change, threshold_on_scale
from ratchet.verdict.error_control import Past, e_lond_level, e_value
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
    # The level the test was run at, and how it was set ("candidate": alpha; "run": e-LOND).
    level: float | None = None
    error_control: str | None = None

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
            **(
                {"test_level": self.level, "error_control": self.error_control,
                 "e_value": e_value(self.decision.verdict is Verdict.KEEP, self.level)}
                if self.level is not None else {}
            ),
        }  # fmt: skip


class VerdictPolicy(abc.ABC):
    """Decides whether a candidate beats the champion. Swappable per ``verdict.mode``."""

    #: whether the policy measures the champion again (needs the champion's checkout)
    remeasures_champion = False

    #: whether the test's level comes from the run's error control (the loop then passes ``past``)
    run_level = False

    def judge(self, sampler: SampleSource, rng: random.Random, past: Past | None = None) -> Judgement:
        """Measure through ``sampler`` and decide on the metric alone (guards come after). ``past``:
        the run's tests and keeps so far, for a policy whose level the run's error control sets."""
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

    def judge(self, sampler: SampleSource, rng: random.Random, past: Past | None = None) -> Judgement:
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

    def __init__(self, section: VerdictSection, direction: str, deterministic: bool = False) -> None:
        self.section = section
        self.direction = direction
        self.deterministic = deterministic
        # A deterministic metric is judged on one measurement against the champion's score.
        self.remeasures_champion = not deterministic
        self.run_level = section.run_level and not deterministic
        self.threshold = self.threshold_at(section.alpha)

    def threshold_at(self, level: float) -> float:
        """The per-look p threshold that holds the whole sequence's false-keep rate at ``level``."""
        return stats.pocock_threshold(level, self.section.max_pairs)

    def level(self, past: Past | None) -> tuple[float, str]:
        """The level of this test: alpha, or e-LOND's from the run so far."""
        if self.run_level and past is not None:
            return e_lond_level(self.section.fdr, past), "run"
        return self.section.alpha, "candidate"

    def would_keep(self, champion: float, candidate: float) -> Decision:
        return SingleMeasurement(self.direction, self.section.min_effect).would_keep(champion, candidate)

    def judge(self, sampler: SampleSource, rng: random.Random, past: Past | None = None) -> Judgement:
        if self.deterministic:
            # Same code, same number: one measurement of the candidate against the champion's.
            value = sampler.candidate()
            decision = self.would_keep(sampler.stored_champion, value)
            return Judgement(Decision(decision.verdict, f"deterministic metric: {decision.reason}"), [value])
        level, control = self.level(past)
        threshold = self.threshold if control == "candidate" else self.threshold_at(level)
        cand: list[float] = []
        champ: list[float] = []
        p = 1.0
        at = f" (level {level:.2g}, run-level error control)" if control == "run" else ""
        for n in range(1, self.last_pair + 1):
            measure_pair(sampler, rng, cand, champ)
            if n < stats.MIN_PAIRS:
                continue
            log_scale = log_scale_for(self.section, cand + champ)
            diffs = [improvement(self.direction, a, b, log_scale) for a, b in zip(champ, cand)]
            effect = threshold_on_scale(self.section.min_effect, log_scale, statistics.median(champ))
            p = stats.paired_p_value(diffs, effect)
            shown = _describe(statistics.median(champ), statistics.median(cand))
            if p < threshold:
                reason = f"better after {n} pairs (p={p:.3g} < {threshold:.3g}{at}): medians {shown}"
                return Judgement(Decision(Verdict.KEEP, reason), cand, champ, p, log_scale, level, control)
            if why := self.stop(n, diffs, effect):
                reason = f"not better after {n} pairs ({why}): medians {shown}"
                return Judgement(Decision(Verdict.DISCARD, reason), cand, champ, p, log_scale, level, control)
        shown = _describe(statistics.median(champ), statistics.median(cand))
        reason = f"not shown better in {self.last_pair} pairs (p={p:.3g}{at}): medians {shown}"
        log_scale = log_scale_for(self.section, cand + champ)
        return Judgement(Decision(Verdict.DISCARD, reason), cand, champ, p, log_scale, level, control)

    @property
    def last_pair(self) -> int:
        return self.section.max_pairs

    def stop(self, pairs: int, diffs: list[float], effect: float) -> str | None:
        """Why to stop without a keep after this look, or None to go on: futility at a mean
        difference at or below min_effect."""
        return "mean difference at or below min_effect" if statistics.fmean(diffs) <= effect else None


class PoweredSequential(SequentialPairs):
    """Auto's sequential test: interleaved pairs; keep when the p-value is below the threshold
    simulated for this very procedure at the test's level; stop for futility only when the data
    reject "the candidate is one sd of a paired difference above min_effect" (a beta-spending
    boundary: such a candidate is kept with probability >= 80%, while a no-better one stops in
    about 4 pairs). Past ``max_pairs`` a candidate goes on, up to ``max_pairs_cap``, only while its
    estimate is nearer that design effect than min_effect."""

    def threshold_at(self, level: float) -> float:
        return stats.powered_threshold(level, self.section.max_pairs, self.section.max_pairs_cap)

    @property
    def last_pair(self) -> int:
        return self.section.max_pairs_cap

    def stop(self, pairs: int, diffs: list[float], effect: float) -> str | None:
        mean = statistics.fmean(diffs) - effect
        sd = statistics.stdev(diffs)
        t = mean / (sd / math.sqrt(pairs)) if sd > 0 else (math.inf if mean > 0 else -math.inf)
        outcome = stats.powered_stop(pairs, t, self.section.max_pairs, self.section.max_pairs_cap, 0.0)
        reasons = {
            "futile": "futility: the data rule out an effect of one noise sd above min_effect",
            "straddles": f"after max_pairs {self.section.max_pairs}, nearer min_effect than one noise sd above it",
            "cap": f"max_pairs_cap {self.section.max_pairs_cap} reached",
        }
        return reasons.get(outcome or "")


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
    """The policy of ``verdict.mode``; ``deterministic``: a metric without spread (one measurement decides)."""
    if section.mode == "auto":
        return PoweredSequential(section, direction, deterministic)
    if section.mode == "single":
        return SingleMeasurement(direction, section.min_effect)
    if section.mode == "repeat":
        return RepeatedMeasurement(section, direction)
    if section.mode == "sequential":
        return SequentialPairs(section, direction, deterministic)
    raise ValueError(f"unknown verdict mode {section.mode!r}")  # pragma: no cover - config validates
