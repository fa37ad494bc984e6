"""The run step: calls the candidate's forecast() once per walk-forward window, past data only.

For the window at cutoff t, forecast() gets a read-only copy of days 0..t-1 and the horizon, and
its answer is written to out/forecasts.json (git-ignored). This file scores nothing: it never
needs the future, and the scorer (bench/score.py) reads only the forecasts it wrote.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = ROOT / "out" / "forecasts.json"
# The candidate's forecast.py is at the root. Appended after the standard paths, so that a
# module left at the root cannot stand in for numpy (bench/ is sys.path[0]; a file left there
# is a harness change, `tampered`).
sys.path.append(str(ROOT))

import numpy as np  # noqa: E402
import series  # noqa: E402  (bench/series.py)


def main() -> int:
    import forecast  # the candidate's module: imported only now, after the harness's own

    prices = series.log_prices()
    forecasts: dict[str, list[float]] = {}
    for cutoff in series.CUTOFFS:
        history = prices[:cutoff].copy()
        history.setflags(write=False)
        answer = np.asarray(forecast.forecast(history, series.HORIZON), dtype=float).reshape(-1)
        if answer.shape != (series.HORIZON,) or not all(math.isfinite(v) for v in answer):
            print(f"walk.py: forecast() at day {cutoff} returned {answer.shape[0]} values, not {series.HORIZON} finite ones",
                  file=sys.stderr)  # fmt: skip
            return 1
        forecasts[str(cutoff)] = [float(v) for v in answer]
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"horizon": series.HORIZON, "forecasts": forecasts}))
    print(f"walk.py: {len(forecasts)} windows forecast, {series.HORIZON} days each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
