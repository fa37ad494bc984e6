"""Prompt size per experiment: a 500-line scope and a history growing to 100 experiments.

The llm proposer (the real one, with the real ``openai`` SDK) asks the local stand-in server of
the tests (tests/proposers/fake_llm.py, on 127.0.0.1) for one proposal at history lengths 0, 10,
..., 100; the server records what it was sent. The history mixes keeps, discards and crashes
with long hypotheses, a crash carries a long output tail, and one context command prints 10 KB.
Each line gives the characters of the request's messages (system + user), an estimate in
tokens (chars / 4), and the documented cap (``prompt_cap`` in proposers/_context.py: the
bundled templates, program.md, the scope cap, ``history_rows`` rows, the output caps), also
with this scope's own size in place of the scope cap.

Run:  python benchmarks/prompt_size.py [--rows 100] [--history-rows 30]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "proposers"))

from fake_llm import FakeLLM, Reply

from ratchet.config import LLMProposerSection
from ratchet.experiment import Experiment, Verdict
from ratchet.proposers._context import prompt_cap
from ratchet.proposers.base import ProposalContext
from ratchet.proposers.llm import LLMProposer

BRIEF = "Make the simulation faster without changing its results. Ideas: vectorize, cache, fuse loops.\n" * 5


def scope_file(lines: int) -> str:
    body = ["import math", ""]
    while len(body) < lines:
        n = len(body)
        body += [f"def step_{n}(state, dt=0.01):", f"    # advance block {n} of the simulation by one time step", f"    return [x + dt * math.sin(x * {n}) for x in state]", ""]
    return "\n".join(body[:lines]) + "\n"


def history(rows: int) -> tuple[Experiment, ...]:
    experiments = [Experiment("bench", 0, "0" * 40, "baseline", time.time(), state="done", verdict=Verdict.BASELINE, metric=10.0, hypothesis="baseline")]
    metric = 10.0
    for i in range(1, rows + 1):
        verdict = (Verdict.KEEP, Verdict.DISCARD, Verdict.DISCARD, Verdict.CRASH)[i % 4]
        value = metric * 0.99 if verdict is Verdict.KEEP else metric * 1.02
        experiments.append(
            Experiment(
                "bench", i, "0" * 40, "llm", time.time(), state="done", verdict=verdict,
                metric=None if verdict is Verdict.CRASH else value,
                hypothesis=f"experiment {i}: " + "rewrite the inner loop of step functions to reuse the sine table " * 4,
                reason="the metric command exited with 1" if verdict is Verdict.CRASH else "",
                output_tail="Traceback (most recent call last):\n" + "  File 'sim.py', line 1, in step\n" * 200 if verdict is Verdict.CRASH else "",
                proposal_meta={"diff_key": f"{i:016x}"},
                extra={"holdout": 0.123456789},
            )
        )  # fmt: skip
        if verdict is Verdict.KEEP:
            metric = value
    return tuple(experiments)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--history-rows", type=int, default=30)
    parser.add_argument("--lines", type=int, default=500)
    args = parser.parse_args()

    fake = FakeLLM()
    os.environ["RATCHET_BENCH_KEY"] = "sk-bench"
    section = LLMProposerSection.model_validate(
        {
            "kind": "llm",
            "model": "bench",
            "base_url": fake.openai_url,
            "api_key_env": "RATCHET_BENCH_KEY",
            "history_rows": args.history_rows,
            "context_commands": [{"name": "profile", "command": "python3 -c \"print('hot: step_1 ' * 800)\""}],
        }
    )
    text = scope_file(args.lines)
    full = history(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        worktree = Path(tmp) / "worktree"
        worktree.mkdir()
        (worktree / "sim.py").write_text(text)
        git = ["git", "-c", "user.name=b", "-c", "user.email=b@b"]
        for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "scope"]):
            subprocess.run(git + command, cwd=worktree, check=True)
        proposer = LLMProposer(section, root=worktree)
        proposer.resume((), Path(tmp) / "state")
        cap = prompt_cap(
            brief=BRIEF,
            max_scope_chars=section.max_scope_chars,
            history_rows=section.history_rows,
            max_output_chars=section.max_output_chars,
            context_commands=section.context_commands,
        )
        print(f"scope: sim.py, {args.lines} lines, {len(text):,} chars; history_rows = {section.history_rows}; "
              f"max_scope_chars = {section.max_scope_chars:,}; max_output_chars = {section.max_output_chars:,}")  # fmt: skip
        # The same bound with this scope's actual size in place of max_scope_chars.
        tight = cap - section.max_scope_chars + len(text) + len("sim.py") + 24
        print(f"{'history':>8} {'prompt chars':>13} {'~tokens':>8} {'cap (this scope)':>17} {'cap':>8}")
        worst = 0
        for n in range(0, args.rows + 1, 10):
            fake.add(Reply(text=f"HYPOTHESIS: h{n}\n\nsim.py\n<<<<<<< SEARCH\nimport math\n=======\nimport math as m\n>>>>>>> REPLACE\n"))
            context = ProposalContext(
                run="bench", iteration=n + 1, worktree=worktree, brief=BRIEF, scope=("sim.py",), scope_files=("sim.py",),
                metric_name="seconds", direction="minimize", champion_metric=full[n].metric or 10.0, baseline_metric=10.0,
                history=full[: n + 1], state_dir=Path(tmp) / "state", log_dir=Path(tmp) / "logs" / str(n),
            )  # fmt: skip
            proposer.propose(context)
            request = fake.requests[-1]
            size = len(request.prompt)
            assert "0.123456789" not in request.prompt, "a holdout value reached the prompt"
            worst = max(worst, size)
            print(f"{n:>8} {size:>13,} {size // 4:>8,} {tight:>17,} {cap:>8,}")
        fake.close()
    verdict = "stays under" if worst <= tight else "EXCEEDS"
    print(f"largest prompt {worst:,} chars (~{worst // 4:,} tokens) {verdict} the cap of {tight:,} chars for this scope "
          f"({cap:,} for any scope under max_scope_chars)")  # fmt: skip
    if worst > tight:
        sys.exit(1)


if __name__ == "__main__":
    main()
