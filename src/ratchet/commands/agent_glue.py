"""``ratchet init --agent``: the files a coding agent needs to use ratchet as its referee.

For each agent: an instructions file (a skill where the agent has skills) with the loop's
rules, and the agent's MCP configuration naming ``ratchet mcp``. Nothing that exists is
overwritten without ``force``; a configuration file that exists gets the ratchet server added
beside the servers already there.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ratchet.commands.scaffold import ScaffoldError, write_starter_files
from ratchet.config import CONFIG_FILE

AGENTS = ("claude", "codex", "generic")
SERVER = "ratchet"

_SKILL_FRONTMATTER = """\
---
name: ratchet
description: Improve this project's metric with ratchet as the referee. Make one change at a time inside the scope, submit it with `ratchet try` (or the ratchet MCP tool `try`), read the verdict, go on. Use it to optimize, speed up or tune what ratchet.toml measures, or to run the autoresearch loop.
---

"""


@dataclass(frozen=True)
class Glue:
    instructions: str  # where the rules go
    skill: bool  # with a skill's frontmatter
    mcp_config: str  # where the MCP server is declared
    hint: str  # one line: what to do next


GLUE = {
    "claude": Glue(
        ".claude/skills/ratchet/SKILL.md",
        True,
        ".mcp.json",
        "Start Claude Code here, approve the ratchet MCP server, and ask it to use the ratchet skill.",
    ),
    "codex": Glue(
        ".agents/skills/ratchet/SKILL.md",
        True,
        ".codex/config.toml",
        "Codex reads .codex/config.toml in trusted projects only; elsewhere copy its [mcp_servers.ratchet] "
        "table into ~/.codex/config.toml. Then ask Codex to use the ratchet skill.",
    ),
    "generic": Glue(
        "ratchet-agent.md",
        False,
        "ratchet-mcp.json",
        "Give your agent ratchet-agent.md as its instructions and register the stdio server of ratchet-mcp.json.",
    ),
}


def server_command() -> list[str]:
    """How an agent starts ``ratchet mcp``: the ``ratchet`` on PATH, else this interpreter."""
    if shutil.which("ratchet"):
        return ["ratchet", "mcp"]
    return [sys.executable, "-m", "ratchet", "mcp"]


def instructions(skill: bool) -> str:
    # The rules name the settings, not their values: the file stays true when the scope changes.
    text = (resources.files("ratchet") / "templates" / "agents" / "instructions.md").read_text()
    return (_SKILL_FRONTMATTER + text) if skill else text


def write_agent_files(root: Path, agent: str, *, force: bool = False) -> list[str]:
    """Write the starter files (where none exists yet) and the agent's glue; return what was done, one line each."""
    if agent not in GLUE:
        raise ScaffoldError(f"--agent: unknown agent {agent!r}; expected one of: {', '.join(AGENTS)}")
    glue = GLUE[agent]
    done: list[str] = []
    starters = [root / CONFIG_FILE, root / "program.md"]
    if force or not any(path.exists() for path in starters):
        done += [f"wrote {path.name}" for path in write_starter_files(root, force=force)]
    else:
        done += [f"kept {path.name} (it exists)" for path in starters if path.exists()]
    target = root / glue.instructions
    if target.exists() and not force:
        done.append(f"kept {glue.instructions} (it exists; --force to overwrite)")
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(instructions(glue.skill))
        done.append(f"wrote {glue.instructions}")
    command = server_command()
    if glue.mcp_config.endswith(".toml"):
        done.append(_add_toml_server(root / glue.mcp_config, glue.mcp_config, command, force))
    else:
        done.append(_add_json_server(root / glue.mcp_config, glue.mcp_config, command, force, typed=agent == "claude"))
    done.append(glue.hint)
    return done


def _add_json_server(path: Path, name: str, command: list[str], force: bool, *, typed: bool) -> str:
    entry: dict[str, object] = {"command": command[0], "args": command[1:], "env": {}}
    if typed:
        entry = {"type": "stdio", **entry}  # Claude Code's project scope writes the type
    data: dict[str, object] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ScaffoldError(f"{name} is not valid JSON ({exc}); fix or remove it, then run this again") from None
        if not isinstance(data, dict) or not isinstance(data.get("mcpServers", {}), dict):
            raise ScaffoldError(f"{name} has no mcpServers object; fix or remove it, then run this again")
    servers = data.setdefault("mcpServers", {})
    assert isinstance(servers, dict)
    if SERVER in servers and not force:
        return f"kept {name} (it already declares a {SERVER} server; --force to replace it)"
    verb = "wrote" if not path.exists() else "added the ratchet server to"
    servers[SERVER] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return f"{verb} {name}"


def _toml_table(command: list[str]) -> str:
    return (
        f"[mcp_servers.{SERVER}]\n"
        f"command = {json.dumps(command[0])}\n"
        f"args = {json.dumps(command[1:])}\n"
        "# A try measures the change (baseline first on the first one): give it time.\n"
        "tool_timeout_sec = 3600\n"
    )


def _add_toml_server(path: Path, name: str, command: list[str], force: bool) -> str:
    table = _toml_table(command)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(table)
        return f"wrote {name}"
    text = path.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScaffoldError(f"{name} is not valid TOML ({exc}); fix or remove it, then run this again") from None
    if SERVER in data.get("mcp_servers", {}):
        if not force:
            return f"kept {name} (it already declares mcp_servers.{SERVER}; --force to replace it)"
        text = _without_table(text, f"mcp_servers.{SERVER}")
    path.write_text(text.rstrip("\n") + ("\n\n" if text.strip() else "") + table)
    return f"added the ratchet server to {name}"


def _without_table(text: str, table: str) -> str:
    """``text`` without the TOML table ``[table]`` and its sub-tables (the lines up to the next other table)."""
    header = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        match = header.match(line)
        if match:
            name = match.group(1).replace('"', "")
            skipping = name == table or name.startswith(table + ".")
        if not skipping:
            out.append(line)
    return "".join(out)
