"""The ``agent`` proposer: a headless coding-agent CLI, as a preset over the ``command`` proposer.

The agent edits the candidate worktree in place. Its brief (``agent.j2``) holds what the llm
proposer's prompt holds (program.md, the scope's files, the history, the last failure, the
context commands' output, the plateau strategy) plus the rules: stay in the scope, never touch
the harness, one change per experiment, the hypothesis in a named file. Whatever numbers the
agent reports are ignored; what it spent is read from its output where the CLI says it:

- ``claude``: ``claude -p`` with ``--output-format json`` (tokens and ``total_cost_usd``);
  ``--max-budget-usd`` is set to what is left of a money budget;
- ``codex``: ``codex exec --json`` (tokens from ``turn.completed``, priced for ``model``);
- ``aider``: ``aider --message-file`` with auto-commits off (its "Tokens: … Cost: …" lines; the
  cost is there only for models aider knows, else the tokens are priced for ``model``);
- ``gemini``: ``gemini -p`` with ``--output-format json`` (tokens per model it names, priced);
- ``generic``: your ``command``; it may write its spending to ``$RATCHET_USAGE_FILE``.

Tokens are priced by :mod:`ratchet.proposers._prices` (genai-prices' table, cached input at its
cached rate, ``[proposer.prices]`` first). A money budget is never kept by pricing a run at $0:
with ``[budget] cost_usd``, an agent whose CLI does not always report dollars needs a priced
``model`` to start, a model its output names without a price stops the run, and so does a
generic agent that writes no ``cost_usd``.

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
from ratchet.measure.runner import CommandResult
from ratchet.proposers._context import ContextRunner, prompt_variables, read_scope
from ratchet.proposers._prices import Tokens, missing_price, price_for, require_price
from ratchet.proposers._templates import Templates
from ratchet.proposers.base import (
    BudgetExhausted,
    FatalProposerError,
    Proposal,
    ProposalContext,
    ProposerError,
    Usage,
)
from ratchet.proposers.command import CommandProposer, last_line, read_usage_file

if TYPE_CHECKING:
    from ratchet.measure.containment import Containment


@dataclass(frozen=True)
class Spent:
    """One model's tokens as a CLI reports them, over ``requests`` API calls."""

    model: str | None  # as the output names it; None: the section's model
    tokens: Tokens
    requests: int = 1


@dataclass
class AgentReport:
    """What an agent's output says about its run."""

    usage: list[Spent] = field(default_factory=list)
    cost_usd: float | None = None  # when the CLI prices its own run (claude, aider)
    message: str = ""  # its final words (a fallback hypothesis)
    error: str = ""


def _json_objects(text: str) -> list[dict[str, Any]]:
    """The JSON objects a CLI printed, among its other lines: one per line (JSONL), or one
    spread over several lines (pretty-printed)."""
    decoder = json.JSONDecoder()
    objects: list[dict[str, Any]] = []
    done = 0
    for match in re.finditer(r"^[ \t]*\{", text, re.M):
        start = match.end() - 1
        if start < done:  # inside an object already read
            continue
        try:
            data, done = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(data, dict):
            objects.append(data)
    return objects


def _int(data: Any, key: str) -> int:
    value = data.get(key) if isinstance(data, dict) else None
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _message(error: Any) -> str:
    """The words of an error object (``{"message": ...}``) or string."""
    if isinstance(error, dict):
        return str(error.get("message") or "")
    return str(error or "")


def _claude(stdout: str, stderr: str) -> AgentReport:
    results = [o for o in _json_objects(stdout) if o.get("type") == "result" or "total_cost_usd" in o or "cost_usd" in o]
    if not results:
        return AgentReport()
    data = results[-1]
    usage = data.get("usage") or {}
    read, written = _int(usage, "cache_read_input_tokens"), _int(usage, "cache_creation_input_tokens")
    tokens = Tokens(_int(usage, "input_tokens") + read + written, _int(usage, "output_tokens"), read, written)
    cost_usd = data.get("total_cost_usd", data.get("cost_usd"))
    message = str(data.get("result") or "")
    return AgentReport(
        usage=[Spent(None, tokens)],
        cost_usd=float(cost_usd) if isinstance(cost_usd, (int, float)) else None,
        message=message,
        error=f"{data.get('subtype', 'error')}: {message}" if data.get("is_error") else "",
    )


