"""The llm proposer's answer format: a hypothesis line and SEARCH/REPLACE blocks; parsing and applying.

An answer looks like::

    HYPOTHESIS: cache the parsed template, parsing dominates the profile

    src/render.py
    <<<<<<< SEARCH
        tree = parse(source)
    =======
        tree = _cache.get(source) or parse(source)
    >>>>>>> REPLACE

A small file may instead be replaced whole (``<<<<<<< FILE`` ... ``>>>>>>> FILE``), and an
empty SEARCH section creates a new file. A block is applied with an exact line match first,
then a whitespace-tolerant one (runs of blanks collapsed, indentation re-based), and must match
exactly one place. What fails is reported per block, so the model can repair its answer once.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_HYPOTHESIS = re.compile(r"^[\s*_#>-]*hypothesis[*_]*\s*:[*_\s]*(?P<text>.+?)[*_\s]*$", re.IGNORECASE)
_SEARCH = re.compile(r"^\s*<{5,9}\s*SEARCH\s*$")
_DIVIDER = re.compile(r"^\s*={5,9}\s*$")
_REPLACE = re.compile(r"^\s*>{5,9}\s*REPLACE\s*$")
_FILE_START = re.compile(r"^\s*<{5,9}\s*FILE\s*$")
_FILE_END = re.compile(r"^\s*>{5,9}\s*FILE\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_LOOKBACK = 3  # lines above a block searched for its file name

MAX_HYPOTHESIS = 300


class MalformedAnswer(ValueError):
    """The answer does not follow the format (no blocks, an unclosed block, no file name)."""


class EditError(ValueError):
    """Blocks that parse but cannot be applied; the message names each one and why."""


@dataclass(frozen=True)
class Block:
    path: str
    search: tuple[str, ...] | None  # lines to find; None: the whole file is replaced
    replace: tuple[str, ...]


@dataclass(frozen=True)
class Answer:
    hypothesis: str
    blocks: tuple[Block, ...]


# ---------------------------------------------------------------- parsing


def parse_answer(text: str) -> Answer:
    lines = text.splitlines()
    hypothesis = ""
    blocks: list[Block] = []
    last_path: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if not hypothesis and (match := _HYPOTHESIS.match(line)):
            hypothesis = match.group("text")
            i += 1
            continue
        whole = bool(_FILE_START.match(line))
        if whole or _SEARCH.match(line):
            path = _path_before(lines, i) or last_path
            if not path:
                raise MalformedAnswer(f"line {i + 1}: a block with no file name on the line before it")
            block, i = (_whole_file(lines, i, path) if whole else _search_replace(lines, i, path))
            blocks.append(block)
            last_path = path
            continue
        if _REPLACE.match(line) or _FILE_END.match(line):
            raise MalformedAnswer(f"line {i + 1}: {line.strip()!r} without the block's opening line")
        i += 1
    if not blocks:
        raise MalformedAnswer("the answer holds no SEARCH/REPLACE or FILE block")
    if not hypothesis:
        hypothesis = _first_prose_line(lines)
    if not hypothesis:
        raise MalformedAnswer("the answer has no 'HYPOTHESIS:' line")
    return Answer(" ".join(hypothesis.split())[:MAX_HYPOTHESIS], tuple(blocks))


def _search_replace(lines: list[str], start: int, path: str) -> tuple[Block, int]:
    search: list[str] = []
    j = start + 1
    while j < len(lines) and not _DIVIDER.match(lines[j]):
        if _SEARCH.match(lines[j]) or _REPLACE.match(lines[j]):
            raise MalformedAnswer(f"line {j + 1}: expected ======= between SEARCH and REPLACE")
        search.append(lines[j])
        j += 1
    if j == len(lines):
        raise MalformedAnswer(f"line {start + 1}: a SEARCH block without its ======= line")
    replace: list[str] = []
    j += 1
    while j < len(lines) and not _REPLACE.match(lines[j]):
        if _SEARCH.match(lines[j]) or _DIVIDER.match(lines[j]):
            raise MalformedAnswer(f"line {j + 1}: expected >>>>>>> REPLACE to close the block")
        replace.append(lines[j])
        j += 1
    if j == len(lines):
        raise MalformedAnswer(f"line {start + 1}: a SEARCH block without its >>>>>>> REPLACE line")
    return Block(path, tuple(search), tuple(replace)), j + 1


def _whole_file(lines: list[str], start: int, path: str) -> tuple[Block, int]:
    body: list[str] = []
    j = start + 1
    while j < len(lines) and not _FILE_END.match(lines[j]):
        body.append(lines[j])
        j += 1
    if j == len(lines):
        raise MalformedAnswer(f"line {start + 1}: a FILE block without its >>>>>>> FILE line")
    return Block(path, None, tuple(body)), j + 1


def _path_before(lines: list[str], index: int) -> str | None:
    for j in range(index - 1, max(-1, index - 1 - _LOOKBACK), -1):
        text = lines[j].strip()
        if not text or _FENCE.match(text):
            continue
        if _HYPOTHESIS.match(text) or _REPLACE.match(text) or _FILE_END.match(text):
            return None
        text = re.sub(r"^(#+\s*|file\s*:\s*|path\s*:\s*)", "", text, flags=re.IGNORECASE)
        text = text.strip("*`'\" :")
        return text if text and not re.search(r"\s", text) else None
    return None


def _first_prose_line(lines: list[str]) -> str:
    for line in lines:
        text = line.strip()
        if not text:
            continue
        if _FENCE.match(text) or _SEARCH.match(text) or _FILE_START.match(text):
            return ""
        return text.strip("*#> ")
    return ""


# ---------------------------------------------------------------- applying


def apply_blocks(
    blocks: tuple[Block, ...], read: Callable[[str], str | None], whole_file_max_lines: int
) -> dict[str, str]:
    """Path -> new text of every file the blocks touch, the blocks applied in order.

    ``read(path)`` gives a file's current text (None: no such file) and may raise EditError
    for a path it will not read. Raises EditError naming every block that failed.
    """
    texts: dict[str, str | None] = {}
    errors: list[str] = []
    for number, block in enumerate(blocks, start=1):
        try:
            if block.path not in texts:
                texts[block.path] = read(block.path)
            texts[block.path] = _apply(block, texts[block.path], whole_file_max_lines)
        except EditError as exc:
            errors.append(f"block {number} ({block.path}): {exc}")
    if errors:
        raise EditError("\n".join(errors))
    return {path: text for path, text in texts.items() if text is not None}


def _trim_blank(lines: tuple[str, ...]) -> list[str]:
    out = list(lines)
    while out and not out[0].strip():
        out.pop(0)
    while out and not out[-1].strip():
        out.pop()
    return out


def _join(lines: list[str], eol: str, final_newline: bool) -> str:
    return eol.join(lines) + (eol if final_newline and lines else "")


def _apply(block: Block, current: str | None, whole_file_max_lines: int) -> str:
    eol = "\r\n" if current is not None and "\r\n" in current else "\n"
    if block.search is None:
        if current is not None and len(current.splitlines()) > whole_file_max_lines:
            raise EditError(
                f"the file has {len(current.splitlines())} lines, too many to replace whole "
                f"(limit {whole_file_max_lines}); use SEARCH/REPLACE blocks"
            )
        return _join(list(block.replace), eol, True)
    search = _trim_blank(block.search)
    if not search:
        if current is None:
            return _join(list(block.replace), eol, True)
        raise EditError("the SEARCH section is empty but the file exists; quote the lines to change (or use a FILE block)")
    if current is None:
        raise EditError("no such file; to create it, leave the SEARCH section empty")
    lines = current.splitlines()
    final_newline = current.endswith(("\n", "\r"))
    replace = list(block.replace)
    places = _find(lines, search, _exact)
    if not places:
        places = _find(lines, search, _loose)
        if len(places) == 1:
            replace = _reindent(search, lines[places[0] : places[0] + len(search)], replace)
    if len(places) > 1:
        where = ", ".join(str(p + 1) for p in places[:5])
        raise EditError(f"the SEARCH text matches {len(places)} places (lines {where}); add lines around it so it matches one")
    if not places:
        raise EditError("the SEARCH text was not found, not even ignoring whitespace" + _closest(lines, search))
    at = places[0]
    return _join(lines[:at] + replace + lines[at + len(search) :], eol, final_newline)


def _exact(line: str) -> str:
    return line.rstrip("\r")


def _loose(line: str) -> str:
    return " ".join(line.split())


def _find(lines: list[str], search: list[str], key: Callable[[str], str]) -> list[int]:
    wanted = [key(line) for line in search]
    keyed = [key(line) for line in lines]
    n = len(wanted)
    return [i for i in range(len(keyed) - n + 1) if keyed[i] == wanted[0] and keyed[i : i + n] == wanted]


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _reindent(search: list[str], found: list[str], replace: list[str]) -> list[str]:
    """Shift the replacement by the indentation the model got wrong (e.g. a method quoted flush left)."""
    pairs = [(s, f) for s, f in zip(search, found) if s.strip()]
    if not pairs:
        return replace
    wrote, actual = _indent(pairs[0][0]), _indent(pairs[0][1])
    if actual.startswith(wrote):
        extra = actual[len(wrote) :]
        return [extra + line if line.strip() else line for line in replace]
    if wrote.startswith(actual):
        surplus = wrote[len(actual) :]
        return [line.removeprefix(surplus) for line in replace]
    return replace


def _closest(lines: list[str], search: list[str]) -> str:
    """A hint for the repair: the lines of the file that look most like the SEARCH text."""
    first = _loose(next((line for line in search if line.strip()), ""))
    if not first or not lines:
        return ""
    best, best_ratio = 0, 0.0
    for i, line in enumerate(lines[:20000]):
        ratio = difflib.SequenceMatcher(None, first, _loose(line), autojunk=False).quick_ratio()
        if ratio > best_ratio:
            ratio = difflib.SequenceMatcher(None, first, _loose(line), autojunk=False).ratio()
            if ratio > best_ratio:
                best, best_ratio = i, ratio
    if best_ratio < 0.5:
        return ""
    window = lines[best : best + max(len(search), 1) + 2]
    shown = "\n".join(f"{best + 1 + k:5d} | {line}" for k, line in enumerate(window))
    return f"; the closest lines in the file are:\n{shown}"


# ---------------------------------------------------------------- identity of a change


def diff_key(originals: Mapping[str, str | None], edits: Mapping[str, str]) -> str | None:
    """A short hash of what a change removes and adds, file by file (no line numbers).

    Two proposals with the same key are the same change; None for a change that changes nothing.
    """
    digest = hashlib.sha256()
    changed = False
    for path in sorted(edits):
        old = (originals.get(path) or "").splitlines()
        new = edits[path].splitlines()
        lines = [
            line
            for line in difflib.unified_diff(old, new, lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))
        ]
        if lines or (originals.get(path) is None):
            changed = True
            digest.update(f"{path}\0{chr(10).join(lines)}\0".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:16] if changed else None
