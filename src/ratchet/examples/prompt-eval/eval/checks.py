"""Grading one answer against a scenario's checks, deterministically. Frozen (harness).

A scenario's "checks" hold three kinds, each entry worth one point:

    "json":  ["category", "priority"]        the whole answer is one JSON object with these keys
    "exact": {"category": "billing"}         that field's value equals this one
    "regex": {"reply": "#2041\\b"}           that field's value (as text) matches this pattern

Fields are read from the answer's JSON object; an answer that wraps it in prose still has its
fields read (from the outermost braces), so only the "json" point is lost for the wrapping.
"""

from __future__ import annotations

import json
import re
from typing import Any


def fields_of(answer: str) -> tuple[dict[str, Any] | None, bool]:
    """The answer's JSON object (None if there is none) and whether the whole answer was that object."""
    for text, strict in ((answer.strip(), True), (answer[answer.find("{") : answer.rfind("}") + 1], False)):
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value, strict
    return None, False


def grade(answer: str, checks: dict[str, Any]) -> list[tuple[str, bool]]:
    """(what was checked, passed) for each point of ``checks``."""
    fields, whole = fields_of(answer)
    got = fields or {}
    results: list[tuple[str, bool]] = []
    if "json" in checks:
        keys = list(checks["json"])
        results.append((f"json with {', '.join(keys)}", whole and all(key in got for key in keys)))
    for key, expected in checks.get("exact", {}).items():
        results.append((f"{key} = {expected!r} (got {got.get(key)!r})", key in got and got[key] == expected))
    for key, pattern in checks.get("regex", {}).items():
        results.append((f"{key} ~ /{pattern}/", key in got and re.search(pattern, str(got[key])) is not None))
    return results
