"""The frozen scorer: walk-forward errors of the forecasts bench/walk.py wrote. Runs no candidate code.

    python3 -B bench/score.py rmse        the metric's trusted score step (ratchet runs it from a
                                          pristine copy of the harness; the forecasts are in
                                          $RATCHET_CANDIDATE): RMSE over the scored windows, and
                                          a bootstrap interval of the gain over the reference
    python3 -B bench/score.py lookahead   guard: how likely a formula that sees only the past is
                                          to line up with the future as well as this one did
    python3 -B bench/score.py holdout     the holdout: RMSE over the last windows (series.HOLDOUT)

Errors are in log price: an RMSE of 0.1 is a typical miss of about 10%.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.append(str(BENCH))  # after the standard paths: see walk.py

import numpy as np  # noqa: E402
import reference  # noqa: E402
import series  # noqa: E402

BOOTSTRAP_RESAMPLES = 2000
LOOKAHEAD_P = 0.001  # the lookahead guard's bound in ratchet.toml, for the message


def read_forecasts() -> dict[int, np.ndarray]:
    """out/forecasts.json of the candidate, checked: one finite forecast per window, nothing else."""
    path = Path(os.environ.get("RATCHET_CANDIDATE", BENCH.parent)) / "out" / "forecasts.json"
    try:
        data = json.loads(path.read_text())
        found = {int(day): np.asarray(values, dtype=float) for day, values in data["forecasts"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise SystemExit(f"score.py: cannot read the forecasts {path}: {exc}") from None
    if sorted(found) != list(series.CUTOFFS) or any(f.shape != (series.HORIZON,) or not np.isfinite(f).all() for f in found.values()):
        raise SystemExit(f"score.py: {path} does not hold one forecast of {series.HORIZON} finite values per window")
    return found


def squared_errors(prices: np.ndarray, forecasts: dict[int, np.ndarray], cutoffs: tuple[int, ...]) -> np.ndarray:
    """Mean squared error of each window's forecast."""
    return np.array([np.mean((forecasts[t] - prices[t : t + series.HORIZON]) ** 2) for t in cutoffs])


def main(argv: list[str]) -> int:
    what = argv[1] if len(argv) > 1 else "rmse"
    if what not in ("rmse", "lookahead", "holdout"):
        print(f"score.py: unknown mode {what!r} (rmse, lookahead or holdout)", file=sys.stderr)
        return 2
    prices = series.log_prices()
    forecasts = read_forecasts()
    if what == "holdout":
        print(f"holdout_rmse: {math.sqrt(squared_errors(prices, forecasts, series.HOLDOUT).mean()):.6f}")
        return 0
    if what == "lookahead":
        return lookahead(prices, forecasts)
    candidate = squared_errors(prices, forecasts, series.SCORED)
    # The frozen reference, computed here from the same past: what the interval is against.
    ref = squared_errors(prices, {t: reference.forecast(prices[:t], series.HORIZON) for t in series.SCORED}, series.SCORED)
    for t, mine, theirs in zip(series.SCORED, candidate, ref):
        print(f"window from day {t}: rmse {math.sqrt(mine):.4f} (reference {math.sqrt(theirs):.4f})")
    print(f"rmse: {math.sqrt(candidate.mean()):.6f}")
    # How sure is the change? Resample the windows (with replacement) and recompute the pooled
    # RMSE's change each time. Windows 50 days apart are not quite independent (deviations
    # persist), so read the interval as a little optimistic.
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(candidate), (BOOTSTRAP_RESAMPLES, len(candidate)))
    changes = np.sqrt(candidate[picks].mean(axis=1) / ref[picks].mean(axis=1)) - 1
    low, high = np.percentile(changes, [2.5, 97.5])
    change = math.sqrt(candidate.mean() / ref.mean()) - 1
    print(f"rmse vs the reference (bench/reference.py): {change:+.1%}, 95% bootstrap interval "
          f"{low:+.1%} .. {high:+.1%} ({len(candidate)} windows, {BOOTSTRAP_RESAMPLES} resamples)")  # fmt: skip
    return 0


def lookahead(prices: np.ndarray, forecasts: dict[int, np.ndarray]) -> int:
    """Does the candidate know something about each window's future? A test against the oracle.

    For a formula that sees only the past, its departure d from the oracle's forecast is fixed
    before the window's shocks happen, and the oracle's error e is N(0, C) given the past
    (series.shock_covariance). So z = d.e / sqrt(d'Cd) is exactly N(0, 1) on every window, and
    the windows' z are independent: their sum over sqrt(n) is N(0, 1) too, whatever the formula.
    A formula that knows the future moves towards it, and z grows. Printed: the one-sided
    p-value, `lookahead_p`.
    """
    cov = series.shock_covariance(series.HORIZON)
    scores = []
    for t in series.SCORED:
        oracle = series.oracle_forecast(prices[:t], series.HORIZON)
        departure = forecasts[t] - oracle
        spread = math.sqrt(float(departure @ cov @ departure))
        # The oracle's own forecast carries no information about the future: a z of 0.
        scores.append(float(departure @ (prices[t : t + series.HORIZON] - oracle)) / spread if spread > 0 else 0.0)
    z = sum(scores) / math.sqrt(len(scores))
    p = 0.5 * math.erfc(z / math.sqrt(2))
    print(f"departures from the oracle (the best forecast from the past alone) against what happened next: "
          f"z = {z:+.2f} over {len(scores)} windows")  # fmt: skip
    if p < LOOKAHEAD_P:
        print(f"that is look-ahead: a formula that sees only the past scores this high with probability {p:.2g}")
    print(f"lookahead_p: {p:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
