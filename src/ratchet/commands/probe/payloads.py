"""What the attacks put in the scope: the Python that runs once per process and announces
itself, the pieces it is made of, and the fake number it prints."""

from __future__ import annotations

import ast
import json
import math
import re
import textwrap
from typing import Any

from ratchet.config import Parser


def attack_code(token: str, body: str, mark_stream: str) -> str:
    """The attack as a block of Python that runs once per process, announcing itself."""
    indented = textwrap.indent(body.rstrip() + "\n", "    ")
    return (
        f"def _ratchet_probe_{token}():\n"
        "    import builtins, sys\n"
        f"    if getattr(builtins, '_ratchet_probe_{token}', False):\n"
        "        return\n"
        f"    builtins._ratchet_probe_{token} = True\n"
        "    def say(what):\n"
        "        try:\n"
        f"            stream = sys.{mark_stream} or sys.stderr\n"
        f"            stream.write('ratchet-probe-{token}: ' + what + '\\n')\n"
        "            stream.flush()\n"
        "        except Exception:\n"
        "            pass\n"
        "    say('ran')\n"
        f"{indented}"
        f"_ratchet_probe_{token}()\n"
        f"del _ratchet_probe_{token}\n"
    )


def write_code(path: str, mode: str, text: str) -> str:
    return textwrap.dedent(f"""\
        try:
            with open({path!r}, {mode!r}) as handle:
                handle.write({text!r})
            say("wrote")
        except OSError as exc:
            say("refused " + (exc.strerror or type(exc).__name__))
    """)


def read_code(paths: list[str], labels: list[str]) -> str:
    return textwrap.dedent(f"""\
        import os
        for label, path in zip({labels!r}, {paths!r}):
            try:
                if os.path.isdir(path):
                    os.listdir(path)
                else:
                    with open(path, "rb") as handle:
                        handle.read(1)
                say("read-" + label)
            except OSError as exc:
                say("hidden-" + label)
    """)


def insert(source: str, code: str) -> str | None:
    """``source`` with ``code`` after its docstring and ``from __future__`` imports (they must
    stay first), or None when it does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    lines = source.splitlines(keepends=True)
    after = 0
    body = tree.body
    index = 0
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        after, index = body[0].end_lineno or 0, 1
    while index < len(body) and isinstance(body[index], ast.ImportFrom) and body[index].module == "__future__":  # type: ignore[attr-defined]
        after, index = body[index].end_lineno or 0, index + 1
    if after == 0:  # keep a shebang and an encoding line first
        while after < min(2, len(lines)) and lines[after].startswith("#"):
            after += 1
    head = "".join(lines[:after])
    if head and not head.endswith("\n"):
        head += "\n"
    return head + code + "".join(lines[after:])


# ---------------------------------------------------------------- the fake number


def fake_texts(value: float, direction: str) -> list[str]:
    """Ways to write a number far better than ``value``: decimals, short, integer."""
    if direction == "minimize":
        good = value / 1000 if value > 0 else value - 1000 * max(1.0, abs(value))
        whole = 0 if value >= 1 else math.floor(good) - (1 if value <= 0 else 0)
    else:
        good = value * 1000 if value > 0 else value + 1000 * max(1.0, abs(value))
        whole = math.ceil(good) + 1
    texts = [f"{good:.12f}".rstrip("0").rstrip("."), f"{good:.6g}", f"{good:.4f}", str(whole), f"{float(whole):.1f}"]
    better = [t for t in dict.fromkeys(texts) if (float(t) < value if direction == "minimize" else float(t) > value)]
    return better


def fake_line(parser: Parser, name: str, real_output: str, text: str) -> str | None:
    kind = parser.parser_kind
    if kind == "regex":
        assert parser.regex is not None
        matches = [m for m in re.finditer(parser.regex, real_output, re.MULTILINE) if m.start(1) >= 0]
        if not matches:
            return None
        match = matches[-1]
        start = real_output.rfind("\n", 0, match.start()) + 1
        end = real_output.find("\n", match.end())
        line = real_output[start : end if end >= 0 else len(real_output)]
        return line[: match.start(1) - start] + text + line[match.end(1) - start :]
    if kind == "json":
        assert parser.json_key is not None
        node: Any = "FAKE-NUMBER"
        for part in reversed(parser.json_key.split(".")):
            node = {part: node}
        return json.dumps(node).replace('"FAKE-NUMBER"', text)
    return f"{name}: {text}"
