"""The policies on numbers alone: error rates by simulation, no processes."""

from __future__ import annotations

import random

from ratchet.config import Effect, VerdictSection
from ratchet.experiment import Verdict
from ratchet.verdict import policy_for
from ratchet.verdict.policies import RepeatedMeasurement, SampleSource, SequentialPairs, SingleMeasurement


class Synthetic:
    """Numbers from a known distribution, to check the policy's error rates (no processes)."""

    def __init__(self, rng: random.Random, effect: float, sd_single: float) -> None:
        self.rng, self.effect, self.sd = rng, effect, sd_single
        self.stored_champion = 100.0

    def candidate(self) -> float:
        return 100.0 - self.effect + self.rng.gauss(0, self.sd)

    def champion(self) -> float:
        return 100.0 + self.rng.gauss(0, self.sd)


def test_sequential_policy_error_rates_by_simulation():
    policy = SequentialPairs(VerdictSection(mode="sequential"), "minimize")
    rng = random.Random(7)
    sd_single = 2 ** -0.5  # one paired difference has sd 1
    null = [policy.judge(Synthetic(rng, 0.0, sd_single), rng).decision.verdict for _ in range(3000)]
    false_keeps = null.count(Verdict.KEEP) / len(null)
    assert false_keeps <= 0.06  # alpha = 0.05, with room for simulation noise (sd 0.004)
    real = [policy.judge(Synthetic(rng, 1.0, sd_single), rng).decision.verdict for _ in range(600)]
    assert real.count(Verdict.KEEP) / len(real) >= 0.7
    single = SingleMeasurement("minimize", Effect(value=0, relative=False))
    naive = [single.would_keep(100 + rng.gauss(0, sd_single), 100 + rng.gauss(0, sd_single)).verdict for _ in range(3000)]
    assert 0.45 < naive.count(Verdict.KEEP) / len(naive) < 0.55  # keep-if-better keeps noise half the time


def test_a_relative_min_effect_is_judged_on_the_log_scale():
    source: SampleSource = Synthetic(random.Random(1), 3.0, 0.0)  # exactly 3% better, no noise
    rng = random.Random(0)
    for percent, verdict in ((2.0, Verdict.KEEP), (4.0, Verdict.DISCARD)):
        section = VerdictSection(mode="sequential", min_effect=Effect(value=percent, relative=True))
        judgement = SequentialPairs(section, "minimize").judge(source, rng)
        assert judgement.decision.verdict is verdict and judgement.log_scale
        assert judgement.to_json()["scale"] == "log"
    absolute = SequentialPairs(VerdictSection(mode="sequential", min_effect=Effect(value=2.0, relative=False)), "minimize")
    judged = absolute.judge(source, rng)
    assert judged.decision.verdict is Verdict.KEEP and not judged.log_scale


def test_single_and_repeat_reasons_and_policy_for():
    single = SingleMeasurement("maximize", Effect(value=1.0, relative=True))
    assert single.would_keep(100.0, 102.0).reason == "better: 102 vs champion 100 (+2.00%)"
    assert single.would_keep(100.0, 100.5).reason.startswith("better by less than min_effect 1%")
    assert single.would_keep(100.0, 99.0).verdict is Verdict.DISCARD
    repeat = policy_for(VerdictSection(mode="repeat", repeats=3), "minimize")
    assert isinstance(repeat, RepeatedMeasurement) and repeat.remeasures_champion
    judged = repeat.judge(Synthetic(random.Random(2), 5.0, 0.0), random.Random(0))
    assert judged.decision.verdict is Verdict.KEEP and judged.decision.reason.startswith("medians of 3: better")
    assert len(judged.candidate) == len(judged.champion) == 3 and judged.candidate_value == 95.0
    assert isinstance(policy_for(VerdictSection(mode="single"), "minimize"), SingleMeasurement)
