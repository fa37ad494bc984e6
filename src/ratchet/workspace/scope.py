"""Glob matching for the scope and the harness.

Globs are anchored at the repository root and use ``/`` as separator: ``*`` and ``?`` stay
within one path segment, ``**`` spans any number of segments, ``[abc]`` is a class. A glob
that matches a directory covers everything below it (``src`` == ``src/**``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable, Sequence


@lru_cache(maxsize=512)
def _compile(glob: str) -> re.Pattern[str]:
    glob = glob.strip()
    while glob.startswith("./"):
        glob = glob[2:]
    glob = glob.rstrip("/")
    out: list[str] = []
    i = 0
    while i < len(glob):
        char = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[":
            end = glob.find("]", i + 1)
            if end == -1:
                out.append(re.escape(char))
                i += 1
            else:
                body = glob[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
        else:
            out.append(re.escape(char))
            i += 1
    # A match of a directory covers what is below it.
    return re.compile("".join(out) + "(?:/.*)?", re.DOTALL)


class Globs:
    """A set of globs; ``matches(path)`` for a repository-relative POSIX path."""

    def __init__(self, globs: Iterable[str]) -> None:
        self.globs: tuple[str, ...] = tuple(globs)
        self._patterns = [_compile(glob) for glob in self.globs]

    def matches(self, path: str) -> bool:
        return any(pattern.fullmatch(path) for pattern in self._patterns)

    def select(self, paths: Sequence[str]) -> list[str]:
        return [path for path in paths if self.matches(path)]

    def __bool__(self) -> bool:
        return bool(self.globs)

    def __repr__(self) -> str:
        return f"Globs({list(self.globs)!r})"
