"""Reading the metric: numbers parse, or fail with a reason."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ratchet.config import Parser
from ratchet.measure.parse import MetricParseError, parse_number


@pytest.mark.parametrize(
    "output, parser, expected",
    [
        ("loss: 0.5\nloss: 0.25\n", Parser(regex=r"loss: ([0-9.]+)"), 0.25),
        ('{"a": {"b": 3.5}}', Parser(json="a.b"), 3.5),
        ('noise\n{"score": 7}\n{"other": 1}\n', Parser(json="score"), 7.0),
        ("epoch 3 step 100 val 1.5e-3\n", Parser(), 1.5e-3),
        ("result -4\n", Parser(last_number=True), -4.0),
    ],
)
def test_parse_number(output, parser, expected):
    assert parse_number(output, parser) == expected


@pytest.mark.parametrize(
    "output, parser, message",
    [
        ("loss: nan", Parser(regex=r"loss: (\S+)"), "not a finite number"),
        ("value inf", Parser(), "not a finite number"),
        ("nothing", Parser(), "no number"),
        ('{"score": "high"}', Parser(json="score"), "not a number"),
        ('{"score": true}', Parser(json="score"), "not a number"),
        ("{}", Parser(json="score"), "has the key"),
        ("x", Parser(regex=r"loss: (\S+)"), "matched nothing"),
    ],
)
def test_parse_number_failures(output, parser, message):
    with pytest.raises(MetricParseError, match=message):
        parse_number(output, parser)


@given(st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_last_number_round_trips_any_float(value: float):
    assert parse_number(f"metric {value!r} done\n", Parser()) == value
