"""``ratchet probe``: the evaluator red-team, before a run.

In a throwaway checkout of the champion, it tries what a proposer could try against the
user's own harness and config: a fake metric line before and after the real one, a replaced
``sys.stdout``, a harness file rewritten at run time, a write outside the checkout, a read of
the holdout's files, a daemon left behind, a sleep past the timeout, and a new file where the
harness would load it (a ``conftest.py``). Each attack is a real candidate change: the scope
files are edited through the workspace's scope check, then measured through the run's own
path (containment and sandbox, the :class:`~ratchet.executors.sampler.Sampler`, the harness check after
each sample; guards and holdout for a would-be keep). Each is judged on what a run would
record: *caught* when the experiment would end invalid, tampered, crash or timeout, or the
number read is not the fake one; *not caught* when the fake number would be taken or the
attack went unnoticed; *skipped* when it has nowhere to live (a scope without Python code).

The code-running attacks are written in Python and put at the top of every Python file in the
scope (once per process), since which of them the harness loads is not known. They announce
themselves on the stream the parser does not read, in words without digits, so that whether
the harness ran them at all can be told apart from whether ratchet caught them.

The user's checkout, branch and ledger are never touched: everything happens under
``.ratchet/worktrees/<run>.probe`` and ``.ratchet/probe/<run>/`` (its logs, kept).

Laid out as the probe goes: ``session`` (the throwaway checkout, every attack in turn, the
clean-up), ``prober`` (measuring one candidate as a run would), ``fakes`` and ``escapes`` (the
attacks: a fake number, a way out of the harness), ``payloads`` (the Python they put in the
scope), ``findings`` (what each attack came to, and the report).
"""

from __future__ import annotations

from ratchet.commands.probe.findings import (
    ATTACKS,
    EXIT_CANNOT_PROBE,
    EXIT_NOT_CAUGHT,
    EXIT_SAFE,
    AttackResult,
    ProbeError,
    ProbeReport,
    Status,
)
from ratchet.commands.probe.session import red_team

__all__ = ["ATTACKS", "AttackResult", "EXIT_CANNOT_PROBE", "EXIT_NOT_CAUGHT", "EXIT_SAFE", "ProbeError", "ProbeReport", "Status", "red_team"]