def _codex(stdout: str, stderr: str) -> AgentReport:
    report = AgentReport()
    # A top-level error is transient when the turn completes after it (Codex reports its
    # WebSocket reconnects so); only turn.failed, or an error with no later turn.completed,
    # is a failure. Items of type "error" are warnings.
    unresolved = ""
    for event in _json_objects(stdout):
        kind = event.get("type")
        if kind == "turn.completed":
            usage = event.get("usage") or {}
            # output_tokens already counts reasoning_output_tokens (the API's breakdown of it);
            # cached and cache-write input are parts of input_tokens.
            tokens = Tokens(
                _int(usage, "input_tokens"),
                _int(usage, "output_tokens"),
                _int(usage, "cached_input_tokens"),
                _int(usage, "cache_write_input_tokens"),
            )
            report.usage.append(Spent(None, tokens))
            unresolved = ""
        elif kind == "turn.failed":
            report.error = _message(event.get("error")) or "the turn failed"
        elif kind == "error":
            unresolved = _message(event) or "an error event without a message"
        elif kind == "item.completed" and (event.get("item") or {}).get("type") == "agent_message":
            report.message = str(event["item"].get("text") or "")
    report.error = report.error or unresolved
    return report


_AIDER_NUMBER = r"([\d.,]+)\s*([kKmM]?)"
_AIDER_TOKENS = re.compile(
    rf"Tokens:\s*{_AIDER_NUMBER}\s*sent"
    rf"(?:,\s*{_AIDER_NUMBER}\s*cache write)?"
    rf"(?:,\s*{_AIDER_NUMBER}\s*cache hit)?"
    rf",\s*{_AIDER_NUMBER}\s*received\."
    r"(?:\s*Cost:\s*\$([\d.]+)\s*message)?"  # on the next line when both cache parts are there
)


def _count(number: str | None, suffix: str | None) -> int:
    if not number:
        return 0
    return int(float(number.replace(",", "")) * {"": 1, "k": 1e3, "m": 1e6}[(suffix or "").lower()])


def _aider(stdout: str, stderr: str) -> AgentReport:
    report = AgentReport()
    costs = []
    for match in _AIDER_TOKENS.finditer(stdout):
        groups = match.groups()
        sent, written, hit, received = (_count(groups[i], groups[i + 1]) for i in (0, 2, 4, 6))
        # "sent" holds the cache writes; cache hits are counted apart from it, as aider's own
        # cost formula takes them (for a provider that counts them in "sent" too, an upper bound).
        report.usage.append(Spent(None, Tokens(sent + hit, received, hit, written)))
        if groups[8]:
            costs.append(float(groups[8]))
    if costs:
        report.cost_usd = sum(costs)
    return report


def _gemini(stdout: str, stderr: str) -> AgentReport:
    # On failure Gemini CLI prints its JSON object on stderr, and nothing on stdout.
    objects = [
        o for o in _json_objects(stdout) or _json_objects(stderr) if {"response", "stats", "error"} & o.keys()
    ]
    if not objects:
        return AgentReport()
    data = objects[-1]
    report = AgentReport(message=str(data.get("response") or ""))
    error = data.get("error")
    if error:
        code = error.get("code") if isinstance(error, dict) else None
        report.error = (_message(error) or "an error without a message") + (f" (code {code})" if code is not None else "")
    for model, stats in ((data.get("stats") or {}).get("models") or {}).items():
        tokens = (stats or {}).get("tokens") or {}
        cached = _int(tokens, "cached")
        # "prompt" holds the cached tokens ("input" is prompt - cached); thoughts are billed as output.
        prompt = _int(tokens, "prompt") if "prompt" in tokens else _int(tokens, "input") + cached
        spent = Tokens(
            prompt + _int(tokens, "tool"), _int(tokens, "candidates") + _int(tokens, "thoughts"), cache_read=cached
        )
        report.usage.append(Spent(str(model), spent, max(_int((stats or {}).get("api"), "totalRequests"), 1)))
    return report


def _nothing(stdout: str, stderr: str) -> AgentReport:
    return AgentReport()


@dataclass(frozen=True)
class Preset:
    command: str
    model_flag: str
    read: Callable[[str, str], AgentReport]  # (stdout, stderr) -> what the run spent and said
    # What the CLI needs inside the sandbox: its key variables, and its own state folders.
    env: tuple[str, ...] = ()
    writable: tuple[str, ...] = ()
    # Whether the CLI always says what its run cost in dollars; if not, ratchet prices the
    # tokens it reports, and a money budget needs the model's price.
    reports_cost: bool = False


