"""The metric: process CPU time to render the benchmark corpus (lower is better).

CPU time (time.process_time), not wall time: time spent waiting for a core that other programs
hold is not counted, so a busy machine disturbs the number less. It is still noisy (caches,
frequency scaling), which is why ratchet.toml compares candidates with the sequential verdict.
Each template is rendered REPEATS times in a row, as a benchmark of a hot path usually does; the
workload is run ROUNDS times and the fastest round reported (the least disturbed one).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from corpus import corpus

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's library, not an installed one
import minitemplate  # noqa: E402

REPEATS = 30
ROUNDS = 5


def main() -> None:
    pairs = corpus()
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.process_time()
        for source, context in pairs:
            for _ in range(REPEATS):
                minitemplate.render(source, context)
        best = min(best, time.process_time() - start)
    print(f"cpu_ms: {best * 1000:.3f}")


if __name__ == "__main__":
    main()
