"""The parameters a sampler-based proposer tunes: where they live, what they are now, how to change them.

Two sources, one shape (:class:`Param`):

- *declared* in ``[proposer] params`` (``file``, dotted ``key``, ``range``) inside a TOML, JSON or
  YAML file of the scope;
- *marked* in any text file of the scope by a trailing comment after a literal::

      lr = 0.01  # ratchet: log 1e-4..1e-1
      depth: 3  # ratchet: int 1..8
      act = "relu"  # ratchet: choice relu, gelu
      const int tile = 64; // ratchet: choice 32, 64, 128

Every edit replaces one literal's text and nothing else, so a candidate's diff is one changed
value and the user's comments, quotes, key order and layout survive: markers by their line,
TOML through tomlkit's round-trip document, YAML and JSON at the span their parser reports
(re-dumping would re-indent, re-wrap and drop comments). Every structured file is re-parsed after
an edit, so a proposal never carries a file that no longer parses.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import tomlkit
import yaml
from tomlkit.exceptions import TOMLKitError

from ratchet.config import ParamDecl, ParamSpec

#: files larger than this are not scanned for markers (data, vendored bundles)
MAX_SCAN_BYTES = 1_000_000

_STRUCTURED = {".toml": "toml", ".json": "json", ".yaml": "yaml", ".yml": "yaml"}


@dataclass(frozen=True)
class Param:
    """One tunable value: its search space, its current value and how to find it in its file."""

    name: str  # "<file>:<identifier or dotted key>", unique within a run
    file: str  # path relative to the repository root
    key: str  # the identifier (marker) or dotted key (declared)
    spec: ParamSpec
    value: Any  # the current value, as Python sees it
    source: Literal["marker", "declared"]
    line: int = 0  # 1-based line of a marker (0 for declared params)
    literal: str = ""  # the literal's text on that line, to check the file has not moved

    @property
    def short_name(self) -> str:
        return self.key


# ---------------------------------------------------------------- rendering values


def format_number(value: float, kind: str) -> str:
    """A number as text that Python, C, TOML, JSON and YAML all read back as the same type.

    Floats get six significant digits (plenty for hyper-parameters, and diffs stay readable) and
    always a '.' in the mantissa: YAML 1.1 reads ``1e-05`` as a *string*, ``1.0e-05`` as a float.
    """
    if kind == "int" or (isinstance(value, int) and not isinstance(value, bool) and kind != "float"):
        return str(int(value))
    text = f"{float(value):.6g}"
    mantissa, e, exponent = text.partition("e")
    if "." not in mantissa and mantissa.lstrip("-").isdigit():
        mantissa += ".0"
    return mantissa + (e + exponent if e else "")


def normalize(value: Any, spec: ParamSpec) -> Any:
    """The value that will actually be written: ints as ints, floats rounded like :func:`format_number`."""
    if spec.kind == "int":
        return int(value)
    if spec.kind == "float":
        return float(format_number(float(value), "float"))
    if isinstance(value, float):
        return float(format_number(value, "float"))
    return value


def _render_literal(value: Any, original: str, kind: str, suffixes: bool = True) -> str:
    """Render ``value`` in the style of the ``original`` literal (quotes, C suffix, bool case).

    ``suffixes=False`` for TOML, YAML and JSON, where a trailing letter is a digit (``0x1F``).
    """
    if original[:1] in ("'", '"'):
        quote = original[0]
        text = str(value)
        if quote in text or "\\" in text:
            return json.dumps(text)  # valid in Python, C, TOML basic strings and YAML
        return f"{quote}{text}{quote}"
    if isinstance(value, bool):
        return str(value) if original[:1] in ("T", "F") else str(value).lower()
    if isinstance(value, (int, float)):
        numeric = original[:1].isdigit() or original[:1] in ("+", "-", ".")
        suffix = original[len(original.rstrip("fFlLuU")) :] if numeric and suffixes else ""  # C: 0.5f, 10u
        return format_number(value, kind) + suffix
    return str(value)


# ---------------------------------------------------------------- markers

_MARKER = re.compile(r"(?:#|//)\s*ratchet:\s*(?P<spec>.*?)\s*$")
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_LIT = rf"""(?P<lit>"[^"\\\n]*"|'[^'\\\n]*'|{_NUM}[fFlLuU]{{0,2}}|[A-Za-z_][\w.\-]*)"""
_TAIL = r"\s*[,;)]*\s*$"
# `ident = lit`, `ident: type = lit`, `ident: lit`, `"key": lit`, `f(ident=lit)`, `ident := lit`
_ASSIGN = re.compile(
    rf"""(?<![\w.])(?P<ident>[A-Za-z_][\w.]*|"[\w.\- ]+"|'[\w.\- ]+')\s*(?::\s*[^=:]+?\s*)?(?::=|=|:)\s*{_LIT}{_TAIL}"""
)
_DEFINE = re.compile(rf"^\s*#\s*define\s+(?P<ident>[A-Za-z_]\w*)\s+{_LIT}{_TAIL}")


