"""The demo's mutable scope: a one-hidden-layer network, trained with Adam, on prepare.py's data.

ratchet's optuna proposer rewrites the literals that carry a `ratchet:` comment, runs this file,
and reads the last line it prints. The starting values are poor on purpose, so that the search
has something to find.
"""

import numpy as np
import prepare

# Hyper-parameters: each trailing comment gives the range ratchet may try.
learning_rate = 0.001  # ratchet: log 1e-4..1e-1
hidden_units = 4  # ratchet: int log 2..64
epochs = 100  # ratchet: int 50..600
weight_decay = 0.01  # ratchet: log 1e-6..1e-1
activation = "relu"  # ratchet: choice relu, tanh


def act(z: np.ndarray) -> np.ndarray:
    return np.tanh(z) if activation == "tanh" else np.maximum(z, 0.0)


def act_grad(z: np.ndarray, a: np.ndarray) -> np.ndarray:
    return 1.0 - a**2 if activation == "tanh" else (z > 0.0).astype(float)


x, y = prepare.load_data()
rng = np.random.default_rng(0)  # fixed: the same hyper-parameters always give the same val_loss
params = {
    "w1": rng.standard_normal((1, hidden_units)),
    "b1": rng.uniform(-2.0, 2.0, hidden_units),
    "w2": np.zeros((hidden_units, 1)),  # a zero output layer: training starts from "predict 0"
    "b2": np.zeros(1),
}
moments = {name: (np.zeros_like(p), np.zeros_like(p)) for name, p in params.items()}
beta1, beta2 = 0.9, 0.999

for step in range(1, epochs + 1):  # full-batch Adam with decoupled weight decay (AdamW)
    z = x @ params["w1"] + params["b1"]
    h = act(z)
    error = (h @ params["w2"] + params["b2"])[:, 0] - y
    d_out = (2.0 / len(y)) * error[:, None]
    d_hidden = (d_out @ params["w2"].T) * act_grad(z, h)
    grads = {"w2": h.T @ d_out, "b2": d_out.sum(0), "w1": x.T @ d_hidden, "b1": d_hidden.sum(0)}
    for name, grad in grads.items():
        m, v = moments[name]
        m[...] = beta1 * m + (1 - beta1) * grad
        v[...] = beta2 * v + (1 - beta2) * grad**2
        m_hat, v_hat = m / (1 - beta1**step), v / (1 - beta2**step)
        params[name] -= learning_rate * (m_hat / (np.sqrt(v_hat) + 1e-8) + weight_decay * params[name])


def predict(inputs: np.ndarray) -> np.ndarray:
    return (act(inputs @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"])[:, 0]


print(f"val_loss: {prepare.evaluate(predict):.6g}")
