"""``ratchet mcp``: ratchet as a coding agent's referee, over MCP on stdio (the official SDK, v2).

The agent edits the checkout and calls ``try``; ratchet measures, keeps or discards, records.
Tools: ``status``, ``history``, ``show``, ``try``, ``context``. Resources: ``ratchet://brief``
and ``ratchet://ledger``. Everything shown is built by :mod:`ratchet.report.agent_view` (the brief
by :mod:`ratchet.commands.context`), so the holdout never reaches the agent. Errors the model should read are ``ToolError``s; stdout
carries nothing but the protocol (the loop's messages go to stderr).
"""

from __future__ import annotations

import inspect
import json
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, TypeVar

from pydantic import BaseModel, Field
from rich.console import Console

from ratchet._version import __version__
from ratchet.commands.context import agent_context
from ratchet.commands.referee import Referee, TryRefused, TryReport
from ratchet.config import CONFIG_FILE, Config, ConfigError, load_config
from ratchet.report.agent_view import AgentRow, ExperimentDetail, RunStatus
from ratchet.report.terminal import Display
from ratchet.workspace.git import GitError

if TYPE_CHECKING:
    from mcp.server import MCPServer
    from mcp.server.mcpserver.exceptions import ResourceError, ToolError
    from mcp_types import ToolAnnotations

T = TypeVar("T")

INSTRUCTIONS = """\
ratchet is the referee of this project's experiments. Make ONE change inside the scope, then call
`try` with a one-line hypothesis: ratchet measures it with a frozen harness and keeps it (a commit
on the run branch; your working tree moves to it) or discards it (your working tree goes back to
the champion). Never touch the harness or files outside the scope. Never stop to ask: read the
verdict and the history, pick the next idea, try again. `context` shows the brief, the scope and
the history; `history` and `show` the ledger.
"""

CONTEXT_HINT = "none: give the hypothesis to the `try` tool"


class MissingMCP(Exception):
    """The MCP SDK is not installed (one line for the user)."""


class History(BaseModel):
    run: str
    metric: str
    direction: str
    omitted: int  # older experiments not listed
    experiments: list[AgentRow]


def _sdk() -> tuple[type[MCPServer], type[ToolError], type[ResourceError], type[ToolAnnotations]]:
    try:
        from mcp.server import MCPServer
        from mcp.server.mcpserver.exceptions import ResourceError, ToolError
        from mcp_types import ToolAnnotations
    except ImportError:
        raise MissingMCP(
            "`ratchet mcp` needs the MCP SDK: pip install 'ratchet[agent]' (or pip install 'mcp>=2,<3')"
        ) from None
    return MCPServer, ToolError, ResourceError, ToolAnnotations


