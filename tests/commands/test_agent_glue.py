"""`ratchet init --agent`: the rules and the MCP configuration a coding agent needs."""

from __future__ import annotations

import asyncio
import json
import os
import tomllib
from pathlib import Path

from conftest import make_repo, run_cli
from mcp import Client
from mcp.client.stdio import StdioServerParameters


def fresh(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "r", {"value.txt": "10\n"})


def test_claude(tmp_path: Path):
    repo = fresh(tmp_path)
    (repo / ".mcp.json").write_text(json.dumps({"mcpServers": {"other": {"command": "other-server"}}}))
    result = run_cli(repo, "init", "--agent", "claude")
    assert result.returncode == 0, result.stderr
    assert (repo / "ratchet.toml").exists() and (repo / "program.md").exists()
    skill = (repo / ".claude" / "skills" / "ratchet" / "SKILL.md").read_text()
    assert skill.startswith("---\nname: ratchet\ndescription: ")
    for rule in ("One change at a time", "ratchet try", "Never touch the harness", "Never stop to ask"):
        assert rule in skill
    servers = json.loads((repo / ".mcp.json").read_text())["mcpServers"]
    assert servers["other"] == {"command": "other-server"}  # the user's servers stay
    assert servers["ratchet"]["type"] == "stdio" and servers["ratchet"]["args"][-1] == "mcp"
    assert "added the ratchet server to .mcp.json" in result.stdout

    # Again: nothing is overwritten without --force.
    (repo / ".claude" / "skills" / "ratchet" / "SKILL.md").write_text("my own rules\n")
    (repo / "ratchet.toml").write_text("# mine\n")
    again = run_cli(repo, "init", "--agent", "claude")
    assert again.returncode == 0, again.stderr
    assert "kept ratchet.toml" in again.stdout and "kept .claude/skills/ratchet/SKILL.md" in again.stdout
    assert (repo / ".claude" / "skills" / "ratchet" / "SKILL.md").read_text() == "my own rules\n"
    assert (repo / "ratchet.toml").read_text() == "# mine\n"
    forced = run_cli(repo, "init", "--agent", "claude", "--force")
    assert forced.returncode == 0 and "Never stop to ask" in (repo / ".claude" / "skills" / "ratchet" / "SKILL.md").read_text()


def test_codex(tmp_path: Path):
    repo = fresh(tmp_path)
    (repo / ".codex").mkdir()
    (repo / ".codex" / "config.toml").write_text('model = "o4"\n\n[mcp_servers.other]\ncommand = "x"\n')
    result = run_cli(repo, "init", "--agent", "codex")
    assert result.returncode == 0, result.stderr
    assert "name: ratchet" in (repo / ".agents" / "skills" / "ratchet" / "SKILL.md").read_text()
    config = tomllib.loads((repo / ".codex" / "config.toml").read_text())
    assert config["model"] == "o4" and config["mcp_servers"]["other"] == {"command": "x"}
    assert config["mcp_servers"]["ratchet"]["args"][-1] == "mcp" and config["mcp_servers"]["ratchet"]["tool_timeout_sec"] > 60
    # --force replaces ratchet's table, once, and keeps the rest.
    assert run_cli(repo, "init", "--agent", "codex").stdout.count("kept .codex/config.toml") == 1
    forced = run_cli(repo, "init", "--agent", "codex", "--force")
    assert forced.returncode == 0, forced.stderr
    text = (repo / ".codex" / "config.toml").read_text()
    assert text.count("[mcp_servers.ratchet]") == 1 and tomllib.loads(text)["mcp_servers"]["other"] == {"command": "x"}


def test_generic_config_starts_a_working_server(tmp_path: Path):
    repo = fresh(tmp_path)
    result = run_cli(repo, "init", "--agent", "generic")
    assert result.returncode == 0, result.stderr
    assert "Never stop to ask" in (repo / "ratchet-agent.md").read_text()
    server = json.loads((repo / "ratchet-mcp.json").read_text())["mcpServers"]["ratchet"]
    # What an agent would do with the snippet: start it in the repository and list the tools.
    params = StdioServerParameters(command=server["command"], args=server["args"], cwd=str(repo), env=dict(os.environ))

    async def tools() -> set[str]:
        async with Client(params, read_timeout_seconds=60) as client:
            return {tool.name for tool in (await client.list_tools()).tools}

    assert {"status", "history", "show", "try", "context"} <= asyncio.run(tools())


def test_unknown_agent(tmp_path: Path):
    repo = fresh(tmp_path)
    result = run_cli(repo, "init", "--agent", "vim")
    assert result.returncode == 2
    assert result.stderr.strip() == "ratchet: error: --agent: unknown agent 'vim'; expected one of: claude, codex, generic"
    assert not (repo / "ratchet.toml").exists()
