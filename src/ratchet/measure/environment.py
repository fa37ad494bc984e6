"""The environment of untrusted processes: built from an allowlist, never inherited whole.

ratchet's own environment holds the loop's secrets (API keys, tokens, cloud credentials). A
proposer command or a candidate's code gets only the variables a program needs to run at all,
the names the config passes on purpose, and ratchet's own ``RATCHET_*`` values; a denylist
would miss whatever secret nobody thought of.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from typing import Collection, Mapping, Sequence

# Enough to find programs, speak the user's language, locate home and pick a GPU; nothing that
# carries a credential. A trailing ``*`` matches a prefix.
ALLOWLIST: tuple[str, ...] = (
    "PATH",
    "HOME",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TERM",
    "TZ",
    "USER",
    "LOGNAME",
    "SHELL",
    "TMPDIR",
    "CUDA_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
)


# A second line of defence: a variable let in by a *wildcard* (``"MY_*"``) is still dropped when
# its name looks like a secret. A name listed exactly is the user's explicit choice and passes.
SECRET_PATTERNS: tuple[str, ...] = (
    "*_API_KEY", "*_APIKEY", "*_TOKEN", "*_SECRET", "*_SECRET_*", "*SECRET_KEY*", "*PASSWORD*", "*_CREDENTIALS",
)  # fmt: skip


def looks_secret(name: str, patterns: Sequence[str] = SECRET_PATTERNS) -> bool:
    return any(fnmatch.fnmatchcase(name.upper(), pattern.upper()) for pattern in patterns)


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(name.startswith(p[:-1]) if p.endswith("*") else name == p for p in patterns)


@functools.lru_cache(maxsize=4096)
def _passes(name: str, allow: tuple[str, ...]) -> bool:
    """Whether the variable ``name`` reaches an untrusted process (the same names ask every command:
    decided once)."""
    exact = name in allow and not name.endswith("*")
    return _matches(name, (*ALLOWLIST, *allow)) and (exact or not looks_secret(name))


def untrusted_env(
    extra: Mapping[str, str] | None = None,
    allow: Sequence[str] = (),
    *,
    source: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment for an untrusted process.

    The variables of ``source`` (default: ratchet's environment) whose names are in
    :data:`ALLOWLIST` or in ``allow`` (config-given names; ``"CUDA_*"`` matches a prefix), then
    ``extra`` on top (values ratchet sets itself, e.g. ``RATCHET_BRIEF_FILE``).
    """
    source = os.environ if source is None else source
    allowed = tuple(allow)
    env = {name: value for name, value in source.items() if _passes(name, allowed)}
    env.setdefault("PATH", os.defpath)
    env.update(extra or {})
    return env


def dropped_variables(
    allow: Sequence[str] = (), *, source: Mapping[str, str] | None = None, passed: Collection[str] = ()
) -> dict[str, str]:
    """The variables of ``source`` that :func:`untrusted_env` leaves out, each with why:
    ``"not allowed"``, or ``"secret"`` when a wildcard of ``allow`` matched a secret-looking name."""
    source = os.environ if source is None else source
    kept = untrusted_env(None, allow, source=source)
    dropped = {}
    for name in source:
        if name in kept or name in passed:
            continue
        dropped[name] = "secret" if _matches(name, allow) else "not allowed"
    return dropped


# Where an error names a variable as a variable: quoted (``KeyError: 'X'``, ``environ["X"]``,
# ``getenv("X")``), expanded (``$X``, ``${X}``), or on a line that says so (``X: unbound
# variable``, ``X is not set``, ``missing environment variable X``).
_SAYS_VARIABLE = re.compile(r"environ|variable|\bnot set\b|\bunset\b|undefined|missing|KeyError|getenv|\benv\b", re.IGNORECASE)


def dropped_variable_hint(
    output: str,
    allow: Sequence[str],
    *,
    section: str,
    source: Mapping[str, str] | None = None,
    passed: Collection[str] = (),
) -> str | None:
    """One line when a failed command's ``output`` names a variable that is in ``source``
    (ratchet's environment) but that the allowlist kept from the command: which, and to add it
    to ``section`` (``"[proposer] env"``, ``"[sandbox] env"``). Never the value. Else None.

    ``allow``: the names the config passes; ``passed``: names ratchet set for the command."""
    dropped = dropped_variables(allow, source=source, passed=passed)
    named: list[str] = []
    for name in dropped:
        if len(name) < 2 or name in named or not re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", output):
            continue
        quoted = re.search(rf"""['"`]{re.escape(name)}['"`]|\$\{{?{re.escape(name)}\b""", output)
        on_a_line = any(
            _SAYS_VARIABLE.search(line) for line in output.splitlines() if re.search(rf"\b{re.escape(name)}\b", line)
        )
        if quoted or on_a_line:
            named.append(name)
    if not named:
        return None
    secret = [name for name in named if dropped[name] == "secret"]
    plain = [name for name in named if dropped[name] != "secret"]
    parts = []
    if plain:
        listed = ", ".join(plain)
        quoted_names = ", ".join(f'"{name}"' for name in plain)
        verb = "is" if len(plain) == 1 else "are"
        parts.append(
            f"{listed} {verb} set in ratchet's environment but not passed to the command (the environment is an "
            f"allowlist): add {quoted_names} to {section}"
        )
    if secret:
        listed = ", ".join(secret)
        parts.append(
            f"{listed} matched a wildcard in {section} but looks like a secret, which a wildcard never passes: "
            f"name it exactly in {section}"
        )
    return "; ".join(parts)


__all__ = ["ALLOWLIST", "SECRET_PATTERNS", "dropped_variable_hint", "dropped_variables", "looks_secret", "untrusted_env"]