def _literal_value(text: str) -> Any:
    """Python value of a marked literal; bare words are choice values (``relu``, ``true``)."""
    if text[:1] in ("'", '"'):
        return text[1:-1]
    number = re.fullmatch(rf"({_NUM})[fFlLuU]*", text)
    if number:
        digits = number.group(1)
        return float(digits) if re.search(r"[.eE]", digits) else int(digits)
    if text in ("True", "true"):
        return True
    if text in ("False", "false"):
        return False
    return text


def _read_text(path: Path) -> str | None:
    """The file as text, or None when it is too big, binary or not UTF-8 (then it holds no markers)."""
    try:
        if path.stat().st_size > MAX_SCAN_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data or b"ratchet:" not in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def scan_markers(file: str, text: str) -> list[Param]:
    """Marked literals of one file. Raises ValueError naming ``file:line`` for a marker it cannot use."""
    params: list[Param] = []
    for number, line in enumerate(text.split("\n"), start=1):
        marker = _MARKER.search(line)
        if not marker:
            continue
        code = line[: marker.start()]
        stripped = code.strip()
        # Only a *trailing* comment marks a literal; a comment that talks about markers does not.
        if not stripped or stripped.startswith(("//", "/*", "*")) or (stripped[0] == "#" and not _DEFINE.match(code)):
            continue
        where = f"{file}:{number}"
        match = _DEFINE.search(code) or _ASSIGN.search(code)
        literal = match.group("lit") if match else ""
        try:
            spec = ParamSpec.parse(marker.group("spec"))
        except ValueError as exc:
            if not match:
                continue  # neither a literal nor a range: prose that mentions markers, not a marker
            raise ValueError(f"{where}: {exc}") from None
        bare_word = bool(literal) and (literal[0].isalpha() or literal[0] == "_")
        if not match or (bare_word and spec.kind != "choice"):
            raise ValueError(
                f"{where}: no literal to tune before the ratchet marker; write e.g. `lr = 0.01  # ratchet: log 1e-4..1e-1`"
            )
        value = _literal_value(literal)
        if spec.kind == "choice":
            # `use_bias = True  # ratchet: choice True, False` has string choices: match by text.
            same = [c for c in spec.choices if c == value] or [c for c in spec.choices if str(c) == literal.strip("\"'")]
            value = same[0] if same else value
        key = match.group("ident").strip("\"'")
        params.append(
            Param(
                name=f"{file}:{key}",
                file=file,
                key=key,
                spec=spec,
                value=value,
                source="marker",
                line=number,
                literal=literal,
            )
        )
    return params


# ---------------------------------------------------------------- declared params (TOML/JSON/YAML)