def create_server(root: Path, config_path: Path | None = None, *, display: Display | None = None) -> "MCPServer":
    """An MCP server judging changes to the repository at ``root`` (its config is read at every call)."""
    MCPServer, ToolError, ResourceError, ToolAnnotations = _sdk()
    config_file = config_path or root / CONFIG_FILE
    # The loop's progress (baseline, calibration) goes to stderr: stdout is the protocol's.
    shown = display or Display(Console(stderr=True, highlight=False, soft_wrap=True))
    one_try = threading.Lock()
    server = MCPServer(name="ratchet", version=__version__, instructions=INSTRUCTIONS)
    reading = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
    # `try` rewrites the working tree's scope files (to the champion, kept or not): an agent's
    # uncommitted edits there are replaced, so a client should ask before calling it.
    judging = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)

    def tool(annotations: Any, name: str | None = None) -> Callable[[Any], Any]:
        # The SDK sends a docstring as it is, indentation and line breaks included.
        def register(fn: Any) -> Any:
            return server.tool(name=name, description=_prose(fn.__doc__), annotations=annotations)(fn)

        return register

    def config(error: type[Exception] = ToolError) -> Config:
        try:
            return load_config(config_file)
        except ConfigError as exc:
            raise error(str(exc)) from None

    def referee(error: type[Exception] = ToolError) -> Referee:
        return Referee(root, config(error), display=shown, config_path=config_file)

    @tool(reading)
    def status() -> RunStatus:
        """Where the run stands: champion and baseline metric, verdict counts, the last experiment,
        and whether a `ratchet run` holds it right now."""
        return _reading(lambda: referee().view.status(), ToolError)

    @tool(reading)
    def history(
        last: Annotated[int, Field(ge=0, description="How many of the newest experiments to list; 0 lists them all.")] = 20,
    ) -> History:
        """The run's experiments, oldest first (the last `last` ones; 0 for all): id, verdict,
        metric, change against the champion of its time, hypothesis, commit."""
        judge = referee()
        rows = _reading(lambda: judge.view.history(), ToolError)
        shown_rows = rows[-last:] if last > 0 else rows
        return History(
            run=judge.view.run, metric=judge.config.metric.name, direction=judge.config.metric.direction,
            omitted=len(rows) - len(shown_rows), experiments=shown_rows,
        )  # fmt: skip

    @tool(reading)
    def show(
        experiment: Annotated[int, Field(ge=0, description="The experiment's id, as `history` lists it (0 is the baseline).")],
    ) -> ExperimentDetail:
        """One experiment in full: hypothesis, verdict and its reason, metric, guards, the
        measurement's statistics, its diff and the tail of the metric command's output."""
        judge = referee()
        found = _reading(lambda: judge.view.show(experiment), ToolError)
        if found is None:
            raise ToolError(f"run {judge.view.run!r} has no experiment {experiment} (see `history`)")
        return found

    @tool(judging, name="try")
    def try_(
        hypothesis: Annotated[str, Field(description="One line: what the change does and why it should improve the metric; recorded in the ledger.")],
        patch: Annotated[
            str | None,
            Field(description="A unified diff against the champion to judge instead of the working tree's changes (as `git diff` prints it); omit it to judge the working tree."),
        ] = None,
        again: Annotated[
            bool,
            Field(description="Measure the change even if the ledger already measured the same change on this champion (refused as invalid otherwise, so a lucky draw cannot be re-rolled)."),
        ] = False,
    ) -> TryReport:
        """Judge one change against the run's champion. Without `patch`: the working tree's
        changes inside the scope. With `patch`: that unified diff (against the champion).
        ratchet measures it with the run's verdict policy and keeps it (a commit on the run
        branch; exit_code 0) or discards it (1); a change to the harness or outside the scope is
        invalid (2); a patch that does not apply is refused, and nothing is recorded. Afterwards
        the working tree's scope files are the champion's: uncommitted edits there are replaced
        (unless a patch was given while they had changes of their own). Takes as long as the
        measurement (the first try measures the baseline first)."""
        if not one_try.acquire(blocking=False):
            raise ToolError("another try is being measured; wait for its verdict, then try again")
        try:
            return referee().try_change(hypothesis, patch, again=again)
        except TryRefused as exc:
            raise ToolError(str(exc)) from None
        finally:
            one_try.release()

    @tool(reading)
    def context() -> str:
        """The brief as ratchet's LLM proposer sees it: program.md, the metric and the champion,
        the scope's globs and files, the history of experiments, the rules; then the scope's
        files at the champion."""
        return _reading(lambda: agent_context(referee().view, CONTEXT_HINT), ToolError)

    @server.resource("ratchet://brief", name="brief", title="The brief", mime_type="text/markdown",
                     description="What a proposer is told: program.md, metric, scope, history, rules, the scope's files.")  # fmt: skip
    def brief() -> str:
        return _reading(lambda: agent_context(referee(ResourceError).view, CONTEXT_HINT), ResourceError)

    @server.resource("ratchet://ledger", name="ledger", title="The ledger", mime_type="application/json",
                     description="Every experiment of the run: id, verdict, metric, change, hypothesis, commit.")  # fmt: skip
    def ledger() -> str:
        rows = _reading(lambda: referee(ResourceError).view.history(), ResourceError)
        return json.dumps([row.model_dump() for row in rows], indent=1)

    return server


def _prose(doc: str | None) -> str:
    """A docstring as paragraphs of plain text: no indentation, no hard line breaks."""
    paragraphs = inspect.cleandoc(doc or "").split("\n\n")
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs)


def _reading(read: Callable[[], T], error: type[Exception]) -> T:
    try:
        return read()
    except GitError as exc:
        raise error(str(exc)) from None


def serve(root: Path, config_path: Path | None = None) -> None:
    """Serve over stdio until the client closes it."""
    server = create_server(root, config_path)
    try:
        server.run("stdio")
    except KeyboardInterrupt:  # pragma: no cover - the client normally closes stdin
        pass
    sys.stderr.flush()
