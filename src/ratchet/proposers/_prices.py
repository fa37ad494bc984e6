"""What tokens cost: the price table of genai-prices, overridable per model in ``[proposer.prices]``.

genai-prices is a maintained package (pydantic/genai-prices) that ships its table: lookups read
that bundled snapshot and never the network (the package fetches newer prices only when its
``UpdatePrices`` task is started, which ratchet never does). It knows cached-input and
cache-write rates and long-context tiers, and matches dated or suffixed ids
(``claude-sonnet-4-5-20250929``, ``gpt-5-codex``); a ``provider/model`` id (aider's
``openai/gpt-5``) is looked up with that provider, then as the bare model.

A ``[proposer.prices."model"]`` entry (dollars per million tokens, matched exactly or as the
longest prefix of the id) wins over the table; it has one input rate, which cached input pays
too (an upper bound).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ratchet.config import Price
from ratchet.proposers.base import ProposerError


@dataclass(frozen=True)
class Tokens:
    """What a model call (or a CLI's whole run) used, as the vendors bill it."""

    input: int  # every input token, cached ones included
    output: int  # reasoning ("thinking") tokens included
    cache_read: int = 0  # of ``input``: read from the prompt cache
    cache_write: int = 0  # of ``input``: written to the prompt cache


@dataclass(frozen=True)
class ModelPrice:
    """The price of one model: a ``[proposer.prices]`` entry, or genai-prices' entry for it."""

    model: str
    override: Price | None = None
    # genai-prices' lookup: the model id and provider it matched.
    ref: str = ""
    provider: str | None = None

    def cost(self, tokens: Tokens, requests: int = 1) -> float:
        """Dollars for ``tokens``. A long-context rate applies per request: totals over several
        requests are priced as ``requests`` requests of the average size."""
        if self.override is not None:
            return (tokens.input * self.override.input + tokens.output * self.override.output) / 1_000_000
        from genai_prices import Usage, calc_price

        n = max(requests, 1)
        cache_read = min(tokens.cache_read, tokens.input)  # the package refuses more cached than sent
        cache_write = min(tokens.cache_write, tokens.input - cache_read)

        def each(count: int) -> int | float:
            return count if n == 1 else count / n

        usage = Usage(
            input_tokens=each(tokens.input),
            cache_read_tokens=each(cache_read),
            cache_write_tokens=each(cache_write),
            output_tokens=each(tokens.output),
        )
        return float(calc_price(usage, self.ref, provider_id=self.provider).total_price) * n


def price_for(model: str | None, overrides: Mapping[str, Price] = {}) -> ModelPrice | None:
    """The price of ``model``: the config's own entry first, then genai-prices; None if unknown."""
    if not model:
        return None
    if model in overrides:
        return ModelPrice(model, override=overrides[model])
    prefixes = [name for name in overrides if model.startswith(name)]
    if prefixes:
        return ModelPrice(model, override=overrides[max(prefixes, key=len)])
    for ref, provider in _lookups(model):
        if _known(ref, provider):
            return ModelPrice(model, ref=ref, provider=provider)
    return None


def cost(price: ModelPrice | None, tokens_in: int, tokens_out: int) -> float:
    """Dollars for an API call's tokens (cached input counted at the input rate); 0 if unpriced."""
    return 0.0 if price is None else price.cost(Tokens(tokens_in, tokens_out))


def missing_price(model: str) -> str:
    """Why a money budget cannot be kept with ``model``, and what to add."""
    return (
        f"[budget] cost_usd needs the price of model {model!r}, which ratchet does not know: add "
        f'[proposer.prices."{model}"] with input = ... and output = ... (dollars per million tokens)'
    )


def require_price(model: str, overrides: Mapping[str, Price] = {}) -> ModelPrice:
    """The price of ``model``, or the proposer cannot start: a budget in dollars needs it."""
    price = price_for(model, overrides)
    if price is None:
        raise ProposerError(missing_price(model))
    return price


def _lookups(model: str) -> list[tuple[str, str | None]]:
    ref = model.strip()
    if "/" not in ref:
        return [(ref, None)]
    provider, bare = ref.split("/", 1)
    return [(ref, None), (bare, provider), (bare.rsplit("/", 1)[-1], None)]


def _known(ref: str, provider: str | None) -> bool:
    from genai_prices import (  # imported when a price is needed: it loads a large table
        Usage,
        calc_price,
    )

    try:
        calc_price(Usage(input_tokens=0, output_tokens=0), ref, provider_id=provider)
    except LookupError:
        return False
    return True

