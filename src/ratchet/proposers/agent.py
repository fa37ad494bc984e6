"""The ``agent`` proposer: a headless coding-agent CLI, as a preset over the ``command`` proposer.

The agent edits the candidate worktree in place. Its brief (``agent.j2``) holds what the llm
proposer's prompt holds (program.md, the scope's files, the history, the last failure, the
context commands' output, the plateau strategy) plus the rules: stay in the scope, never touch
the harness, one change per experiment, the hypothesis in a named file. Whatever numbers the
agent reports are ignored; what it spent is read from its output where the CLI says it:

- ``claude``: ``claude -p`` with ``--output-format json`` (tokens and ``total_cost_usd``);
  ``--max-budget-usd`` is set to what is left of a money budget;
- ``codex``: ``codex exec --json`` (tokens from ``turn.completed``; priced with [proposer.prices]);
- ``aider``: ``aider --message-file`` with auto-commits off (its "Tokens: … Cost: …" lines);
- ``gemini``: ``gemini -p`` with ``--output-format json`` (tokens per model; priced);
- ``generic``: your ``command``; it may write its spending to ``$RATCHET_USAGE_FILE``.

In a command line, ``{model}``, ``{args}``, ``{files}`` (the scope's files, quoted) and
``{budget}`` are filled in; everything else is left to the shell. The agent runs like any
command proposer (in the sandbox, with the environment allowlist), plus the network and, by
default, its CLI's key variables and state folder (``env`` and ``writable`` replace those).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.config import AgentProposerSection, CommandProposerSection, SandboxSection
from ratchet.experiment import Experiment
from ratchet.measure import CommandResult
from ratchet.proposers._context import ContextRunner, prompt_variables, read_scope
from ratchet.proposers._prices import cost, price_for
from ratchet.proposers._templates import Templates
from ratchet.proposers.base import (
    BudgetExhausted,
    Proposal,
    ProposalContext,
    ProposerError,
    Usage,
)
from ratchet.proposers.command import CommandProposer, read_usage_file

if TYPE_CHECKING:
    from ratchet.containment import Containment


@dataclass
class AgentReport:
    """What an agent's output says about its run."""

    usage: list[tuple[str | None, int, int]] = field(default_factory=list)  # (model, tokens in, tokens out)
    cost_usd: float | None = None  # when the CLI prices its own run (claude)
    message: str = ""  # its final words (a fallback hypothesis)
    error: str = ""


def _json_objects(text: str) -> list[dict[str, Any]]:
    """The JSON object(s) a CLI printed: the whole output, or one per line (JSONL)."""
    try:
        data = json.loads(text)
        return [data] if isinstance(data, dict) else []
    except ValueError:
        pass
    objects = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict):
                objects.append(data)
    return objects


def _claude(stdout: str) -> AgentReport:
    results = [o for o in _json_objects(stdout) if o.get("type") == "result" or "total_cost_usd" in o or "cost_usd" in o]
    if not results:
        return AgentReport()
    data = results[-1]
    usage = data.get("usage") or {}
    tokens_in = sum(int(usage.get(k) or 0) for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
    cost_usd = data.get("total_cost_usd", data.get("cost_usd"))
    message = str(data.get("result") or "")
    return AgentReport(
        usage=[(None, tokens_in, int(usage.get("output_tokens") or 0))],
        cost_usd=float(cost_usd) if isinstance(cost_usd, (int, float)) else None,
        message=message,
        error=f"{data.get('subtype', 'error')}: {message}" if data.get("is_error") else "",
    )


def _codex(stdout: str) -> AgentReport:
    report = AgentReport()
    for event in _json_objects(stdout):
        kind = event.get("type")
        if kind == "turn.completed":
            usage = event.get("usage") or {}
            report.usage.append((None, int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)))
        elif kind == "item.completed" and (event.get("item") or {}).get("type") == "agent_message":
            report.message = str(event["item"].get("text") or "")
        elif kind in ("turn.failed", "error"):
            error = event.get("error") or {}
            report.error = str(error.get("message") if isinstance(error, dict) else error or event.get("message") or kind)
    return report


