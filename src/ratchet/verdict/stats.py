"""The statistics behind the verdict: paired differences, a group-sequential test, noise, power.

Pure functions of numbers; no I/O. Conventions: a *difference* is "how much better the candidate
is than the champion" (positive = better), on a log scale for ratio metrics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ratchet.config import VerdictSection


class _LazyScipy:
    """scipy.stats costs about a second to import: pay it only when a statistic is needed."""

    def __getattr__(self, name: str) -> Any:  # scipy ships no type hints
        from scipy import stats  # type: ignore[import-untyped]

        return getattr(stats, name)


_scipy = _LazyScipy()

# Sequential looks start at this many pairs: with fewer, a t-test has almost no power at the
# strict per-look thresholds a sequence of looks needs.
MIN_PAIRS = 3
_SIMULATIONS = 200_000


def improvement(direction: str, champion: float, candidate: float, log_scale: bool = False) -> float:
    """How much better the candidate is (positive = better): one paired difference, in the metric's
    units or, on a log scale, as a log ratio. The one definition: policies, guards, holdout use it."""
    if log_scale:
        champion, candidate = math.log(champion), math.log(candidate)
    return champion - candidate if direction == "minimize" else candidate - champion


def paired_p_value(differences: Sequence[float], min_effect: float) -> float:
    """One-sided paired t-test of H0: mean difference <= min_effect against H1: mean > min_effect."""
    d = np.asarray(differences, dtype=float)
    n = len(d)
    if n < 2:
        return 1.0
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        # No spread at all (a deterministic metric): the difference is exact.
        return 0.0 if mean > min_effect else 1.0
    t = (mean - min_effect) / (sd / math.sqrt(n))
    return float(_scipy.t.sf(t, n - 1))


@lru_cache(maxsize=64)
def pocock_threshold(alpha: float, max_pairs: int, min_pairs: int = MIN_PAIRS, seed: int = 20261127) -> float:
    """The constant per-look p threshold for looks at ``min_pairs..max_pairs`` pairs.

    Found by simulation of the exact procedure the verdict runs (paired t-test at each look,
    stop for futility as soon as the mean difference is at or below ``min_effect``) with the
    true mean difference *at* ``min_effect`` (the least favourable null), so that the whole
    sequence keeps such a candidate with probability ``alpha``. Deterministic: fixed seed.
    """
    if max_pairs < min_pairs:
        raise ValueError(f"max_pairs must be at least {min_pairs}")
    rng = np.random.default_rng(seed)
    d = rng.standard_normal((_SIMULATIONS, max_pairs))
    # For each simulated sequence, the smallest p it reaches before futility stops it.
    alive = np.ones(_SIMULATIONS, dtype=bool)
    smallest = np.ones(_SIMULATIONS)
    csum = np.cumsum(d, axis=1)
    csq = np.cumsum(d * d, axis=1)
    for n in range(min_pairs, max_pairs + 1):
        mean = csum[:, n - 1] / n
        var = np.maximum((csq[:, n - 1] - n * mean * mean) / (n - 1), 1e-300)
        t = mean / np.sqrt(var / n)
        p = _scipy.t.sf(t, n - 1)
        smallest = np.where(alive, np.minimum(smallest, p), smallest)
        alive &= mean > 0.0
    # A sequence keeps when its smallest p (over the looks it reached) is below the threshold
    # ... except that a look's p only counts if it came before futility stopped it, which the
    # `alive` bookkeeping above ensures (the futility check follows the test at each look).
    return float(np.quantile(smallest, alpha))


@dataclass(frozen=True)
class Noise:
    """What an A/A measurement (the champion against itself) says about the metric's noise."""

    pairs: int
    sd_single: float  # standard deviation of one measurement
    sd_pair: float  # standard deviation of one paired difference (= sd_single * sqrt(2))
    mean: float  # mean measured value
    log_scale: bool

    @property
    def deterministic(self) -> bool:
        return self.sd_pair == 0.0

    @property
    def relative(self) -> float | None:
        """The single-measurement noise as a fraction of the metric (coefficient of variation)."""
        if self.log_scale:
            return math.expm1(self.sd_single)
        return None if self.mean == 0 else self.sd_single / abs(self.mean)


def estimate_noise(first: Sequence[float], second: Sequence[float], log_scale: bool) -> Noise:
    a, b = np.asarray(first, float), np.asarray(second, float)
    if log_scale:
        a, b = np.log(a), np.log(b)
    d = a - b
    sd_pair = float(d.std(ddof=1)) if len(d) > 1 else 0.0
    return Noise(
        pairs=len(d),
        sd_single=sd_pair / math.sqrt(2),
        sd_pair=sd_pair,
        mean=float(np.mean(np.concatenate([np.asarray(first, float), np.asarray(second, float)]))),
        log_scale=log_scale,
    )


def confidence_interval(differences: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean paired difference and its two-sided t confidence interval."""
    d = np.asarray(differences, float)
    n = len(d)
    mean = float(d.mean())
    if n < 2:
        return mean, -math.inf, math.inf
    half = float(_scipy.t.ppf(0.5 + level / 2, n - 1) * d.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half


def pairs_needed(effect: float, sd_pair: float, alpha: float, power: float, max_pairs: int = 50) -> int | None:
    """Pairs for a fixed-size one-sided paired t-test to detect ``effect`` with ``power``.

    Uses the noncentral t distribution. None when even ``max_pairs`` pairs are not enough.
    """
    if sd_pair == 0:
        return 1
    if effect <= 0:
        return None
    for n in range(2, max_pairs + 1):
        critical = _scipy.t.ppf(1 - alpha, n - 1)
        achieved = _scipy.nct.sf(critical, n - 1, effect / (sd_pair / math.sqrt(n)))
        if achieved >= power:
            return n
    return None


def detectable_effect(sd_pair: float, alpha: float, power: float, pairs: int) -> float:
    """The smallest true difference a fixed ``pairs``-pair test detects with ``power`` (normal approx.)."""
    if sd_pair == 0:
        return 0.0
    z = _scipy.norm.ppf(1 - alpha) + _scipy.norm.ppf(power)
    return float(z * sd_pair / math.sqrt(pairs))


def noise_floor(section: VerdictSection, noise: Noise) -> float:
    """The smallest true difference a verdict mode can tell from noise (95% one-sided, 50% power),
    on the noise's scale.

    single: one candidate measurement against one champion measurement; repeat: medians of n
    (taken as means: a slight flattery); sequential: the mean of max_pairs pairs at the look
    threshold.
    """
    if section.mode == "single":
        return float(_scipy.norm.ppf(0.95) * noise.sd_pair)
    if section.mode == "repeat":
        return float(_scipy.norm.ppf(0.95) * noise.sd_pair / math.sqrt(section.repeats))
    threshold = pocock_threshold(section.alpha, section.max_pairs)
    return float(_scipy.norm.isf(threshold) * noise.sd_pair / math.sqrt(section.max_pairs))
