"""The one meaning of min_effect: its scale, its threshold, and the warning when noise hides it."""

from __future__ import annotations

import math

import pytest

from ratchet.config import Effect, VerdictSection
from ratchet.verdict import (
    log_scale_for,
    noise_warning,
    recommended_min_effect,
    relative_gain,
    setting_on_scale,
    threshold_on_scale,
)
from ratchet.verdict.stats import Noise, noise_floor

PERCENT = Effect(value=1.0, relative=True)
UNITS = Effect(value=0.5, relative=False)


def test_the_scale_follows_min_effect_and_never_logs_a_non_positive_value():
    assert log_scale_for(VerdictSection(min_effect=PERCENT), [1.0, 2.0])  # auto: a relative min_effect
    assert not log_scale_for(VerdictSection(min_effect=UNITS), [1.0, 2.0])  # auto: absolute
    assert not log_scale_for(VerdictSection(min_effect=PERCENT), [1.0, 0.0])  # no log of zero
    assert log_scale_for(VerdictSection(min_effect=UNITS, scale="log"), [1.0, 2.0])
    assert not log_scale_for(VerdictSection(min_effect=UNITS, scale="log"), [1.0, -2.0])  # forced, yet no log of a negative
    assert not log_scale_for(VerdictSection(min_effect=PERCENT, scale="absolute"), [1.0, 2.0])


def test_the_threshold_in_the_units_of_the_differences():
    assert threshold_on_scale(PERCENT, True, 50.0) == pytest.approx(math.log(1.01))
    assert threshold_on_scale(PERCENT, False, 50.0) == pytest.approx(0.5)
    assert threshold_on_scale(Effect(value=1.0, relative=True), False, -50.0) == pytest.approx(0.5)  # of |champion|
    assert threshold_on_scale(UNITS, False, 50.0) == 0.5
    assert threshold_on_scale(UNITS, True, 50.0) == pytest.approx(math.log(1.01))  # forced log: the ratio at the champion
    percent = setting_on_scale(math.log(1.19), True)
    assert percent.relative and percent.value == pytest.approx(19.0)
    assert setting_on_scale(0.25, False) == Effect(value=0.25, relative=False)
    # Round trip: the recommendation written as a setting means the same threshold again.
    assert threshold_on_scale(setting_on_scale(0.03, True), True, 7.0) == pytest.approx(0.03)


def test_a_log_difference_as_a_gain():
    assert relative_gain("minimize", math.log(2)) == pytest.approx(0.5)  # half the time
    assert relative_gain("maximize", math.log(2)) == pytest.approx(1.0)  # twice the throughput
    assert relative_gain("minimize", 0.0) == 0.0


def noise(sd_pair: float, mean: float = 100.0, log_scale: bool = False) -> Noise:
    return Noise(pairs=5, sd_single=sd_pair / math.sqrt(2), sd_pair=sd_pair, mean=mean, log_scale=log_scale)


def test_the_warning_when_min_effect_is_below_the_noise_floor():
    single = VerdictSection(mode="single", min_effect=UNITS)
    assert noise_floor(single, noise(1.0)) > 0.5
    warning = noise_warning(single, noise(1.0), "seconds")
    assert warning is not None and warning.startswith("min_effect 0.5 is below the noise floor (1.645 on the seconds scale)")
    assert "of one measurement each" in warning and "raise min_effect or use mode = \"sequential\"" in warning
    assert noise_warning(single, noise(0.1), "seconds") is None  # 0.5 is above a floor of 0.16
    assert noise_warning(single, noise(0.0), "seconds") is None  # deterministic: one measurement decides
    relative = VerdictSection(mode="sequential", min_effect=PERCENT)
    flagged = noise_warning(relative, noise(0.05, log_scale=True), "seconds")
    assert flagged is not None and "log-ratio scale" in flagged and "up to 10 pairs" in flagged and "alpha anyway" in flagged
    # The threshold compared is the policy's: a relative min_effect at the measured mean.
    assert noise_warning(VerdictSection(mode="repeat", min_effect=PERCENT), noise(0.5, mean=1000.0), "s") is None
    repeated = noise_warning(VerdictSection(mode="repeat", min_effect=PERCENT), noise(0.5, mean=10.0), "s")
    assert repeated is not None and "medians of 5" in repeated


def test_the_recommendation_is_what_sequential_keeps_with_the_power_asked():
    section = VerdictSection(mode="sequential", max_pairs=10)
    low, high = recommended_min_effect(section, noise(1.0), 0.5), recommended_min_effect(section, noise(1.0), 0.9)
    assert 0 < low < high and low == pytest.approx(noise_floor(section, noise(1.0)), rel=0.02)
    assert recommended_min_effect(section, noise(0.0), 0.8) == 0.0
