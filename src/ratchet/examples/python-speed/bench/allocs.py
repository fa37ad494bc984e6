"""The `allocations` guard: memory a render allocates, in KiB, summed over the benchmark corpus.

For each template, tracemalloc's peak is reset, the template rendered once, and the peak above
what was in use before the call counted: the most memory that one render holds at once (its
tokens, its tree, its partial outputs). The number is deterministic, so ratchet.toml bounds it
against the champion's (max_regression) rather than testing it statistically: a speed-up that
buys its time with memory (a cache that grows with every input, tables built per call) fails.
"""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

from corpus import corpus

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's library, not an installed one
import minitemplate  # noqa: E402


def main() -> None:
    pairs = corpus()
    minitemplate.render(*pairs[0])  # imports and first-call set-up are not the hot path
    tracemalloc.start()
    total = 0
    for source, context in pairs:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        minitemplate.render(source, context)
        total += tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    print(f"alloc_kib: {total / 1024:.1f}")


if __name__ == "__main__":
    main()
