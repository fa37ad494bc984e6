"""The agent presets, driven by small scripts that stand in for the CLIs and edit files.

Each stand-in is an executable on PATH under the CLI's own name (``claude``, ``codex``, ``aider``,
``gemini``); it checks the flags the preset must pass, reads the brief the way the real CLI would
(stdin, or a message file), edits the candidate, and prints what the real CLI prints at the end
(its JSON result, JSONL events, or usage lines). They run as any agent does: in the sandbox
where bubblewrap works, with the environment allowlist (``env = ["STANDIN_*"]`` passes theirs).
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import make_repo, run_cli, sh

from ratchet.config import load_config
from ratchet.loop import Loop

TARGET = {
    "calc.py": "def value():\n    return 10\n",
    "bench.py": "from calc import value\nprint('metric:', value())\n",
    "program.md": "Make value() small.\n",
}

CONFIG = """
[run]
name = "t"
[scope]
mutable = ["calc.py"]
harness = ["bench.py"]
[metric]
name = "number"
command = "{python} bench.py"
regex = 'metric: (\\S+)'
direction = "minimize"
timeout = "20s"
[verdict]
# Deterministic targets: no noise calibration or confirmation race needed.
calibrate_pairs = 0
confirm_pairs = 0
[budget]
{budget}
[proposer]
kind = "agent"
env = ["STANDIN_*"]
{proposer}
"""

# Shared by every stand-in: edit calc.py (down by 3, or up by 5 on the experiments listed in
# STANDIN_REGRESS), keep a copy of the brief and the arguments where the test reads them (the
# proposer's own files folder, the one place outside the checkout an agent may write).
COMMON = r'''
import json, os, re, sys
args = sys.argv[1:]
n = int(os.environ["RATCHET_EXPERIMENT"])
log = os.path.dirname(os.environ["RATCHET_HYPOTHESIS_FILE"])

def edit(brief):
    with open(os.path.join(log, "seen-brief.md"), "w") as f:
        f.write(brief)
    with open(os.path.join(log, "seen-args.json"), "w") as f:
        json.dump(args, f)
    text = open("calc.py").read()
    value = int(re.search(r"return (-?\d+)", text).group(1))
    new = value + 5 if str(n) in os.environ.get("STANDIN_REGRESS", "").split(",") else value - 3
    open("calc.py", "w").write(text.replace(f"return {value}", f"return {new}"))
    return value, new
'''

STANDINS = {
    "claude": r'''
# What the preset must pass: print mode, JSON out, edits allowed, git commits refused.
assert args[0] == "-p" and args[args.index("--output-format") + 1] == "json", args
assert args[args.index("--permission-mode") + 1] == "acceptEdits" and "Bash(git commit:*)" in args, args
assert "OPENAI_API_KEY" not in os.environ  # the environment allowlist applies to agents too
brief = sys.stdin.read()
old, new = edit(brief)
hypothesis_file = re.search(r"^Hypothesis file: (.+)$", brief, re.M).group(1)
open(hypothesis_file, "w").write(f"return {new} instead of {old}\n")
failed = os.environ.get("STANDIN_FAIL") == str(n)
print(json.dumps({"type": "result", "subtype": "error_during_execution" if failed else "success", "is_error": failed,
                  "result": "Done. I ran the benchmark myself: number=0.0001", "total_cost_usd": 0.05,
                  "usage": {"input_tokens": 1200, "output_tokens": 300, "cache_read_input_tokens": 100}}))
sys.exit(1 if failed else 0)
''',
    "codex": r'''
assert args[:4] == ["exec", "--sandbox", "workspace-write", "--json"] and args[-1] == "-", args
assert args[args.index("-m") + 1] == "gpt-5", args
old, new = edit(sys.stdin.read())
for event in [{"type": "thread.started", "thread_id": "t1"}, {"type": "turn.started"},
              {"type": "item.completed", "item": {"id": "i1", "type": "agent_message", "text": f"lowered the value to {new}\nmore words"}},
              {"type": "turn.completed", "usage": {"input_tokens": 2000, "cached_input_tokens": 500, "output_tokens": 400}}]:
    print(json.dumps(event))
''',
    "aider": r'''
assert "--no-auto-commits" in args and "--yes-always" in args and args[-1] == "calc.py", args
brief = open(args[args.index("--message-file") + 1]).read()
old, new = edit(brief)
open(os.environ["RATCHET_HYPOTHESIS_FILE"], "w").write(f"aider: return {new}")
print("Applied edit to calc.py")
print("Tokens: 2.5k sent, 310 received. Cost: $0.01 message, $0.02 session.")
''',
    "gemini": r'''
assert args[args.index("--approval-mode") + 1] == "auto_edit" and args[args.index("--output-format") + 1] == "json", args
assert os.environ.get("GEMINI_CLI_TRUST_WORKSPACE") == "true" and args[args.index("-m") + 1] == "gemini-2.5-pro"
old, new = edit(sys.stdin.read())
open(os.environ["RATCHET_HYPOTHESIS_FILE"], "w").write(f"gemini: return {new}")
print(json.dumps({"response": "done", "stats": {"models": {"gemini-2.5-pro": {"tokens": {"prompt": 3000, "candidates": 200, "total": 3200}}}}}))
''',
    "my-agent": r'''
old, new = edit(open(os.environ["RATCHET_BRIEF_FILE"]).read())
open(os.environ["RATCHET_HYPOTHESIS_FILE"], "w").write(f"generic: return {new}")
json.dump({"tokens_in": 10, "tokens_out": 5, "cost_usd": 0.001}, open(os.environ["RATCHET_USAGE_FILE"], "w"))
''',
}


def make(tmp_path: Path, proposer: str, budget: str = "iterations = 3", files: dict[str, str] | None = None) -> tuple[Path, dict[str, str]]:
    """The target repository, with every stand-in in an untracked bin folder inside it (the
    sandbox shows the repository read-only), and the environment that puts them on PATH."""
    config = CONFIG.format(python=sys.executable, budget=budget, proposer=proposer)
    repo = make_repo(tmp_path / "repo", {**TARGET, **(files or {})}, config)
    bin_dir = repo / ".standin"
    bin_dir.mkdir()
    for name, body in STANDINS.items():
        path = bin_dir / name
        path.write_text(f"#!{sys.executable}\n{COMMON}\n{textwrap.dedent(body)}")
        path.chmod(0o755)
    return repo, {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def seen(repo: Path, experiment: int, name: str) -> str:
    return (repo / f".ratchet/runs/t/logs/{experiment:04d}/proposer-files/seen-{name}").read_text()


def log_json(repo: Path) -> list[dict]:
    result = run_cli(repo, "log", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_must_show_claude_preset_end_to_end(tmp_path):
    """The loop with the claude preset, through the CLI: keeps, discards, counts what it cost."""
    proposer = """preset = "claude"
