"""minitemplate: a tiny template renderer, the code this example speeds up.

    render("Hello {{ user.name|title }}!{% if admin %} (admin){% endif %}", context)

Syntax: ``{{ name }}`` or ``{{ a.b.c }}`` (dict keys or attributes), filters after ``|``
(upper, lower, title, strip, escape, length), ``{% for x in items %}...{% endfor %}``,
``{% if name %}...{% else %}...{% endif %}``. Unknown names render as "".

This file is the run's mutable scope. Its hot path is slow on purpose, in plain ways a
profiler points at: every call tokenizes the source one character at a time and parses it
again, output is built by string concatenation, filters are found by a linear search.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape as _html_escape
from typing import Any

# Knobs for the optuna proposer (each trailing comment is the range it may try):
# how many characters the tokenizer takes per step while looking for the next tag...
LOOKAHEAD = 1  # ratchet: int log 1..256
# ...and how many parsed templates are kept, keyed by their source (0: parse on every call).
CACHE_SIZE = 0  # ratchet: int 0..64

FILTERS = [
    ("upper", lambda value: str(value).upper()),
    ("lower", lambda value: str(value).lower()),
    ("title", lambda value: str(value).title()),
    ("strip", lambda value: str(value).strip()),
    ("escape", lambda value: _html_escape(str(value), quote=True)),
    ("length", lambda value: len(value)),
]


class TemplateError(Exception):
    """The template's source is malformed (an unclosed tag, a stray endfor)."""


def render(source: str, context: Mapping[str, Any]) -> str:
    """Render template ``source`` with the values in ``context``."""
    tree = _parsed(source)
    return _render_nodes(tree, [context])


# ---------------------------------------------------------------- parsing

_cache: dict[str, list[Any]] = {}


def _parsed(source: str) -> list[Any]:
    if CACHE_SIZE <= 0:
        return _parse(_tokenize(source))
    tree = _cache.get(source)
    if tree is None:
        if len(_cache) >= CACHE_SIZE:
            _cache.pop(next(iter(_cache)))  # the oldest entry: a plain FIFO
        tree = _cache[source] = _parse(_tokenize(source))
    return tree


def _tokenize(source: str) -> list[tuple[str, str]]:
    """("text", s), ("var", expression) and ("tag", statement) tokens, in order."""
    tokens: list[tuple[str, str]] = []
    text = ""
    i = 0
    while i < len(source):
        if source.startswith("{{", i) or source.startswith("{%", i):
            closer = "}}" if source[i + 1] == "{" else "%}"
            end = source.find(closer, i + 2)
            if end < 0:
                raise TemplateError(f"unclosed {source[i:i + 2]} at offset {i}")
            if text:
                tokens.append(("text", text))
                text = ""
            kind = "var" if closer == "}}" else "tag"
            tokens.append((kind, source[i + 2 : end].strip()))
            i = end + 2
            continue
        # Take up to LOOKAHEAD characters, stopping before the next "{" (a tag may start there).
        window = source[i : i + LOOKAHEAD]
        brace = window.find("{", 1)
        if brace > 0:
            window = window[:brace]
        text = text + window
        i += len(window)
    if text:
        tokens.append(("text", text))
    return tokens


def _parse(tokens: list[tuple[str, str]]) -> list[Any]:
    """Nested nodes: ("text", s), ("var", name, filters), ("for", var, name, body),
    ("if", name, then, otherwise)."""
    root: list[Any] = []
    stack: list[tuple[list[Any], Any]] = [(root, None)]
    for kind, value in tokens:
        body = stack[-1][0]
        if kind == "text":
            body.append(("text", value))
        elif kind == "var":
            name, *filters = [part.strip() for part in value.split("|")]
            body.append(("var", name, filters))
        else:
            words = value.split()
            if not words:
                raise TemplateError("an empty {% %} tag")
            if words[0] == "for" and len(words) == 4 and words[2] == "in":
                node: list[Any] = ["for", words[1], words[3], []]
                body.append(node)
                stack.append((node[3], node))
            elif words[0] == "if" and len(words) == 2:
                node = ["if", words[1], [], []]
                body.append(node)
                stack.append((node[2], node))
            elif words == ["else"] and stack[-1][1] is not None and stack[-1][1][0] == "if":
                stack[-1] = (stack[-1][1][3], stack[-1][1])
            elif words[0] in ("endfor", "endif") and len(stack) > 1 and stack[-1][1][0] == words[0][3:]:
                stack.pop()
            else:
                raise TemplateError(f"unexpected tag {{% {value} %}}")
    if len(stack) > 1:
        raise TemplateError(f"unclosed {{% {stack[-1][1][0]} %}}")
    return root


# ---------------------------------------------------------------- rendering


def _lookup(name: str, scopes: list[Mapping[str, Any]]) -> Any:
    parts = name.split(".")
    value: Any = None
    for scope in reversed(scopes):
        if parts[0] in scope:
            value = scope[parts[0]]
            break
    else:
        return None
    for part in parts[1:]:
        if isinstance(value, Mapping):
            value = value.get(part)
        else:
            value = getattr(value, part, None)
        if value is None:
            return None
    return value


def _apply(filters: list[str], value: Any) -> Any:
    for wanted in filters:
        for name, function in FILTERS:
            if name == wanted:
                value = function(value)
                break
        else:
            raise TemplateError(f"unknown filter {wanted!r}")
    return value


def _render_nodes(nodes: list[Any], scopes: list[Mapping[str, Any]]) -> str:
    out = ""
    for node in nodes:
        kind = node[0]
        if kind == "text":
            out = out + node[1]
        elif kind == "var":
            value = _apply(node[2], _lookup(node[1], scopes))
            out = out + ("" if value is None else str(value))
        elif kind == "for":
            for item in _lookup(node[2], scopes) or ():
                out = out + _render_nodes(node[3], scopes + [{node[1]: item}])
        else:
            out = out + _render_nodes(node[2] if _lookup(node[1], scopes) else node[3], scopes)
    return out
