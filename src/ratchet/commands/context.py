"""An agent's ``context``: the brief as ratchet's LLM proposer would get it, then the scope's files.

The MCP tool ``context`` and the resource ``ratchet://brief`` show it. It renders what a proposer
is told, so it lives among the use-cases, not in ``report/``: reports never reach proposers.
The history in it goes through the one holdout redaction, as the loop's own proposers' does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ratchet.experiment import Verdict
from ratchet.proposers.base import ProposalContext
from ratchet.proposers.brief import render_brief
from ratchet.report.agent_view import AgentView
from ratchet.state import STATE_DIR
from ratchet.verdict import redact_for_proposer
from ratchet.workspace.git import GitError, git
from ratchet.workspace.scope import Globs

# The champion's files shown by `context`, in total; a larger scope is listed without text.
CONTEXT_FILE_CHARS = 60_000


def agent_context(view: AgentView, hypothesis_hint: str) -> str:
    """The brief as the LLM proposer gets it (program.md, metric, scope, history, rules), then the
    scope's files at the champion."""
    root, config = view.root, view.config
    experiments = view.experiments()
    champion_commit = view.champion_commit()
    done = [e for e in experiments if e.verdict is not None]
    champion = next((e for e in reversed(done) if e.verdict in (Verdict.KEEP, Verdict.BASELINE)), None)
    baseline = next((e for e in done if e.verdict is Verdict.BASELINE), None)
    scope = Globs(config.scope.mutable)
    files = scope.select(_tree(root, champion_commit))
    brief_path = root / config.run.brief
    context = ProposalContext(
        run=view.run,
        iteration=(experiments[-1].id + 1) if experiments else 0,
        worktree=root,
        brief=brief_path.read_text(errors="replace") if brief_path.is_file() else "",
        scope=tuple(scope.globs),
        scope_files=tuple(files),
        metric_name=config.metric.name,
        direction=config.metric.direction,
        champion_metric=champion.metric if champion else None,
        baseline_metric=baseline.metric if baseline else None,
        history=tuple(redact_for_proposer(e) for e in done),
        state_dir=root / STATE_DIR / "runs" / view.run / "proposer",
        log_dir=root / STATE_DIR,
    )
    text = render_brief(context, hypothesis_hint)
    return text + "\n" + _files_section(root, champion_commit, files)


def _tree(root: Path, commit: str) -> list[str]:
    out = git(root, "ls-tree", "-r", "-z", "--name-only", "--full-tree", commit)
    return [path for path in out.split("\0") if path]


def _files_section(root: Path, commit: str, files: Sequence[str]) -> str:
    short = commit[:7]
    parts = [f"## The scope's files at the champion ({short})"]
    texts: list[tuple[str, str | None]] = []
    total = 0
    for path in files:
        try:
            data = git(root, "show", f"{commit}:{path}")
        except GitError:
            texts.append((path, None))
            continue
        if "\0" in data[:8192]:
            texts.append((path, None))
            continue
        texts.append((path, data))
        total += len(data)
        if total > CONTEXT_FILE_CHARS:
            break  # no need to read the rest
    if total > CONTEXT_FILE_CHARS:
        parts.append(f"(their text is over {CONTEXT_FILE_CHARS} characters: open the files themselves)")
        parts += [f"- {path}" for path in files]
        return "\n".join(parts) + "\n"
    for path, text in texts:
        if text is None:
            parts.append(f"\n### {path}\n(binary, not shown)")
        else:
            parts.append(f"\n### {path}\n```\n{text.rstrip()}\n```")
    return "\n".join(parts) + "\n"
