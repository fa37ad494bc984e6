"""The one meaning of ``min_effect``: on which scale a difference is taken, and how big it must be.

A *difference* is "how much better the candidate is than the champion" (positive = better): in the
metric's units, or on a log scale as a log ratio. A relative ``min_effect`` ("1%") on positive
values is read on the log scale (ratios are what noise of a time or a throughput scales with);
``[verdict] scale`` forces one. Policies, calibration, the confirmation race and ``ratchet
calibrate`` all take scale and threshold from here, so a keep and its noise warning agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ratchet.config import Effect, VerdictSection
from ratchet.verdict import stats
from ratchet.verdict.stats import Noise
from ratchet.verdict.stats import improvement as improvement


def log_scale_for(section: VerdictSection, values: Sequence[float]) -> bool:
    """Whether differences of these values are taken on the log scale: never for a value at or
    below zero (no log), else as ``scale`` says; ``auto``: for a relative ``min_effect``."""
    if section.scale == "absolute" or not all(value > 0 for value in values):
        return False
    return section.scale == "log" or section.min_effect.relative


def threshold_on_scale(min_effect: Effect, log_scale: bool, reference: float) -> float:
    """``min_effect`` in the units of the differences, at ``reference`` (the champion): its amount,
    or on the log scale the log ratio of that amount to the reference (log1p of the fraction)."""
    if not log_scale:
        return min_effect.amount(reference)
    if min_effect.relative:
        return math.log1p(min_effect.value / 100.0)
    # An absolute amount on a forced log scale: the ratio it is at the champion (values there are > 0).
    return math.log1p(min_effect.value / reference) if reference > 0 else 0.0


def setting_on_scale(difference: float, log_scale: bool) -> Effect:
    """The inverse: a difference as the ``min_effect`` that means it (a percentage on the log scale)."""
    if log_scale:
        return Effect(value=math.expm1(difference) * 100.0, relative=True)
    return Effect(value=difference, relative=False)


def relative_change(champion: float, candidate: float) -> float | None:
    """(candidate - champion) / |champion|, or None at zero."""
    return None if champion == 0 else (candidate - champion) / abs(champion)


def relative_gain(direction: str, difference: float) -> float:
    """A log-scale difference as a fraction of the champion, positive when better: 1 - c/b when
    minimizing, c/b - 1 when maximizing (both grow with the difference, so intervals map over)."""
    return -math.expm1(-difference) if direction == "minimize" else math.expm1(difference)


def recommended_min_effect(section: VerdictSection, noise: Noise, power: float, level: float | None = None) -> float:
    """The smallest difference the sequential test (at its per-look threshold, over ``max_pairs``)
    keeps with ``power``: what ``ratchet calibrate`` recommends, on the noise's scale. ``level``:
    the test's level when not ``alpha`` (run-level error control)."""
    level = section.alpha if level is None else level
    if section.mode == "auto":
        threshold = stats.powered_threshold(level, section.max_pairs, section.max_pairs_cap)
    else:
        threshold = stats.pocock_threshold(level, section.max_pairs)
    return stats.detectable_effect(noise.sd_pair, threshold, power, section.max_pairs)


def detectable_warning(section: VerdictSection, noise: Noise, metric_name: str, level: float | None = None) -> str | None:
    """Mode auto: when ``min_effect`` is below what the run can resolve, the effect it detects at 80%
    power within ``max_pairs``, in the metric's units and in %; None when min_effect is above it."""
    if noise.deterministic:
        return None
    detectable = recommended_min_effect(section, noise, 0.8, level)
    if threshold_on_scale(section.min_effect, noise.log_scale, noise.mean) >= detectable:
        return None
    if noise.log_scale:
        fraction = math.expm1(detectable)
        units = fraction * noise.mean
    else:
        units = detectable
        fraction = detectable / abs(noise.mean) if noise.mean else math.nan
    shown = f"{units:.4g} {metric_name} ({fraction:.2%})" if math.isfinite(fraction) else f"{units:.4g} {metric_name}"
    at = f" at level {level:.2g}" if level is not None and level != section.alpha else ""
    return (
        f"min_effect {section.min_effect} is below what this run can resolve: within max_pairs {section.max_pairs} it "
        f"detects an improvement of {shown} with 80% power{at}; smaller real ones are mostly discarded "
        f"(up to max_pairs_cap {section.max_pairs_cap} pairs are spent on a candidate still in between)"
    )


def noise_warning(section: VerdictSection, noise: Noise, metric_name: str) -> str | None:
    """The warning when ``min_effect`` is below what the verdict mode can tell from this noise, or None.

    The threshold is the one a policy would use (on the noise's scale, at the measured mean).
    """
    if noise.deterministic:
        return None
    if section.mode == "auto":
        return detectable_warning(section, noise, metric_name)
    floor = stats.noise_floor(section, noise)
    if threshold_on_scale(section.min_effect, noise.log_scale, noise.mean) >= floor:
        return None
    scale = "log-ratio" if noise.log_scale else metric_name
    what = {"single": "one measurement each", "repeat": f"medians of {section.repeats}", "sequential": f"up to {section.max_pairs} pairs"}
    advice = (
        "; `sequential` mode keeps its false-keep rate at alpha anyway"
        if section.mode == "sequential"
        else "; expect noise to be kept as improvements — raise min_effect or use mode = \"sequential\""
    )
    return f"min_effect {section.min_effect} is below the noise floor ({floor:.4g} on the {scale} scale) of {what[section.mode]}{advice}"
