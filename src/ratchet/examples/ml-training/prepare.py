"""The frozen half of the example, as in autoresearch: the data, the time budget, the model format.

ratchet.toml lists this file (and bench/) under [scope].harness: a candidate that changes it is
`tampered`. train.py imports it for the training split, the budget and save_model(); the
trusted scorer (bench/evaluate.py) imports it for the validation and holdout splits and
forward(). Nothing here runs the candidate's code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

# Karpathy's 5-minute budget, scaled down: train.py trains for this many seconds of CPU time
# (process time, not wall clock, so that other work on a shared machine costs steps less).
# bench/run.py stops a train.py that takes much more.
TIME_BUDGET = 0.3
CLASSES = 3
SEED = 1234
SPLITS = {"train": 600, "val": 300, "holdout": 300}
LABEL_NOISE = 0.1  # a tenth of the labels are drawn at random: no model gets a val_loss near 0
MODEL_FILE = "out/model.npz"
ACTIVATIONS = ("relu", "tanh")


def split(name: str) -> tuple[np.ndarray, np.ndarray]:
    """One split of a noisy three-armed spiral: inputs (n, 2) and class labels (n,).

    train.py may read "train" only; "val" is the metric's, "holdout" the holdout's.
    """
    if name not in SPLITS:
        raise ValueError(f"no split named {name!r} (splits: {', '.join(SPLITS)})")
    rng = np.random.default_rng(SEED)
    total = sum(SPLITS.values())
    labels = rng.integers(0, CLASSES, total)
    t = rng.uniform(0.05, 1.0, total)
    angle = labels * (2 * np.pi / CLASSES) + 7.0 * t + 0.2 * rng.standard_normal(total)
    x = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1)
    noisy = rng.uniform(size=total) < LABEL_NOISE
    labels = np.where(noisy, rng.integers(0, CLASSES, total), labels)
    start = 0
    for other, size in SPLITS.items():
        if other == name:
            return x[start : start + size], labels[start : start + size]
        start += size
    raise AssertionError("unreachable")


def save_model(weights: list[np.ndarray], biases: list[np.ndarray], activation: str, path: str = MODEL_FILE) -> None:
    """Write an MLP as plain arrays (no pickle): the one model format the scorer reads."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, not {activation!r}")
    arrays: dict[str, Any] = {"activation": np.array(activation)}  # Any: numpy's stubs type **kwds oddly
    arrays |= {f"w{i}": np.asarray(w, dtype=np.float64) for i, w in enumerate(weights)}
    arrays |= {f"b{i}": np.asarray(b, dtype=np.float64) for i, b in enumerate(biases)}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


def load_model(path: Path) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    """Read save_model()'s file back, checking that it is an MLP from 2 inputs to CLASSES logits."""
    with np.load(path, allow_pickle=False) as data:  # no pickle: loading runs no candidate code
        activation = str(data["activation"])
        layers = sum(1 for key in data.files if key.startswith("w"))
        weights = [data[f"w{i}"] for i in range(layers)]
        biases = [data[f"b{i}"] for i in range(layers)]
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}")
    width = 2
    for w, b in zip(weights, biases):
        if w.ndim != 2 or w.shape[0] != width or b.shape != (w.shape[1],):
            raise ValueError(f"layer shapes do not chain: {w.shape} after width {width}")
        width = w.shape[1]
    if not layers or width != CLASSES:
        raise ValueError(f"the model must end in {CLASSES} logits")
    return weights, biases, activation


def forward(weights: list[np.ndarray], biases: list[np.ndarray], activation: str, x: np.ndarray) -> np.ndarray:
    """The logits of the MLP for inputs ``x``."""
    h = x
    for i, (w, b) in enumerate(zip(weights, biases)):
        h = h @ w + b
        if i < len(weights) - 1:
            h = np.tanh(h) if activation == "tanh" else np.maximum(h, 0.0)
    return h


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy in nats (the validation loss)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())
