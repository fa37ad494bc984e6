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
# The powered design (mode auto): the effect it is built to keep, in sds of one paired difference
# above min_effect, and the chance it may spend on stopping such a candidate early for futility.
DESIGN_EFFECT = 1.0
FUTILITY_BETA = 0.05
# Simulated null sequences behind the powered design's keep threshold (in chunks, to bound memory).
_POWERED_SIMULATIONS = 400_000


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
    # The 95% interval of sd_single and its degrees of freedom (None: not estimated that way).
    sd_low: float | None = None
    sd_high: float | None = None
    df: int | None = None

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


def pooled_noise(groups: Sequence[Sequence[float]], log_scale: bool, level: float = 0.95) -> Noise:
    """The noise of one measurement from groups of measurements of one code version each (an A/A
    check's, the champion's samples of each comparison): the pooled within-group variance, with its
    chi-square interval. Groups never mix versions, so a champion that changed adds no spread."""
    values = [np.log(np.asarray(g, float)) if log_scale else np.asarray(g, float) for g in groups if len(g) > 1]
    df = sum(len(v) - 1 for v in values)
    squares = sum(float(((v - v.mean()) ** 2).sum()) for v in values)
    every = [float(x) for g in groups for x in g]
    mean = float(np.mean(every)) if every else math.nan
    if df == 0:
        return Noise(pairs=len(every) // 2, sd_single=0.0, sd_pair=0.0, mean=mean, log_scale=log_scale, df=0)
    sd = math.sqrt(squares / df)
    low = sd * math.sqrt(df / float(_scipy.chi2.ppf(0.5 + level / 2, df)))
    high = sd * math.sqrt(df / float(_scipy.chi2.ppf(0.5 - level / 2, df)))
    return Noise(
        pairs=len(every) // 2, sd_single=sd, sd_pair=sd * math.sqrt(2), mean=mean, log_scale=log_scale,
        sd_low=low, sd_high=high, df=df,
    )  # fmt: skip


def precise(noise: Noise, within: float = 0.3) -> bool:
    """Whether the noise estimate's 95% interval is within +-``within`` of it (always, with no spread)."""
    if noise.deterministic:
        return True
    if noise.sd_low is None or noise.sd_high is None:
        return False
    return noise.sd_high <= (1 + within) * noise.sd_single and noise.sd_low >= (1 - within) * noise.sd_single


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
    if section.mode == "auto":
        threshold = powered_threshold(section.alpha, section.max_pairs, section.max_pairs_cap)
        return float(_scipy.norm.isf(threshold) * noise.sd_pair / math.sqrt(section.max_pairs))
    threshold = pocock_threshold(section.alpha, section.max_pairs)
    return float(_scipy.norm.isf(threshold) * noise.sd_pair / math.sqrt(section.max_pairs))


# ---------------------------------------------------------------- the powered sequential design


@lru_cache(maxsize=256)
def keep_bound(pairs: int, threshold: float) -> float:
    """The t statistic a look at ``pairs`` pairs must exceed to keep: one-sided p below ``threshold``."""
    return float(_scipy.t.isf(threshold, pairs - 1))


@lru_cache(maxsize=256)
def futility_bound(pairs: int, beta: float = FUTILITY_BETA, effect: float = DESIGN_EFFECT) -> float:
    """The t statistic below which a look at ``pairs`` pairs stops for futility: the one-sided test of
    "the true difference is ``effect`` sds above min_effect" rejects at ``beta`` (noncentral t), so a
    candidate of that size is stopped early with probability about ``beta`` per look at most."""
    return float(_scipy.nct.ppf(beta, pairs - 1, math.sqrt(pairs) * effect))


def powered_stop(pairs: int, t: float, max_pairs: int, cap: int, threshold: float) -> str | None:
    """The powered design's rule at one look: "keep", "futile", "straddles" (past max_pairs, the
    estimate nearer min_effect than the design effect: stop), "cap", or None to go on.

    ``t`` is the t statistic of the mean difference minus min_effect (inf for an exact difference
    above it, -inf at or below). Keep wins over any stop at the same look.
    """
    if t > keep_bound(pairs, threshold):
        return "keep"
    if t < futility_bound(pairs):
        return "futile"
    if pairs >= cap:
        return "cap"
    if pairs >= max_pairs and t < math.sqrt(pairs) * DESIGN_EFFECT / 2:
        return "straddles"
    return None


def _powered_paths(effect: float, max_pairs: int, cap: int, sims: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """For ``sims`` simulated candidates ``effect`` sds above min_effect: the smallest keep p-value
    each reaches before the design's stops (which do not depend on the keep threshold), and the
    look it stops at when nothing is kept."""
    rng = np.random.default_rng(seed)
    smallest_all, stops_all = [], []
    for start in range(0, sims, 100_000):
        n = min(100_000, sims - start)
        d = rng.standard_normal((n, cap)) + effect
        csum, csq = np.cumsum(d, axis=1), np.cumsum(d * d, axis=1)
        alive = np.ones(n, dtype=bool)
        smallest = np.ones(n)
        stops = np.full(n, cap)
        for k in range(MIN_PAIRS, cap + 1):
            index = np.nonzero(alive)[0]
            mean = csum[index, k - 1] / k
            var = np.maximum((csq[index, k - 1] - k * mean * mean) / (k - 1), 1e-300)
            t = mean / np.sqrt(var / k)
            smallest[index] = np.minimum(smallest[index], _scipy.t.sf(t, k - 1))
            stop = t < futility_bound(k)
            if max_pairs <= k < cap:
                stop |= t < math.sqrt(k) * DESIGN_EFFECT / 2
            stops[index[stop]] = k
            alive[index[stop]] = False
        smallest_all.append(smallest)
        stops_all.append(stops)
    return np.concatenate(smallest_all), np.concatenate(stops_all)


@lru_cache(maxsize=8)
def _null_smallest(max_pairs: int, cap: int, seed: int) -> np.ndarray:
    smallest, _ = _powered_paths(0.0, max_pairs, cap, _POWERED_SIMULATIONS, seed)
    return np.sort(smallest)


def powered_threshold(alpha: float, max_pairs: int, cap: int, seed: int = 20261127) -> float:
    """The constant per-look p threshold of the powered design at level ``alpha``.

    Found by simulation of the exact procedure (looks from 3 pairs; keep when p < threshold; stop
    for futility against the design effect; past ``max_pairs`` only a candidate whose estimate is
    nearer the design effect goes on, up to ``cap``) at the least favourable null (true difference
    *at* min_effect): a sequence keeps iff the smallest p it reaches before the stops (which do not
    depend on the threshold) is below it, so one simulation serves every level. Where too few
    simulated nulls fall below ``alpha`` to read a quantile, Bonferroni over the looks (valid, stricter).
    """
    if cap < max_pairs or max_pairs < MIN_PAIRS:
        raise ValueError(f"need {MIN_PAIRS} <= max_pairs <= max_pairs_cap")
    smallest = _null_smallest(max_pairs, cap, seed)
    if alpha * len(smallest) < 50:
        return alpha / (cap - MIN_PAIRS + 1)
    return float(np.quantile(smallest, alpha))


def powered_keep_rate(effect: float, alpha: float, max_pairs: int, cap: int, sims: int = 20_000, seed: int = 1) -> tuple[float, float]:
    """The powered design's keep rate and mean pairs for a candidate ``effect`` sds above min_effect
    (simulated; what the docs and the tests quote)."""
    threshold = powered_threshold(alpha, max_pairs, cap)
    rng = np.random.default_rng(seed)
    d = rng.standard_normal((sims, cap)) + effect
    csum, csq = np.cumsum(d, axis=1), np.cumsum(d * d, axis=1)
    kept, pairs = 0, 0
    for row in range(sims):
        for k in range(MIN_PAIRS, cap + 1):
            mean = csum[row, k - 1] / k
            var = max((csq[row, k - 1] - k * mean * mean) / (k - 1), 1e-300)
            outcome = powered_stop(k, mean / math.sqrt(var / k), max_pairs, cap, threshold)
            if outcome is not None:
                kept += outcome == "keep"
                pairs += k
                break
    return kept / sims, pairs / sims
