"""The values a setting may take (config/values.py): durations."""

from __future__ import annotations

import pytest

from ratchet.config import parse_duration


@pytest.mark.parametrize(
    "text, seconds",
    [("90s", 90), ("5m", 300), ("2h", 7200), ("1.5h", 5400), ("250ms", 0.25), (30, 30), ("1d", 86400), (" 10 s ", 10)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5 minutes", "-1s", "0s", "", "h", True])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)