_AIDER_TOKENS = re.compile(
    r"Tokens:\s*([\d.,]+)\s*([kKmM]?)\s*sent,\s*([\d.,]+)\s*([kKmM]?)\s*received\.(?:\s*Cost:\s*\$([\d.]+)\s*message)?"
)


def _count(number: str, suffix: str) -> int:
    return int(float(number.replace(",", "")) * {"": 1, "k": 1e3, "m": 1e6}[suffix.lower()])


def _aider(stdout: str) -> AgentReport:
    report = AgentReport()
    costs = []
    for match in _AIDER_TOKENS.finditer(stdout):
        report.usage.append((None, _count(match.group(1), match.group(2)), _count(match.group(3), match.group(4))))
        if match.group(5):
            costs.append(float(match.group(5)))
    if costs:
        report.cost_usd = sum(costs)
    return report


def _gemini(stdout: str) -> AgentReport:
    objects = _json_objects(stdout)
    if not objects:
        return AgentReport()
    data = objects[-1]
    report = AgentReport(message=str(data.get("response") or ""))
    error = data.get("error")
    if error:
        report.error = str(error.get("message") if isinstance(error, dict) else error)
    for model, stats in ((data.get("stats") or {}).get("models") or {}).items():
        tokens = (stats or {}).get("tokens") or {}
        report.usage.append((model, int(tokens.get("prompt") or tokens.get("input") or 0), int(tokens.get("candidates") or 0)))
    return report


def _nothing(stdout: str) -> AgentReport:
    return AgentReport()


@dataclass(frozen=True)
class Preset:
    command: str
    model_flag: str
    read: Callable[[str], AgentReport]
    # What the CLI needs inside the sandbox: its key variables, and its own state folders.
    env: tuple[str, ...] = ()
    writable: tuple[str, ...] = ()


