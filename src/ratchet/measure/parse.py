"""Reading the metric: one finite number from a command's output, the way the config's parser says."""

from __future__ import annotations

import json
import math
import re

from ratchet.config import Parser

# A number as commands print them: 12, -3.5, .5, 1e-3, and nan/inf (read, then refused as not finite).
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf(?:inity)?)\b", re.IGNORECASE)


class MetricParseError(ValueError):
    """The output holds no usable number (missing, NaN or infinite)."""


def parse_number(output: str, parser: Parser) -> float:
    """Read one finite number from a command's output, the way ``parser`` says."""
    kind = parser.parser_kind
    if kind == "regex":
        assert parser.regex is not None
        matches = list(re.finditer(parser.regex, output, re.MULTILINE))
        if not matches:
            raise MetricParseError(f"the regex {parser.regex!r} matched nothing in the output")
        text = matches[-1].group(1)
    elif kind == "json":
        assert parser.json_key is not None
        text = _json_value(output, parser.json_key)
    else:
        numbers = NUMBER.findall(output)
        if not numbers:
            raise MetricParseError("the output holds no number")
        text = numbers[-1]
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise MetricParseError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise MetricParseError(f"the metric is {value} (not a finite number)")
    return value


def _json_value(output: str, key: str) -> str:
    """The value at dotted ``key`` in the whole output as JSON, else in the last JSON line that has it."""
    candidates = [output] + [line for line in reversed(output.splitlines()) if line.strip().startswith("{")]
    for candidate in candidates:
        try:
            node = json.loads(candidate)
        except ValueError:
            continue
        for part in key.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                node = None
                break
        if node is not None:
            if isinstance(node, bool) or not isinstance(node, (int, float, str)):
                raise MetricParseError(f"the JSON key {key!r} holds {node!r}, not a number")
            return str(node)
    raise MetricParseError(f"no JSON object in the output has the key {key!r}")


__all__ = ["NUMBER", "MetricParseError", "parse_number"]