PRESETS: dict[str, Preset] = {
    "claude": Preset(
        "claude -p --output-format json --permission-mode acceptEdits{model}{budget}{args}"
        ' --disallowedTools "Bash(git commit:*)" "Bash(git push:*)" < "$RATCHET_BRIEF_FILE"',
        "--model",
        _claude,
        env=("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_MODEL", "CLAUDE_CONFIG_DIR"),
        writable=("~/.claude", "~/.claude.json"),
        reports_cost=True,
    ),
    "codex": Preset(
        # Codex ignores OPENAI_BASE_URL; it reads the base URL from its config.
        'codex exec --sandbox workspace-write --json${OPENAI_BASE_URL:+ -c "openai_base_url=$OPENAI_BASE_URL"}'
        '{model}{args} - < "$RATCHET_BRIEF_FILE"',
        "-m",
        _codex,
        env=("OPENAI_API_KEY", "CODEX_API_KEY", "CODEX_HOME", "OPENAI_BASE_URL"),
        writable=("~/.codex",),
    ),
    "aider": Preset(
        # Auto-commits off, and its history files and repo-map cache kept out of the checkout
        # (they would be changes outside the scope); --yes-always would answer yes to the
        # analytics opt-in some users are asked.
        "aider --yes-always --analytics-disable --no-auto-commits --no-dirty-commits --no-gitignore"
        " --no-check-update --no-pretty"
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
        money_budget: bool = False,
    ) -> None:
        self.section = section
        self.root = root
        self.money_budget = money_budget
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
        super().__init__(command, sandbox=sandbox, root=root, money_budget=money_budget)
        self.context_runner = ContextRunner(section.context_commands, section.max_output_chars, containment=context_containment)
        self.templates: Templates | None = None

    def resume(self, history: tuple[Experiment, ...], state_dir: Path) -> None:
        """Check what can be checked before the first run: templates, and the price a money budget needs."""
        self.templates = Templates(self.section.templates, self.root)
        section = self.section
        if self.money_budget and not self.preset.reports_cost and self.preset.read is not _nothing:
            if not section.model:
                raise ProposerError(
                    f"[budget] cost_usd needs the price of the {section.preset} agent's model, and none is set: "
                    f"set [proposer] model (the {section.preset} CLI does not always report dollars)"
                )
            require_price(section.model, section.prices)

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
        report = self.preset.read(result.read("stdout"), result.read("stderr"))
        usage, unaccounted = self._spent(report, usage_file)
        if unaccounted and self.money_budget:
            # A run whose dollars are unknown would count as free against the budget.
            raise FatalProposerError(unaccounted, usage=usage)
        if report.error:
            raise ProposerError(f"the {self.section.preset} agent reported an error: {report.error[:300]}", usage=usage)
        message = report.message.strip().splitlines()[0] if report.message.strip() else ""
        if not message:
            message = last_line(result.read("stdout"))
        return usage, message

    def _spent(self, report: AgentReport, usage_file: Path) -> tuple[Usage | None, str]:
        """What the run cost, and why its dollars are unknown (empty when they are known)."""
        written = read_usage_file(usage_file)
        if self.preset.read is _nothing:  # a generic agent says it in the usage file, or not at all
            if written is None or not _names_cost(usage_file):
                return written, (
                    "[budget] cost_usd needs what the generic agent spent: it wrote no cost_usd to "
                    '$RATCHET_USAGE_FILE (write {"tokens_in": .., "tokens_out": .., "cost_usd": ..} there)'
                )
            return written, ""
        if written is not None:
            return written, ""
        tokens_in = sum(spent.tokens.input for spent in report.usage)
        tokens_out = sum(spent.tokens.output for spent in report.usage)
        if report.cost_usd is not None:
            return Usage(tokens_in, tokens_out, report.cost_usd), ""
        if not report.usage:
            return None, ""
        dollars, unpriced = 0.0, []
        for spent in report.usage:
            model = spent.model or self.section.model
            price = price_for(model, self.section.prices)
            if price is None:
                unpriced.append(model)
            else:
                dollars += price.cost(spent.tokens, spent.requests)
        usage = Usage(tokens_in, tokens_out, dollars)
        if unpriced:
            return usage, missing_price(unpriced[0]) if unpriced[0] else (
                "[budget] cost_usd needs the price of the agent's model: its output names none, and [proposer] model is not set"
            )
        return usage, ""


def _names_cost(usage_file: Path) -> bool:
    try:
        data = json.loads(usage_file.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("cost_usd"), (int, float))
