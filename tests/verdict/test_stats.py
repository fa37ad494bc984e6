"""The statistics behind the verdict: the group-sequential threshold, the paired test, noise and power."""

from __future__ import annotations

import math

import pytest

from ratchet.config import VerdictSection
from ratchet.verdict import improvement
from ratchet.verdict.stats import (
    Noise,
    confidence_interval,
    detectable_effect,
    estimate_noise,
    noise_floor,
    paired_p_value,
    pairs_needed,
    pocock_threshold,
)


def test_pocock_thresholds_by_simulation():
    assert pocock_threshold(0.05, 10) == pytest.approx(0.0135, abs=0.0007)
    assert pocock_threshold(0.01, 10) == pytest.approx(0.0021, abs=0.0004)
    assert pocock_threshold(0.05, 3) == pytest.approx(0.05, abs=0.002)  # one look: no correction


def test_paired_p_value():
    assert paired_p_value([1, 2, 3, 4], 0) == pytest.approx(0.01523, abs=1e-4)  # t = 3.87, 3 df
    assert paired_p_value([1, -1, 1, -1], 0) == pytest.approx(0.5)
    assert paired_p_value([2, 2, 2], 1) == 0.0 and paired_p_value([2, 2, 2], 2) == 1.0  # no spread


def test_one_improvement_for_both_directions_and_scales():
    assert improvement("minimize", 10.0, 8.0) == 2.0 and improvement("maximize", 10.0, 8.0) == -2.0
    assert improvement("minimize", 10.0, 5.0, log_scale=True) == pytest.approx(math.log(2))
    assert improvement("maximize", 10.0, 5.0, True) == pytest.approx(-math.log(2))


def test_noise_and_the_floor_each_mode_can_see_under_it():
    noise = estimate_noise([10.0, 11.0, 9.0, 10.0], [10.5, 10.0, 9.5, 10.5], log_scale=False)
    assert noise.pairs == 4 and noise.sd_pair == pytest.approx(noise.sd_single * math.sqrt(2))
    assert noise.mean == pytest.approx(10.0625) and noise.relative == pytest.approx(noise.sd_single / 10.0625)
    single = noise_floor(VerdictSection(mode="single"), noise)
    repeat = noise_floor(VerdictSection(mode="repeat", repeats=4), noise)
    assert single == pytest.approx(1.6449 * noise.sd_pair, rel=1e-3) and repeat == pytest.approx(single / 2)
    # sequential: the mean of max_pairs pairs at the stricter per-look threshold
    sequential = noise_floor(VerdictSection(mode="sequential", max_pairs=10), noise)
    assert repeat > sequential > single / math.sqrt(10)
    flat = Noise(pairs=3, sd_single=0.0, sd_pair=0.0, mean=5.0, log_scale=True)
    assert flat.deterministic and flat.relative == 0.0 and noise_floor(VerdictSection(), flat) == 0.0


def test_interval_and_power_planning():
    mean, low, high = confidence_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and low == pytest.approx(2 - 4.303 / math.sqrt(3), rel=1e-3) and high == pytest.approx(4 - low)
    assert confidence_interval([1.0]) == (1.0, -math.inf, math.inf)
    assert pairs_needed(1.0, 0.0, 0.05, 0.8) == 1 and pairs_needed(0.0, 1.0, 0.05, 0.8) is None
    needed = pairs_needed(1.0, 1.0, 0.05, 0.8)
    assert needed is not None and 6 <= needed <= 10  # normal approximation: (1.645 + 0.842)^2 = 6.2, plus t's tails
    assert pairs_needed(0.01, 1.0, 0.05, 0.8) is None  # more than 50
    assert detectable_effect(1.0, 0.05, 0.5, 4) == pytest.approx(1.6449 / 2, rel=1e-3) and detectable_effect(0.0, 0.05, 0.8, 4) == 0.0
