"""The environment of untrusted processes: built from an allowlist, never inherited whole.

ratchet's own environment holds the loop's secrets (API keys, tokens, cloud credentials). A
proposer command or a candidate's code gets only the variables a program needs to run at all,
the names the config passes on purpose, and ratchet's own ``RATCHET_*`` values; a denylist
would miss whatever secret nobody thought of.
"""

from __future__ import annotations

import fnmatch
import os
from typing import Mapping, Sequence

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
    patterns = (*ALLOWLIST, *allow)
    exact = {p for p in allow if not p.endswith("*")}
    env = {
        name: value
        for name, value in source.items()
        if _matches(name, patterns) and (name in exact or not looks_secret(name))
    }
    env.setdefault("PATH", os.defpath)
    env.update(extra or {})
    return env


__all__ = ["ALLOWLIST", "SECRET_PATTERNS", "looks_secret", "untrusted_env"]