def _format_of(file: str) -> str:
    suffix = Path(file).suffix.lower()
    if suffix not in _STRUCTURED:
        raise ValueError(f"{file}: declared params must live in a .toml, .json, .yaml or .yml file")
    return _STRUCTURED[suffix]


def _load(fmt: str, text: str) -> Any:
    if fmt == "toml":
        return tomllib.loads(text)
    if fmt == "json":
        return json.loads(text)
    return yaml.safe_load(text)


def _parts(key: str) -> list[str]:
    return [part.strip().strip("\"'") for part in key.split(".")]


def _get(data: Any, key: str) -> Any:
    node = data
    for part in _parts(key):
        if isinstance(node, list) and part.lstrip("-").isdigit():
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(key)
    return node


def _declared(worktree: Path, decl: ParamDecl, scope_files: set[str]) -> Param:
    where = f"{decl.file} (key {decl.key!r} in [proposer].params)"
    fmt = _format_of(decl.file)
    if decl.file not in scope_files:
        raise ValueError(f"{where}: the file is not in the scope; add it to [scope].mutable")
    try:
        data = _load(fmt, (worktree / decl.file).read_bytes().decode("utf-8"))
        value = _get(data, decl.key)
    except (KeyError, IndexError):
        raise ValueError(f"{where}: no such key in the file") from None
    except (OSError, ValueError, yaml.YAMLError) as exc:  # ValueError covers TOML, JSON and UTF-8 errors
        raise ValueError(f"{where}: cannot read it: {exc}") from None
    if not isinstance(value, (int, float, str, bool)):
        raise ValueError(f"{where}: the value is a {type(value).__name__}; only numbers, strings and booleans can be tuned")
    return Param(
        name=f"{decl.file}:{decl.key}",
        file=decl.file,
        key=decl.key,
        spec=decl.spec,
        value=value,
        source="declared",
    )


def _set_value(fmt: str, text: str, key: str, value: Any, kind: str) -> str:
    """``text`` with the value at dotted ``key`` replaced by ``value``: only that literal's text changes."""
    if fmt == "toml":
        return _toml_set(text, key, value, kind)
    start, end = _yaml_span(text, key) if fmt == "yaml" else _json_span(text, key)
    original = text[start:end]
    if fmt == "json":
        new = json.dumps(value, ensure_ascii=False) if isinstance(value, str) else _render_literal(value, original, kind, False)
    else:
        new = _yaml_literal(value, original, kind)
    return text[:start] + new + text[end:]


def _toml_set(text: str, key: str, value: Any, kind: str) -> str:
    # tomlkit keeps every byte it does not own: comments, whitespace, quotes, table order.
    try:
        document = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise ValueError(str(exc)) from None
    *path, last = _parts(key)
    node: Any = document
    try:
        for part in path:
            node = node[int(part)] if isinstance(node, list) and part.lstrip("-").isdigit() else node[part]
        index: int | str = int(last) if isinstance(node, list) else last
        old = node[index]
    except (KeyError, IndexError, ValueError, TypeError):
        raise ValueError(f"no value at key {key!r}") from None
    # tomlkit hands booleans back as plain bools: their TOML text is `true`/`false` either way.
    original = old.as_string() if isinstance(old, tomlkit.items.Item) else tomlkit.item(old).as_string()
    literal = _render_literal(value, original, kind, suffixes=False)
    try:
        node[index] = tomlkit.value(literal)
    except TOMLKitError as exc:
        raise ValueError(f"cannot write {literal} at key {key!r}: {exc}") from None
    return tomlkit.dumps(document)


_YAML_PREFIX = re.compile(r"(?:[&!]\S*\s+)*")  # an anchor (&lr) or a tag (!!float) before the scalar


