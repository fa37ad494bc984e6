"""The prompt-budget guard's number: the words in the template. Frozen (harness).

Every request pays for the prompt, in the eval and in production; a prompt that buys eval
points by growing without bound is not a better prompt. ratchet.eval.toml bounds this number.

    python3 -B eval/budget.py prompt/triage.md   ->   prompt_words: 41
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: budget.py prompt/triage.md")
    print(f"prompt_words: {len(Path(sys.argv[1]).read_text(encoding='utf-8').split())}")
