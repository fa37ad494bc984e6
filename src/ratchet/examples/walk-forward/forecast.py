"""The example's scope: the forecasting formula. Change anything here.

bench/walk.py calls forecast(history, horizon) once per walk-forward window, with the log
prices of every day before the window (a read-only array) and nothing else, and scores the
horizon days that follow. The literals with a `# ratchet:` comment are the knobs the optuna
proposer tunes; the starting formula is the plain power law, the reference to beat.
"""

import numpy as np

fit_days = 0  # ratchet: int 0..2000
anchor = 0.0  # ratchet: 0..1 step 0.05
persistence = 0.9  # ratchet: 0.8..1 step 0.005


def forecast(history: np.ndarray, horizon: int) -> np.ndarray:
    """Log prices for the ``horizon`` days after ``history`` (days 0 .. len(history) - 1)."""
    days = np.arange(1, len(history) + 1, dtype=float)
    recent = slice(-fit_days, None) if fit_days else slice(None)
    # The power law: log price linear in log time, fitted to the last fit_days (0: all of them).
    slope, intercept = np.polyfit(np.log(days[recent]), history[recent], 1)
    ahead = np.arange(len(history) + 1, len(history) + horizon + 1, dtype=float)
    trend = intercept + slope * np.log(ahead)
    # Where the price stands against the trend today, decaying by `persistence` per day.
    today = history[-1] - (intercept + slope * np.log(days[-1]))
    return trend + anchor * today * persistence ** np.arange(1, horizon + 1)
