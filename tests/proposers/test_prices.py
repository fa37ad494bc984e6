"""Prices: genai-prices' bundled table, read offline, with [proposer.prices] entries first."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from ratchet.config import Price
from ratchet.proposers._prices import Tokens, price_for


def test_lookups_never_touch_the_network():
    """In a process where any socket use fails, the table still prices, and no updater thread starts."""
    script = textwrap.dedent(
        """
        import socket, threading
        def refuse(*args, **kwargs):
            raise OSError("network used")
        socket.socket.connect = socket.socket.connect_ex = refuse
        socket.create_connection = socket.getaddrinfo = refuse
        from ratchet.proposers._prices import Tokens, price_for
        price = price_for("gpt-5")
        print(price.cost(Tokens(2_000_000, 1_000_000, cache_read=1_000_000)))
        print(sorted(t.name for t in threading.enumerate()))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    dollars, threads = result.stdout.splitlines()
    assert float(dollars) == pytest.approx(1.25 + 0.125 + 10.0)
    assert threads == "['MainThread']"


def test_cached_input_pays_the_cached_rate():
    price = price_for("gpt-5")
    assert price is not None
    assert price.cost(Tokens(1_000_000, 0)) == pytest.approx(1.25)
    assert price.cost(Tokens(1_000_000, 0, cache_read=1_000_000)) == pytest.approx(0.125)
    # Claude's cache writes have a rate of their own (1.25 x input).
    claude = price_for("claude-sonnet-4-5-20250929")
    assert claude is not None and claude.cost(Tokens(100_000, 0, cache_write=100_000)) == pytest.approx(0.375)


def test_long_context_rates_apply_per_request():
    """Totals over three requests of 200k are three short-context requests, not one long one."""
    price = price_for("gemini-2.5-pro")
    assert price is not None
    assert price.cost(Tokens(600_000, 0), requests=3) == pytest.approx(0.75)
    assert price.cost(Tokens(600_000, 0)) == pytest.approx(1.5)  # one 600k request: the long-context rate


def test_which_price_applies():
    overrides = {"gpt-5": Price(input=9, output=9), "my-model": Price(input=1, output=2)}
    # The config's entry wins, exactly or as the longest prefix; cached input pays its one input rate.
    assert price_for("gpt-5", overrides).cost(Tokens(1_000_000, 0, cache_read=1_000_000)) == pytest.approx(9)
    assert price_for("my-model-v2", overrides).cost(Tokens(1_000_000, 1_000_000)) == pytest.approx(3)
    # An id with its provider in front (aider's form) is found.
    assert price_for("openai/gpt-5").cost(Tokens(1_000_000, 0)) == pytest.approx(1.25)
    # Aliases and local models are unknown: a money budget cannot be kept with them.
    assert price_for("sonnet") is None and price_for("qwen2.5-coder:7b") is None and price_for(None) is None