def _yaml_span(text: str, key: str) -> tuple[int, int]:
    """Start and end of the scalar at dotted ``key``, as PyYAML's composer marks it."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    for part in _parts(key):
        if isinstance(node, yaml.MappingNode):
            # The last of duplicate keys, as safe_load keeps it.
            found = [v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part]
            if not found:
                merged = any(k.tag == "tag:yaml.org,2002:merge" for k, _ in node.value)
                raise ValueError(f"{key!r} comes from a merge (<<): declare the key where it is written" if merged else f"no value at key {key!r}")
            node = found[-1]
        elif isinstance(node, yaml.SequenceNode) and part.lstrip("-").isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
        else:
            raise ValueError(f"no value at key {key!r}")
    if not isinstance(node, yaml.ScalarNode) or node.style not in (None, "'", '"'):
        raise ValueError(f"{key!r} is not a one-line scalar (block scalars cannot be rewritten)")
    start, end = node.start_mark.index, node.end_mark.index
    start += _YAML_PREFIX.match(text, start, end).end() - start  # type: ignore[union-attr]
    if "\n" in text[start:end]:
        raise ValueError(f"{key!r} spans lines: only one-line values can be rewritten")
    return start, end


def _yaml_literal(value: Any, original: str, kind: str) -> str:
    new = _render_literal(value, original, kind, suffixes=False)
    if isinstance(value, str) and original[:1] not in ("'", '"'):
        # A plain scalar that would read back as something else (yes, 1.0, a: b) gets quotes.
        try:
            same = yaml.safe_load(f"x: {new}") == {"x": value}
        except yaml.YAMLError:
            same = False
        return new if same else json.dumps(value, ensure_ascii=False)
    return new


_JSON_DECODER = json.JSONDecoder()


def _json_span(text: str, key: str) -> tuple[int, int]:
    """Start and end of the value at dotted ``key`` in a JSON text (the last of duplicate keys)."""
    pos = _skip_space(text, 0)
    for part in _parts(key):
        found: int | None = None
        if text.startswith("{", pos):
            pos = _skip_space(text, pos + 1)
            while not text.startswith("}", pos):
                name, pos = json.decoder.scanstring(text, pos + 1)  # type: ignore[attr-defined]  # past the closing quote
                pos = _skip_space(text, _skip_space(text, pos) + 1)  # past the colon
                if name == part:
                    found = pos
                pos = _skip_value(text, pos)
        elif text.startswith("[", pos) and part.isdigit():
            pos = _skip_space(text, pos + 1)
            index = 0
            while not text.startswith("]", pos):
                if index == int(part):
                    found = pos
                pos = _skip_value(text, pos)
                index += 1
        if found is None:
            raise ValueError(f"no value at key {key!r}")
        pos = found
    _, end = _JSON_DECODER.raw_decode(text, pos)
    return pos, end


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\n\r":
        pos += 1
    return pos


def _skip_value(text: str, pos: int) -> int:
    """Past the value at ``pos``, the space after it and a comma."""
    _, pos = _JSON_DECODER.raw_decode(text, pos)
    pos = _skip_space(text, pos)
    return _skip_space(text, pos + 1) if text.startswith(",", pos) else pos


# ---------------------------------------------------------------- public API


def discover_params(
    worktree: Path, decls: Sequence[ParamDecl], scope_files: Sequence[str], markers: bool = True
) -> list[Param]:
    """All parameters of the champion checkout: declared ones first, then markers in scope order.

    Raises ValueError (naming file and line) for a parameter that cannot be used, and for a name
    that appears twice: silently tuning only one of two ``lr`` literals would mislead the user.
    """
    in_scope = set(scope_files)
    params = [_declared(worktree, decl, in_scope) for decl in decls]
    if markers:
        for file in scope_files:
            text = _read_text(worktree / file)
            if text is not None:
                params.extend(scan_markers(file, text))
    seen: dict[str, Param] = {}
    for param in params:
        if param.name in seen:
            first = seen[param.name]
            where = f"{param.file}:{param.line}" if param.line else param.file
            before = f"line {first.line}" if first.line else "[proposer].params"
            raise ValueError(f"{where}: parameter {param.name!r} is defined twice (also at {before})")
        seen[param.name] = param
    marked = {(p.file, p.line) for p in params if p.source == "marker"}
    for param in params:
        if param.source == "declared":
            line = _declared_line(worktree, param)
            if (param.file, line) in marked:
                # Two params on one literal: each trial would write one and silently lose the other.
                raise ValueError(f"{param.file}:{line}: {param.key!r} is both marked and declared in [proposer].params; use one of the two")
    return params


def _declared_line(worktree: Path, param: Param) -> int:
    """The line a declared value is written on: the one line a probe edit changes.

    The probe also proves, before the first trial, that the value can be rewritten in place.
    """
    text = (worktree / param.file).read_bytes().decode("utf-8")
    value = param.value
    probe = (not value) if isinstance(value, bool) else value + 1 if isinstance(value, (int, float)) else f"{value}x"
    try:
        edited = _set_value(_format_of(param.file), text, param.key, probe, param.spec.kind)
    except (ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"{param.file} (key {param.key!r} in [proposer].params): cannot rewrite it: {exc}") from None
    before, after = text.split("\n"), edited.split("\n")
    return next((number for number, (a, b) in enumerate(zip(before, after), start=1) if a != b), 0)


def current_values(params: Sequence[Param]) -> dict[str, Any]:
    """Name -> current value, e.g. to seed a sampler with the champion."""
    return {param.name: param.value for param in params}


def render_edits(worktree: Path, params: Sequence[Param], values: dict[str, Any]) -> dict[str, str]:
    """Path -> new full text for every file that holds a parameter, with ``values`` written in.

    Files whose values do not change come back unchanged (a proposal is never empty). Params
    missing from ``values`` keep their current value. Raises ValueError if a file changed since
    discovery or no longer parses after the edit.
    """
    by_file: dict[str, list[Param]] = {}
    for param in params:
        by_file.setdefault(param.file, []).append(param)
    edits: dict[str, str] = {}
    for file, file_params in by_file.items():
        original = (worktree / file).read_bytes().decode("utf-8")  # bytes: keep CRLF as it is
        text = original
        changed = [p for p in file_params if p.name in values and normalize(values[p.name], p.spec) != p.value]
        lines = text.split("\n")
        for param in (p for p in changed if p.source == "marker"):
            line = lines[param.line - 1]
            marker = _MARKER.search(line)
            code = line[: marker.start()] if marker else ""
            match = _DEFINE.search(code) or _ASSIGN.search(code)
            if not match or match.group("lit") != param.literal:
                raise ValueError(f"{file}:{param.line}: the file changed since its parameters were read")
            new = _render_literal(normalize(values[param.name], param.spec), param.literal, param.spec.kind)
            lines[param.line - 1] = line[: match.start("lit")] + new + line[match.end("lit") :]
        text = "\n".join(lines)
        declared = [p for p in changed if p.source == "declared"]
        if declared:
            fmt = _format_of(file)
            try:
                for param in declared:
                    text = _set_value(fmt, text, param.key, normalize(values[param.name], param.spec), param.spec.kind)
            except (ValueError, yaml.YAMLError) as exc:
                raise ValueError(f"{file}: {exc}") from None
        if text != original:
            _check_parses(file, text, {p.key: normalize(values[p.name], p.spec) for p in declared})
        edits[file] = text
    return edits


def _check_parses(file: str, text: str, expected: dict[str, Any]) -> None:
    """Re-read an edited TOML/JSON/YAML file: it must parse and hold the values just written."""
    fmt = _STRUCTURED.get(Path(file).suffix.lower())
    if fmt is None:
        return
    try:
        data = _load(fmt, text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"{file}: the edited file no longer parses: {exc}") from None
    for key, value in expected.items():
        got = _get(data, key)
        if got != value:
            raise ValueError(f"{file}: wrote {key} = {value!r} but read back {got!r}")
