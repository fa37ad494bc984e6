"""`ratchet mcp`: an MCP session with the SDK's own client, in process and over stdio."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

from conftest import NUMBER_CONFIG, sh
from mcp import Client  # the `test` extra installs the MCP SDK
from mcp.client.stdio import StdioServerParameters

from ratchet.loop import run_lock
from ratchet.mcp_server import create_server

TOOLS = {"status", "history", "show", "try", "context"}


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


async def session(client: Client, repo: Path) -> dict[str, Any]:
    """The must-show: list tools, try a change, see it kept, see it in history."""
    tools = await client.list_tools()
    seen: dict[str, Any] = {"tools": {tool.name for tool in tools.tools}, "server": client.server_info}
    (repo / "value.txt").write_text("7\n")
    tried = await client.call_tool("try", {"hypothesis": "seven is smaller than ten"})
    assert not tried.is_error, text_of(tried)
    seen["try"] = tried.structured_content
    history = await client.call_tool("history", {})
    assert not history.is_error, text_of(history)
    seen["history"] = history.structured_content
    return seen


def check_session(seen: dict[str, Any], repo: Path) -> None:
    assert TOOLS <= seen["tools"]
    assert seen["server"].name == "ratchet" and seen["server"].version == version("ratchet")
    report = seen["try"]
    assert report["verdict"] == "keep" and report["kept"] and report["exit_code"] == 0
    assert report["metric"] == 7 and report["champion_before"] == 10 and report["change"] == "-30.00%"
    assert report["commit"] == sh(repo, "git", "rev-parse", "ratchet/t").strip()
    rows = seen["history"]["experiments"]
    assert [(row["id"], row["verdict"]) for row in rows] == [(0, "baseline"), (1, "keep")]
    assert rows[1]["hypothesis"] == "seven is smaller than ten" and rows[1]["commit"] == report["commit"]
    # The working tree is at the new champion; the user's branch is untouched.
    assert (repo / "value.txt").read_text() == "7\n"
    assert sh(repo, "git", "symbolic-ref", "--short", "HEAD").strip() == "main"
    assert sh(repo, "git", "show", "main:value.txt") == "10\n"


def test_in_process_session(number_repo):
    repo = number_repo()

    async def main() -> dict[str, Any]:
        async with Client(create_server(repo)) as client:
            seen = await session(client, repo)
            # The other tools, and the errors a model reads.
            status = await client.call_tool("status", {})
            seen["status"] = status.structured_content
            show = await client.call_tool("show", {"experiment": 1})
            seen["show"] = show.structured_content
            missing = await client.call_tool("show", {"experiment": 99})
            seen["missing"] = (missing.is_error, text_of(missing))
            nothing = await client.call_tool("try", {"hypothesis": "no change at all"})
            seen["nothing"] = (nothing.is_error, text_of(nothing))
            (repo / "value.txt").write_text("12\n")
            worse = await client.call_tool("try", {"hypothesis": "twelve"})
            seen["worse"] = worse.structured_content
            # Patches that are no diff, or not against the champion: refused, never recorded.
            seen["refused"] = []
            for patch in ("this is not a diff", "--- a/value.txt\n+++ b/value.txt\n@@ -1 +1 @@\n-10\n+3\n"):
                refused = await client.call_tool("try", {"hypothesis": "a garbage patch", "patch": patch})
                seen["refused"].append((refused.is_error, text_of(refused)))
            context = await client.call_tool("context", {})
            seen["context"] = text_of(context)
            resources = await client.list_resources()
            seen["resources"] = {str(r.uri) for r in resources.resources}
            ledger = await client.read_resource("ratchet://ledger")
            seen["ledger"] = json.loads(ledger.contents[0].text)
            return seen

    seen = asyncio.run(main())
    check_session(seen, repo)
    assert seen["status"]["champion"] == 7 and seen["status"]["baseline"] == 10 and not seen["status"]["active"]
    assert "+7" in seen["show"]["diff"] and seen["show"]["verdict"] == "keep"
    assert seen["missing"][0] and seen["missing"][1].endswith("run 't' has no experiment 99 (see `history`)")
    assert seen["nothing"][0] and "nothing to try" in seen["nothing"][1]
    assert seen["worse"]["verdict"] == "discard" and seen["worse"]["exit_code"] == 1
    assert (repo / "value.txt").read_text() == "7\n"  # back at the champion
    assert "Make the number small." in seen["context"] and "- value.txt" in seen["context"]
    assert "| 2 | discard | 12 | twelve |" in seen["context"]
    assert {"ratchet://brief", "ratchet://ledger"} <= seen["resources"]
    assert [row["verdict"] for row in seen["ledger"]] == ["baseline", "keep", "discard"]  # no row for the refused
    champion = sh(repo, "git", "rev-parse", "--short=7", "ratchet/t").strip()
    assert seen["refused"][0][0] and seen["refused"][0][1].endswith(
        f"the patch does not apply to the champion ({champion}): No valid patches in input (allow with \"--allow-empty\")"
    )
    assert seen["refused"][1][0] and "value.txt: patch does not apply" in seen["refused"][1][1], seen["refused"][1]
    assert (repo / "value.txt").read_text() == "7\n"


def test_tools_describe_themselves(number_repo):
    """What a client shows its user and model: descriptions of every input, hints on what each tool does."""
    repo = number_repo()

    async def main() -> list[Any]:
        async with Client(create_server(repo)) as client:
            return (await client.list_tools()).tools

    tools = {tool.name: tool for tool in asyncio.run(main())}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description and "\n " not in tool.description and "  " not in tool.description, tool.description
        for name, schema in tool.input_schema.get("properties", {}).items():
            assert len(schema.get("description", "")) > 20, (tool.name, name)
        assert tool.annotations is not None and tool.annotations.open_world_hint is False
    assert tools["try"].annotations.destructive_hint is True and tools["try"].annotations.read_only_hint is False
    assert all(tools[name].annotations.read_only_hint is True for name in TOOLS - {"try"})
    assert set(tools["try"].input_schema["properties"]) == {"hypothesis", "patch", "again"}


def test_try_refused_while_a_run_holds_the_lock(number_repo):
    repo = number_repo()
    (repo / "value.txt").write_text("3\n")

    async def main() -> tuple[bool, str]:
        async with Client(create_server(repo)) as client:
            with run_lock(repo / ".ratchet", "t"):
                result = await client.call_tool("try", {"hypothesis": "three"})
            return result.is_error, text_of(result)

    is_error, message = asyncio.run(main())
    assert is_error and "already running" in message
    assert (repo / "value.txt").read_text() == "3\n"


def test_config_errors_reach_the_model(number_repo):
    repo = number_repo()
    (repo / "ratchet.toml").write_text("[scope]\nmutable = []\n")

    async def main() -> tuple[bool, str]:
        async with Client(create_server(repo)) as client:
            result = await client.call_tool("status", {})
            return result.is_error, text_of(result)

    is_error, message = asyncio.run(main())
    assert is_error and f"{repo / 'ratchet.toml'}: scope.mutable" in message, message


def test_the_holdout_never_reaches_the_model(number_repo):
    config = NUMBER_CONFIG.replace(
        "[budget]",
        "[holdout]\ncommand = \"{python} -c \\\"print(123456.75 - float(open('value.txt').read()))\\\"\"\n"
        "last_number = true\ndirection = \"minimize\"\n[budget]",
    )
    repo = number_repo(config)

    async def main() -> list[str]:
        async with Client(create_server(repo)) as client:
            (repo / "value.txt").write_text("7\n")
            texts = [text_of(await client.call_tool("try", {"hypothesis": "overfit"}))]
            for name, args in (("show", {"experiment": 1}), ("show", {"experiment": 0}), ("history", {}), ("status", {}), ("context", {})):
                texts.append(text_of(await client.call_tool(name, args)))
            texts.append((await client.read_resource("ratchet://ledger")).contents[0].text)
            return texts

    texts = asyncio.run(main())
    assert '"verdict":"overfit"' in texts[0].replace(" ", "")
    for text in texts:
        # 123446.75 (baseline) and 123449.75 (candidate): digits no timestamp or sha would carry.
        assert "123446" not in text and "123449" not in text, text


def test_stdio_session(number_repo):
    """`ratchet mcp` as a coding agent starts it: a subprocess in the repository, stdio."""
    repo = number_repo()
    # A stdio child inherits only a few variables: pass the environment through.
    params = StdioServerParameters(command=sys.executable, args=["-m", "ratchet", "mcp"], cwd=str(repo), env=dict(os.environ))

    async def main() -> dict[str, Any]:
        async with Client(params, read_timeout_seconds=120) as client:
            return await session(client, repo)

    seen = asyncio.run(main())
    check_session(seen, repo)


def test_without_the_sdk_a_clear_line(number_repo):
    import subprocess

    repo = number_repo()
    # The SDK made unimportable, as on an install without the `agent` extra.
    code = "import sys; sys.modules['mcp'] = None; sys.argv = ['ratchet', 'mcp']; from ratchet.cli import main; main()"
    result = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "ratchet: error: `ratchet mcp` needs the MCP SDK: pip install 'ratchet[agent]' (or pip install 'mcp>=2,<3')"
    )
    assert result.stdout == ""