PRESETS: dict[str, Preset] = {
    "claude": Preset(
        "claude -p --output-format json --permission-mode acceptEdits{model}{budget}{args}"
        ' --disallowedTools "Bash(git commit:*)" "Bash(git push:*)" < "$RATCHET_BRIEF_FILE"',
        "--model",
        _claude,
        env=("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_MODEL", "CLAUDE_CONFIG_DIR"),
        writable=("~/.claude", "~/.claude.json"),
    ),
    "codex": Preset(
        'codex exec --sandbox workspace-write --json{model}{args} - < "$RATCHET_BRIEF_FILE"',
        "-m",
        _codex,
        env=("OPENAI_API_KEY", "CODEX_API_KEY", "CODEX_HOME", "OPENAI_BASE_URL"),
        writable=("~/.codex",),
    ),
    "aider": Preset(
        # Auto-commits off, and its history files and repo-map cache kept out of the checkout
        # (they would be changes outside the scope).
        "aider --yes-always --no-auto-commits --no-dirty-commits --no-gitignore --no-check-update --no-pretty"
        " --no-stream --no-suggest-shell-commands --input-history-file /dev/null --chat-history-file /dev/null"
        ' --map-tokens 0{model}{args} --message-file "$RATCHET_BRIEF_FILE" {files}',
        "--model",
        _aider,
        env=("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "OPENROUTER_API_KEY", "AIDER_*"),
        writable=("~/.aider",),
    ),
    "gemini": Preset(
        'GEMINI_CLI_TRUST_WORKSPACE=true gemini -p "Follow the instructions above." --approval-mode auto_edit'
        ' --output-format json{model}{args} < "$RATCHET_BRIEF_FILE"',
        "-m",
        _gemini,
        env=("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_CLOUD_PROJECT", "GEMINI_MODEL"),
        writable=("~/.gemini",),
    ),
    "generic": Preset("", "", _nothing),
}


class AgentProposer(CommandProposer):
    kind = "agent"

    def __init__(
        self,
        section: AgentProposerSection,
        *,
        root: Path,
        sandbox: SandboxSection | None = None,
        context_containment: Containment | None = None,
    ) -> None:
        self.section = section
        self.root = root
        self.preset = PRESETS[section.preset]
        # A preset is a command proposer with a command line, a brief and an output reader of
        # its own: it runs the same way, sandbox and environment allowlist included.
        command = CommandProposerSection(
            kind="command",
            command=section.command or self.preset.command,
            timeout=section.timeout,
            network=section.network,
            env=list(self.preset.env if section.env is None else section.env),
            writable=list(self.preset.writable if section.writable is None else section.writable),
        )
        super().__init__(command, sandbox=sandbox, root=root)
        self.context_runner = ContextRunner(section.context_commands, section.max_output_chars, containment=context_containment)
        self.templates: Templates | None = None

    def resume(self, history: tuple[Experiment, ...], state_dir: Path) -> None:
        self.templates = Templates(self.section.templates, self.root)

    def propose(self, context: ProposalContext) -> Proposal:
        # An agent cannot be stopped mid-way at a budget; it is not started without one left.
        if context.cost_left_usd is not None and context.cost_left_usd <= 0:
            raise BudgetExhausted("money budget spent")
        if context.tokens_left is not None and context.tokens_left <= 0:
            raise BudgetExhausted("token budget spent")
        proposal = super().propose(context)
        return Proposal(
            hypothesis=proposal.hypothesis,
            in_place=True,
            usage=proposal.usage,
            meta={"preset": self.section.preset, **({"model": self.section.model} if self.section.model else {})},
        )

    def command_line(self, context: ProposalContext) -> str:
        section = self.section
        fill = {
            "{model}": f" {self.preset.model_flag or '--model'} {shlex.quote(section.model)}" if section.model else "",
            "{args}": f" {section.args}" if section.args else "",
            "{files}": " ".join(shlex.quote(path) for path in context.scope_files),
            "{budget}": (
                f" --max-budget-usd {context.cost_left_usd:.4f}"
                if section.preset == "claude" and context.cost_left_usd is not None
                else ""
            ),
        }
        command = self.command
        for placeholder, value in fill.items():  # plain replacement: shell braces stay as they are
            command = command.replace(placeholder, value)
        return command

    def render_brief(self, context: ProposalContext, hypothesis_file: str) -> str:
        if self.templates is None:
            self.resume(context.history, context.state_dir)
        assert self.templates is not None
        section = self.section
        variables = prompt_variables(
            context,
            # An agent opens files itself: over the cap they are listed, not refused.
            files=read_scope(context.worktree, context.scope_files, section.max_scope_chars, strict=False),
            history_rows_limit=section.history_rows,
            max_output_chars=section.max_output_chars,
            plateau_after=section.plateau,
            context_outputs=self.context_runner.outputs(context),
            extra={"structural": False, "tuning_trials": 0, "whole_file_max_lines": 0},
        )
        return self.templates.render("agent.j2", hypothesis_file=hypothesis_file, **variables)

    def read_output(self, result: CommandResult, usage_file: Path) -> tuple[Usage | None, str]:
        report = self.preset.read(result.read("stdout"))
        usage = read_usage_file(usage_file)
        if usage is None and report.usage:
            tokens_in = sum(n for _, n, _ in report.usage)
            tokens_out = sum(n for _, _, n in report.usage)
            if report.cost_usd is not None:
                dollars = report.cost_usd
            else:
                dollars = sum(
                    cost(price_for(model or self.section.model, self.section.prices), n_in, n_out)
                    for model, n_in, n_out in report.usage
                )
            usage = Usage(tokens_in, tokens_out, dollars)
        elif usage is None and report.cost_usd is not None:
            usage = Usage(0, 0, report.cost_usd)
        if report.error:
            raise ProposerError(f"the {self.section.preset} agent reported an error: {report.error[:300]}", usage=usage)
        message = report.message.strip().splitlines()[0] if report.message.strip() else ""
        if not message:
            _, message = super().read_output(result, usage_file)
        return usage, message
