"""The ``llm`` proposer: a chat model reads the champion and answers with SEARCH/REPLACE edits.

One proposal is one short conversation:

1. the prompt (templates over the brief, the scope's files, the history, the last failure, the
   context commands' output, and a change of strategy on a plateau) -> an answer;
2. if a block does not apply, the error goes back once and the corrected answer is used (repair);
3. if the change is one the ledger already holds, the model is asked once for another.

With several workers, proposals are made side by side: each is its own conversation (its own
HTTP requests on the SDK's thread-safe client), told what the others in flight are proposing; a
change one of them is already measuring counts as a repeat.

Every call is priced from the API's usage fields; before a call that could overrun the token or
money budget, the proposer stops (the loop ends the run cleanly). A failed call, a malformed
answer or a repair that still fails is a failed proposal (an ``invalid`` experiment with its
cost), never a crash of the run.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.config import LLMProposerSection
from ratchet.experiment import Experiment
from ratchet.proposers._context import (
    OwnLocks,
    ContextRunner,
    ScopeTooLarge,
    prompt_variables,
    read_scope,
)
from ratchet.proposers._edits import (
    Answer,
    EditError,
    MalformedAnswer,
    apply_blocks,
    diff_key,
    parse_answer,
)
from ratchet.proposers._llm_clients import (
    ChatClient,
    ChatError,
    Message,
    estimate_tokens,
    key_env_name,
    open_client,
)
from ratchet.proposers._prices import ModelPrice, cost, price_for, require_price
from ratchet.proposers._templates import Templates
from ratchet.proposers.base import (
    BudgetExhausted,
    FatalProposerError,
    Proposal,
    ProposalContext,
    Proposer,
    ProposerError,
    Usage,
)
from ratchet.workspace.worktree import is_safe_relative

if TYPE_CHECKING:
    from ratchet.measure.containment import Containment


@dataclass
class Change:
    """What a conversation produced: the hypothesis, the edits and what they cost."""

    hypothesis: str
    edits: dict[str, str]
    usage: Usage
    meta: dict[str, Any] = field(default_factory=dict)


class _Conversation:
    """The calls of one proposal: messages so far, what they cost, and the budget check before each."""

    def __init__(
        self, client: ChatClient, section: LLMProposerSection, price: ModelPrice | None, context: ProposalContext, system: str
    ) -> None:
        self.client = client
        self.section = section
        self.price = price
        self.context = context
        self.system = system
        self.messages: list[Message] = []
        self.spent = Usage()
        self.calls = 0
        self.retries = 0
        self.estimated = False
        self.truncated = False
        self.repaired = False  # one repair round trip per proposal

    def ask(self, text: str) -> str:
        self._check_budget(text)
        self.messages.append(Message("user", text))
        self.calls += 1
        log = self.context.log_dir
        log.mkdir(parents=True, exist_ok=True)
        request = (f"# system\n\n{self.system}\n\n" if self.calls == 1 else "") + f"# user\n\n{text}"
        (log / f"llm-{self.calls}-prompt.md").write_text(request)
        try:
            reply = self.client.complete(self.system, self.messages)
        except ChatError as exc:
            error = FatalProposerError if exc.fatal else ProposerError
            raise error(str(exc), usage=self.spent) from None
        self.spent = self.spent + Usage(reply.tokens_in, reply.tokens_out, cost(self.price, reply.tokens_in, reply.tokens_out))
        self.retries += reply.retries
        self.estimated |= reply.estimated
        self.truncated = reply.truncated
        (log / f"llm-{self.calls}-answer.md").write_text(reply.text)
        self.messages.append(Message("assistant", reply.text))
        return reply.text

    def _check_budget(self, text: str) -> None:
        """Refuse a call whose worst case (prompt estimate + max_tokens out) could overrun a budget."""
        sent = self.system + text + "".join(m.content for m in self.messages)
        tokens_in, tokens_out = estimate_tokens(sent), self.section.max_tokens
        reason = None
        if self.context.tokens_left is not None:
            left = self.context.tokens_left - self.spent.tokens_in - self.spent.tokens_out
            if tokens_in + tokens_out > left:
                reason = f"token budget: the next call could use up to {tokens_in + tokens_out:,} tokens, {max(left, 0):,} left"
        if reason is None and self.context.cost_left_usd is not None:
            worst = cost(self.price, tokens_in, tokens_out)
            left_usd = self.context.cost_left_usd - self.spent.cost_usd
            if worst > left_usd:
                reason = f"money budget: the next call could cost up to ${worst:.4f}, ${max(left_usd, 0.0):.4f} left"
        if reason is None:
            return
        if self.calls == 0:
            raise BudgetExhausted(reason)  # nothing spent on this experiment: the run just stops
        raise ProposerError(f"{reason}; stopped before the follow-up call", usage=self.spent)


class LLMProposer(OwnLocks, Proposer):
    _locks = ("_opening",)
    kind = "llm"
    # A proposal's state is its _Conversation; what the proposer shares across calls is read-only
    # once opened, except the context commands' cache (it locks) and the lazy open (locked here).
    concurrent = True

    def __init__(
        self, section: LLMProposerSection, *, root: Path, money_budget: bool = False, containment: Containment | None = None
    ) -> None:
        self.section = section
        self.root = root
        self.money_budget = money_budget
        self.price = price_for(section.model, section.prices)
        key_env = key_env_name(section)
        self.context_runner = ContextRunner(
            section.context_commands, section.max_output_chars, [key_env] if key_env else [], containment
        )
        self.templates: Templates | None = None
        self.client: ChatClient | None = None
        self._opening = threading.Lock()

    # ------------------------------------------------------------ lifecycle

    def resume(self, history: tuple[Experiment, ...], state_dir: Path) -> None:
        """Check what can be checked before the first call: templates, price, SDK, key."""
        self.templates = Templates(self.section.templates, self.root)
        if self.money_budget:
            require_price(self.section.model, self.section.prices)
        try:
            self.client = open_client(self.section)
        except ChatError as exc:
            raise ProposerError(str(exc)) from None

    def mend(self, context: ProposalContext) -> Proposal | None:
        """One more conversation, on the failed candidate (the scope's files as they are now),
        with the guards' output in the prompt."""
        return self.propose(context)

    def propose(self, context: ProposalContext) -> Proposal:
        change = self.propose_change(context)
        return Proposal(hypothesis=change.hypothesis, edits=change.edits, meta=change.meta, usage=change.usage)

    # ------------------------------------------------------------ one conversation

    def propose_change(self, context: ProposalContext, *, structural: bool = False, tuning_trials: int = 0) -> Change:
        if self.client is None or self.templates is None:
            with self._opening:  # the loop normally calls resume first; several workers open once
                if self.client is None or self.templates is None:
                    self.resume(context.history, context.state_dir)
        assert self.client is not None and self.templates is not None
        templates = self.templates
        section = self.section
        try:
            files = read_scope(context.worktree, context.scope_files, section.max_scope_chars, strict=True)
        except ScopeTooLarge as exc:
            raise FatalProposerError(str(exc)) from None
        variables = prompt_variables(
            context,
            files=files,
            history_rows_limit=section.history_rows,
            max_output_chars=section.max_output_chars,
            plateau_after=section.plateau,
            context_outputs=self.context_runner.outputs(context),
            extra={"structural": structural, "tuning_trials": tuning_trials, "whole_file_max_lines": section.whole_file_max_lines},
        )
        conversation = _Conversation(self.client, section, self.price, context, templates.render("system.j2", **variables))
        answer, edits = self._apply(conversation, context, conversation.ask(templates.render("prompt.j2", **variables)), variables)
        originals = {path: _read(context.worktree, path) for path in edits}
        key = diff_key(originals, edits)
        # A change another worker is measuring now is as much a repeat as one in the history.
        known = context.history + context.in_flight
        earlier = _same_change(known, key)
        if earlier is not None:
            verdict = "being measured now" if earlier.verdict is None else str(earlier.verdict)
            row = {"id": earlier.id, "verdict": verdict, "metric": "" if earlier.metric is None else f"{earlier.metric:.6g}"}
            text = conversation.ask(templates.render("duplicate.j2", earlier=row, **variables))
            answer, edits = self._apply(conversation, context, text, variables)
            originals = {path: _read(context.worktree, path) for path in edits}
            key = diff_key(originals, edits)
            again = _same_change(known, key)
            if again is not None:
                raise ProposerError(f"the same change as experiment {again.id}; not measured again", usage=conversation.spent)
        meta: dict[str, Any] = {
            "diff_key": key,
            "model": section.model,
            "calls": conversation.calls,
            "strategy": "plateau" if variables["plateau"] else "normal",
        }
        if conversation.repaired:
            meta["repaired"] = True
        if conversation.retries:
            meta["retries"] = conversation.retries
        if conversation.estimated:
            meta["usage_estimated"] = True  # the server sent no usage: tokens counted from the text
        return Change(answer.hypothesis, edits, conversation.spent, meta)

    def _apply(
        self, conversation: _Conversation, context: ProposalContext, text: str, variables: dict[str, Any]
    ) -> tuple[Answer, dict[str, str]]:
        """Parse an answer and apply its blocks; one repair round trip when blocks do not apply."""
        assert self.templates is not None
        answer = self._parse(conversation, text)
        try:
            return answer, self._edits(context, answer)
        except EditError as exc:
            error = str(exc)
        (context.log_dir / "llm-repair-error.txt").write_text(error)
        if conversation.repaired:
            raise ProposerError(f"the edits do not apply: {_first_line(error)}", usage=conversation.spent)
        conversation.repaired = True
        answer = self._parse(conversation, conversation.ask(self.templates.render("repair.j2", error=error, **variables)))
        try:
            return answer, self._edits(context, answer)
        except EditError as exc:
            raise ProposerError(f"the edits still do not apply after a repair: {_first_line(str(exc))}", usage=conversation.spent) from None

    @staticmethod
    def _parse(conversation: _Conversation, text: str) -> Answer:
        try:
            return parse_answer(text)
        except MalformedAnswer as exc:
            cut = " (the answer was cut off at max_tokens)" if conversation.truncated else ""
            raise ProposerError(f"malformed answer: {exc}{cut}", usage=conversation.spent) from None

    def _edits(self, context: ProposalContext, answer: Answer) -> dict[str, str]:
        def read(path: str) -> str | None:
            if not is_safe_relative(path):
                raise EditError("not a plain path inside the repository")
            target = context.worktree / path
            if target.is_symlink():
                raise EditError("a symlink; edit the file it points to")
            if target.is_dir():
                raise EditError("a folder, not a file")
            return _read(context.worktree, path)

        blocks = tuple(
            type(block)(block.path.removeprefix("./"), block.search, block.replace) for block in answer.blocks
        )
        return apply_blocks(blocks, read, self.section.whole_file_max_lines)


def _read(worktree: Path, path: str) -> str | None:
    target = worktree / path
    if not target.is_file():
        return None
    return target.read_bytes().decode("utf-8", errors="surrogateescape")


def _same_change(history: tuple[Experiment, ...], key: str | None) -> Experiment | None:
    if key is None:
        return None
    return next((e for e in history if e.proposal_meta.get("diff_key") == key), None)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text
