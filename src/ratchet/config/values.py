"""Values a setting may take: durations (``"5m"``), effects (``"1%"``), sizes (``"1MB"``) and
environment variable names, each with its own one-line error."""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict

# ---------------------------------------------------------------- durations


def _float(value: int | float) -> float:
    # A TOML integer has no bound: float() of a huge one raises OverflowError, not ValueError.
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{value:.3g} is too large" if isinstance(value, float) else "the number is too large") from None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """``90`` or ``"90s"``, ``"5m"``, ``"2h"``, ``"1.5h"``, ``"250ms"`` -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '90s', '5m' or '2h'")
    if isinstance(value, (int, float)):
        seconds = _float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"expected a duration such as '90s', '5m' or '2h' (got {value!r})")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError("expected a duration such as '90s', '5m' or '2h'")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a duration must be positive (got {value!r})")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class Effect(BaseModel):
    """A size of change: absolute (``0.01``) or relative to the champion (``"1%"``)."""

    model_config = ConfigDict(frozen=True)
    value: float
    relative: bool

    def amount(self, reference: float) -> float:
        return abs(reference) * self.value / 100.0 if self.relative else self.value

    def __str__(self) -> str:
        return f"{self.value:g}%" if self.relative else f"{self.value:g}"


def parse_effect(value: object) -> Effect:
    if isinstance(value, Effect):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a number or a percentage such as '1%'")
    if isinstance(value, (int, float)):
        number, relative = _float(value), False
    elif isinstance(value, str):
        text = value.strip()
        relative = text.endswith("%")
        try:
            number = float(text.rstrip("%").strip())
        except ValueError:
            raise ValueError(f"expected a number or a percentage such as '1%' (got {value!r})") from None
    elif isinstance(value, dict):
        return Effect(**value)
    else:
        raise ValueError("expected a number or a percentage such as '1%'")
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"must be a non-negative number (got {value!r})")
    return Effect(value=number, relative=relative)


EffectField = Annotated[Effect, BeforeValidator(parse_effect)]


# ---------------------------------------------------------------- sizes

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)


def parse_size(value: object) -> int:
    """``1048576`` or ``"512KB"``, ``"1MB"``, ``"2GiB"`` -> bytes (K, M, G, T are powers of 1024)."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as '512KB', '1MB' or '2GB'")
    if isinstance(value, (int, float)):
        number = _float(value)
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        unit = (match.group(2) or "b")[0].lower()
        number = float(match.group(1)) * 1024 ** "bkmgt".index(unit)
    else:
        raise ValueError(f"expected a size such as '512KB', '1MB' or '2GB' (got {value!r})")
    if not math.isfinite(number) or number < 1 or number > 2**62:
        raise ValueError(f"a size must be positive (got {value!r})")
    return int(number)


Size = Annotated[int, BeforeValidator(parse_size)]


def _env_name(name: object) -> str:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*\*?", name):
        raise ValueError(f"{name!r} is not an environment variable name (a trailing * matches a prefix)")
    return name


EnvName = Annotated[str, BeforeValidator(_env_name)]
