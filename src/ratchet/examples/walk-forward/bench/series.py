"""The frozen data: a synthetic, price-like series from a known process, and the walk-forward layout.

log price(t) = A + B * log(t + T0)              a power law in time (the BTC "power law")
             + CYCLE * sin(2 pi t / PERIOD)     a slow cycle
             + c(t),  c(t) = PHI * c(t-1) + SIGMA * e(t)   deviations that persist for months

Because the process is known, so is the best forecast any formula can make from the past alone:
its conditional mean (oracle_forecast). bench/score.py uses it to detect look-ahead.
"""

from __future__ import annotations

import numpy as np

SEED = 7
DAYS = 2480
A, B, T0 = -12.0, 2.6, 30.0
CYCLE, PERIOD = 0.35, 420.0
PHI, SIGMA = 0.99, 0.045

HORIZON = 30  # each window forecasts the next 30 days
# Forecast origins: day 400, 450, ..., 1450. The last three windows (the final 130 days of the
# series) are the holdout, never shown to a proposer; the others are the metric's. One window
# alone would be too noisy a holdout: a better formula misses one month by more quite often.
CUTOFFS = tuple(range(400, DAYS - HORIZON + 1, 50))
SCORED = CUTOFFS[:-6]
HOLDOUT = CUTOFFS[-6:]


def _trend(days: np.ndarray) -> np.ndarray:
    return A + B * np.log(days + T0) + CYCLE * np.sin(2 * np.pi * days / PERIOD)


def log_prices() -> np.ndarray:
    """The whole series: DAYS daily log prices."""
    rng = np.random.default_rng(SEED)
    shocks = SIGMA * rng.standard_normal(DAYS)
    deviation = np.empty(DAYS)
    level = SIGMA / np.sqrt(1 - PHI**2) * rng.standard_normal()  # start in the stationary state
    for t in range(DAYS):
        level = PHI * level + shocks[t]
        deviation[t] = level
    return _trend(np.arange(DAYS, dtype=float)) + deviation


def oracle_forecast(history: np.ndarray, horizon: int) -> np.ndarray:
    """The conditional mean of the next ``horizon`` days given ``history`` (days 0..t-1): the
    process's own parameters, no estimation. No formula that sees only the past does better in
    expectation."""
    t = len(history)
    last_deviation = history[-1] - _trend(np.array([t - 1.0]))[0]
    ahead = np.arange(1, horizon + 1, dtype=float)
    return _trend(t - 1 + ahead) + PHI**ahead * last_deviation


def shock_covariance(horizon: int) -> np.ndarray:
    """Covariance of what the oracle cannot know: the next ``horizon`` days minus its forecast.

    Day j ahead carries the shocks of days 1..j, each decayed by PHI per day since; they are
    Gaussian, so given the past the oracle's errors are N(0, this matrix) exactly.
    """
    ahead = np.arange(1, horizon + 1)
    shared = np.minimum.outer(ahead, ahead)  # shocks days j and l have in common
    # sum over i = 1..min(j, l) of PHI**(j - i) * PHI**(l - i), in closed form
    decay = PHI ** np.abs(np.subtract.outer(ahead, ahead)) * (1 - PHI ** (2 * shared)) / (1 - PHI**2)
    return SIGMA**2 * decay
