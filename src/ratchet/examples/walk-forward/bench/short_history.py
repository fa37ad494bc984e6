"""Guard: forecast() must also work for a young series (30 days to a year of history).

A formula that only works with 400 days behind it (a 120-day momentum, a fit that needs many
points) fails here: in use it would meet a newly listed asset. This guard runs the candidate's
code (in the sandbox, like the run step); it only checks the answers' shape and finiteness.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.append(str(BENCH.parent))  # after the standard paths: see walk.py

import numpy as np  # noqa: E402
import series  # noqa: E402

LENGTHS = (30, 60, 120, 250)


def main() -> int:
    import forecast

    prices = series.log_prices()
    for days in LENGTHS:
        history = prices[:days].copy()
        history.setflags(write=False)
        try:
            answer = np.asarray(forecast.forecast(history, series.HORIZON), dtype=float).reshape(-1)
        except Exception as exc:  # the candidate's code: any failure is the guard's answer
            print(f"short_history.py: forecast() with {days} days of history raised {type(exc).__name__}: {exc}")
            return 1
        if answer.shape != (series.HORIZON,) or not all(math.isfinite(v) for v in answer):
            print(f"short_history.py: forecast() with {days} days of history returned no {series.HORIZON} finite values")
            return 1
    print(f"short_history.py: forecasts from {', '.join(map(str, LENGTHS))} days of history are well-formed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
