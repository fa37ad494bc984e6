"""What tokens cost: default prices of common models, overridable per model in ``[proposer.prices]``.

Prices are dollars per million tokens, as the vendors list them. The defaults are a snapshot
(late 2025) and will go stale: a run with a money budget should set its model's price.
A model id matches its longest listed prefix, so ``claude-sonnet-4-5-20250929`` is priced as
``claude-sonnet-4-5``.
"""

from __future__ import annotations

from collections.abc import Mapping

from ratchet.config import Price

DEFAULT_PRICES: dict[str, Price] = {
    name: Price(input=pin, output=pout)
    for name, (pin, pout) in {
        # OpenAI
        "gpt-5": (1.25, 10.0),
        "gpt-5-mini": (0.25, 2.0),
        "gpt-5-nano": (0.05, 0.40),
        "gpt-4.1": (2.0, 8.0),
        "gpt-4.1-mini": (0.40, 1.60),
        "gpt-4.1-nano": (0.10, 0.40),
        "gpt-4o": (2.50, 10.0),
        "gpt-4o-mini": (0.15, 0.60),
        "o3": (2.0, 8.0),
        "o4-mini": (1.10, 4.40),
        # Anthropic
        "claude-opus-4-5": (5.0, 25.0),
        "claude-opus-4": (15.0, 75.0),
        "claude-sonnet-4": (3.0, 15.0),
        "claude-3-7-sonnet": (3.0, 15.0),
        "claude-haiku-4-5": (1.0, 5.0),
        "claude-3-5-haiku": (0.80, 4.0),
        # Google (for the gemini agent preset)
        "gemini-2.5-pro": (1.25, 10.0),
        "gemini-2.5-flash": (0.30, 2.50),
        "gemini-2.5-flash-lite": (0.10, 0.40),
    }.items()
}


def price_for(model: str | None, overrides: Mapping[str, Price] = {}) -> Price | None:
    """The price of ``model``: the config's own entry first, then the defaults; None if unknown."""
    if not model:
        return None
    for table in (overrides, DEFAULT_PRICES):
        if model in table:
            return table[model]
        prefixes = [name for name in table if model.startswith(name)]
        if prefixes:
            return table[max(prefixes, key=len)]
    return None


def cost(price: Price | None, tokens_in: int, tokens_out: int) -> float:
    if price is None:
        return 0.0
    return (tokens_in * price.input + tokens_out * price.output) / 1_000_000