[[proposer.context_commands]]
name = "size"
command = "wc -c < calc.py"
"""
    repo, env = make(tmp_path, proposer, budget="iterations = 3\ncost_usd = 1")
    result = run_cli(repo, "run", env={**env, "STANDIN_REGRESS": "2", "OPENAI_API_KEY": "sk-not-for-agents"})
    assert result.returncode == 0, result.stdout + result.stderr
    rows = log_json(repo)
    assert [r["verdict"] for r in rows] == ["baseline", "keep", "discard", "keep"]
    # ratchet's numbers, not the agent's "number=0.0001"
    assert [r["metric"] for r in rows] == [10, 7, 12, 4]
    assert rows[1]["hypothesis"] == "return 7 instead of 10"
    assert [(r["tokens_in"], r["tokens_out"], r["cost_usd"]) for r in rows[1:]] == [(1300, 300, 0.05)] * 3
    assert rows[1]["proposal"] == {"preset": "claude"}
    assert sh(repo, "git", "show", "ratchet/t:calc.py") == "def value():\n    return 4\n"

    brief = seen(repo, 2, "brief.md")
    # The same context as the LLM prompt...
    assert "Make value() small." in brief and "lower is better" in brief
    assert "### calc.py" in brief and "    return 7" in brief
    assert "| 1 | keep | 7 | -30.00% | return 7 instead of 10 |" in brief
    assert "## Context: size" in brief and "```\n26\n```" in brief  # the champion: return 7
    # ...plus the rules.
    assert "## Rules" in brief and "Never touch the harness" in brief and "One idea per experiment" in brief
    assert f"Hypothesis file: {repo}/.ratchet/runs/t/logs/0002/proposer-files/hypothesis.txt" in brief
    # What is left of the money budget bounds claude's own spending.
    args = json.loads(seen(repo, 2, "args.json"))
    assert args[args.index("--max-budget-usd") + 1] == "0.9500"


def test_an_agent_error_is_a_failed_proposal_with_its_cost(tmp_path, monkeypatch):
    repo, env = make(tmp_path, 'preset = "claude"')
    for key, value in {**env, "STANDIN_FAIL": "1"}.items():
        monkeypatch.setenv(key, value)
    Loop(repo, load_config(repo / "ratchet.toml"), iterations=2).run()
    rows = log_json(repo)
    assert [r["verdict"] for r in rows] == ["baseline", "invalid", "keep"]
    assert "the claude agent reported an error: error_during_execution" in rows[1]["reason"]
    assert rows[1]["cost_usd"] == 0.05


@pytest.mark.parametrize(
    "proposer, hypothesis, usage",
    [
        ('preset = "codex"\nmodel = "gpt-5"', "lowered the value to 7", (2000, 400, 2000 * 1.25e-6 + 400 * 10e-6)),
        ('preset = "aider"', "aider: return 7", (2500, 310, 0.01)),
        ('preset = "gemini"\nmodel = "gemini-2.5-pro"', "gemini: return 7", (3000, 200, 3000 * 1.25e-6 + 200 * 10e-6)),
        ("preset = \"generic\"\ncommand = 'my-agent'", "generic: return 7", (10, 5, 0.001)),
    ],
)
def test_other_presets(tmp_path, monkeypatch, proposer, hypothesis, usage):
    repo, env = make(tmp_path, proposer)
    monkeypatch.setenv("PATH", env["PATH"])
    Loop(repo, load_config(repo / "ratchet.toml"), iterations=1).run()
    rows = log_json(repo)
    assert [r["verdict"] for r in rows] == ["baseline", "keep"], rows[-1]["reason"]
    assert rows[1]["hypothesis"] == hypothesis
    assert (rows[1]["tokens_in"], rows[1]["tokens_out"]) == usage[:2]
    assert rows[1]["cost_usd"] == pytest.approx(usage[2])


def test_agent_brief_lists_files_over_the_cap_instead_of_refusing(tmp_path, monkeypatch):
    big = {"calc.py": TARGET["calc.py"] + "# padding\n" * 200}
    repo, env = make(tmp_path, "preset = \"generic\"\ncommand = 'my-agent'\nmax_scope_chars = 1000", files=big)
    monkeypatch.setenv("PATH", env["PATH"])
    Loop(repo, load_config(repo / "ratchet.toml"), iterations=1).run()
    brief = seen(repo, 1, "brief.md")
    assert "### calc.py (not shown: the scope is over max_scope_chars; open it yourself)" in brief
    assert "# padding" not in brief
    assert log_json(repo)[1]["verdict"] == "keep"


def test_generic_preset_needs_a_command(tmp_path):
    repo, _ = make(tmp_path, 'preset = "generic"')
    result = run_cli(repo, "run")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "proposer: the generic agent preset needs a command" in result.stdout + result.stderr
