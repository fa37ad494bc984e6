"""The claims guard: every number on the page must be one the team can back. Frozen (harness).

Exit 0 when each number in the copy appears in rubric/claims.toml, else exit 1 naming the
numbers that do not. It guards the rubric's weak spot: "a measurable outcome in the headline"
is easy to satisfy with a made-up figure.

    python3 -B rubric/claims.py landing/copy.toml
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

from page import load

NUMBER = re.compile(r"\d+(?:[.,]\d+)*%?")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: claims.py landing/copy.toml", file=sys.stderr)
        return 2
    claims = tomllib.loads((Path(__file__).parent / "claims.toml").read_text(encoding="utf-8"))["claim"]
    backed = {number for claim in claims for number in NUMBER.findall(claim["text"])}
    copy = load(argv[1])
    stated = [(field, number) for field, text in copy.items() for number in NUMBER.findall(text)]
    unbacked = [f"{number} ({field})" for field, number in stated if number not in backed]
    if unbacked:
        print(f"claims: not backed by rubric/claims.toml: {', '.join(unbacked)}")
        return 1
    print(f"claims: all {len(stated)} numbers on the page are backed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
