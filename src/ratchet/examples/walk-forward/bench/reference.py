"""The frozen reference forecast the score compares with: a power law fitted to all history.

It is the formula forecast.py starts from, kept here so that "improvement over the reference"
means the same thing for every candidate.
"""

from __future__ import annotations

import numpy as np


def forecast(history: np.ndarray, horizon: int) -> np.ndarray:
    days = np.arange(1, len(history) + 1, dtype=float)
    slope, intercept = np.polyfit(np.log(days), history, 1)
    ahead = np.arange(len(history) + 1, len(history) + horizon + 1, dtype=float)
    return intercept + slope * np.log(ahead)
