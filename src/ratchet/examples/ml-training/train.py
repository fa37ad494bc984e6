"""The example's scope, as in autoresearch: the training script. Change anything here.

It trains a small MLP on prepare.py's training split for prepare.TIME_BUDGET seconds of CPU time
and saves it with prepare.save_model(); the trusted scorer (bench/evaluate.py) computes the
validation loss from that file. The literals with a `# ratchet:` comment are the knobs the
optuna proposer tunes; their starting values are poor on purpose.
"""

import time

import numpy as np
import prepare

learning_rate = 0.0003  # ratchet: log 1e-4..3e-1
width = 8  # ratchet: int log 4..64
depth = 1  # ratchet: int 1..3
batch_size = 32  # ratchet: int log 8..600
weight_decay = 0.0001  # ratchet: log 1e-6..1e-1
activation = "relu"  # ratchet: choice relu, tanh

x, y = prepare.split("train")
rng = np.random.default_rng(0)
sizes = [x.shape[1]] + [width] * depth + [prepare.CLASSES]
weights = [rng.standard_normal((a, b)) * np.sqrt(2.0 / a) for a, b in zip(sizes, sizes[1:])]
biases = [np.zeros(b) for b in sizes[1:]]
params = weights + biases
moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
beta1, beta2 = 0.9, 0.999


def gradients(xb: np.ndarray, yb: np.ndarray) -> list[np.ndarray]:
    """Backpropagation of the mean cross-entropy through the MLP."""
    hidden = [xb]
    for w, b in zip(weights[:-1], biases[:-1]):
        z = hidden[-1] @ w + b
        hidden.append(np.tanh(z) if activation == "tanh" else np.maximum(z, 0.0))
    logits = hidden[-1] @ weights[-1] + biases[-1]
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    delta = probs
    delta[np.arange(len(yb)), yb] -= 1.0
    delta /= len(yb)
    grad_w, grad_b = [], []
    for i in range(len(weights) - 1, -1, -1):
        grad_w.append(hidden[i].T @ delta)
        grad_b.append(delta.sum(axis=0))
        if i:
            back = delta @ weights[i].T
            delta = back * (1.0 - hidden[i] ** 2) if activation == "tanh" else back * (hidden[i] > 0)
    return grad_w[::-1] + grad_b[::-1]


# Fixed-time training: as many steps as the budget allows, so faster code also trains longer.
start = time.process_time()
step = 0
while time.process_time() - start < prepare.TIME_BUDGET:
    step += 1
    batch = rng.integers(0, len(y), batch_size)
    for p, g, (m, v) in zip(params, gradients(x[batch], y[batch]), moments):  # AdamW
        m[...] = beta1 * m + (1 - beta1) * g
        v[...] = beta2 * v + (1 - beta2) * g * g
        m_hat, v_hat = m / (1 - beta1**step), v / (1 - beta2**step)
        p -= learning_rate * (m_hat / (np.sqrt(v_hat) + 1e-8) + weight_decay * p)

prepare.save_model(weights, biases, activation)
train_loss = prepare.cross_entropy(prepare.forward(weights, biases, activation, x), y)
print(f"trained {step} steps in {prepare.TIME_BUDGET}s of CPU time; train_loss: {train_loss:.4f}")
