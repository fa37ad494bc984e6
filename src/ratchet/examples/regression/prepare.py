"""The demo's frozen harness: the data, and the one way val_loss is computed.

ratchet.toml lists this file under [scope].harness, so a candidate may not change it, and ratchet
checks after every measurement that it did not. train.py imports it: whatever train.py does, the
number it prints is the mean squared error on the same held-out points.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

SEED = 2024
N_TRAIN = 160
N_VAL = 160
NOISE = 0.1  # so the best possible val_loss is about NOISE**2 = 0.01


def _truth(x: np.ndarray) -> np.ndarray:
    return np.sin(3.0 * x) + 0.3 * x**2


def load_data() -> tuple[np.ndarray, np.ndarray]:
    """The training set: inputs of shape (N_TRAIN, 1), noisy targets of shape (N_TRAIN,)."""
    x_train, y_train, _, _ = _make()
    return x_train, y_train


def evaluate(predict: Callable[[np.ndarray], np.ndarray]) -> float:
    """Mean squared error of ``predict`` on the validation set, which train.py never sees."""
    _, _, x_val, y_val = _make()
    predictions = np.asarray(predict(x_val), dtype=float).reshape(-1)
    return float(np.mean((predictions - y_val) ** 2))


def _make() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    x = rng.uniform(-2.0, 2.0, size=(N_TRAIN + N_VAL, 1))
    y = _truth(x[:, 0]) + NOISE * rng.standard_normal(N_TRAIN + N_VAL)
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]
