"""Error control across a run: the level each candidate's test is run at.

``candidate``: every test at ``alpha`` (a 5% false-keep rate per no-better candidate; with most
candidates null, a fifth or more of a run's keeps can be false). ``run``: e-LOND (Xu & Ramdas,
2024) over the run's tests, so that the expected share of false keeps among all keeps (the FDR)
is at most ``fdr``:

    level of test t = fdr * gamma(t) * (keeps before t + 1)

Each test is a sequential test run at exactly that level (its threshold is simulated for it), so
``e = 1{kept} / level`` is an e-value: its mean is at most 1 for a no-better candidate given the
run so far, because every test draws fresh measurements. e-LOND keeps when ``e >= 1 / level``,
i.e. when the test keeps, and bounds the FDR for e-values under any dependence between tests
(later champions depend on earlier keeps). Counting only keeps that survived the guards as
discoveries makes levels smaller, never larger: still valid.

``gamma`` spreads the run's error budget over its tests: 90% evenly over a horizon (the run's
iteration budget, or 100), the rest over any tests beyond it (H / (t (t - 1)) sums to 1 over t > H).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_HORIZON = 100
_WITHIN_HORIZON = 0.9


@dataclass(frozen=True)
class Past:
    """What run-level error control needs of the run so far: the loop counts them from its history."""

    tests: int  # tests made before this one (each judgement of a candidate's metric is one)
    keeps: int  # keeps among them
    horizon: int = DEFAULT_HORIZON  # the run's planned number of tests (its iteration budget)


def gamma(test: int, horizon: int) -> float:
    """The share of the run's error budget test number ``test`` (from 1) gets; sums to 1 over all tests."""
    if test < 1 or horizon < 1:
        raise ValueError("tests and horizons count from 1")
    if test <= horizon:
        return _WITHIN_HORIZON / horizon
    return (1 - _WITHIN_HORIZON) * horizon / (test * (test - 1))


def e_lond_level(fdr: float, past: Past) -> float:
    """The level e-LOND sets for the next test, from the tests and keeps before it."""
    return fdr * gamma(past.tests + 1, past.horizon) * (past.keeps + 1)


def e_value(kept: bool, level: float) -> float:
    """The e-value of a sequential test run at ``level``: 1/level when it kept, else 0."""
    return 1.0 / level if kept else 0.0
