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
env = ["STANDIN_*", "OPENAI_BASE_URL"]
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
# Codex ignores OPENAI_BASE_URL: the preset passes it as the config override Codex reads.
url = os.environ.get("OPENAI_BASE_URL")
assert ("-c" in args and args[args.index("-c") + 1] == f"openai_base_url={url}") if url else "-c" not in args, args
old, new = edit(sys.stdin.read())
# STANDIN_CODEX = "1:failed,2:cut": how experiment n ends (default: the turn completes).
mode = dict(item.split(":") for item in os.environ.get("STANDIN_CODEX", "").split(",") if item).get(str(n), "completed")
# What codex exec --json prints on a WebSocket reconnect: a top-level error, then a warning item.
events = [{"type": "thread.started", "thread_id": "019b4c2e-7d1a-7e22-9b1f-3c0a6f1d2e44"}, {"type": "turn.started"},
          {"type": "error", "message": "Reconnecting... 1/5 (stream disconnected before completion: error sending request for url (wss://api.openai.com/v1/responses))"},
          {"type": "item.completed", "item": {"id": "item_0", "type": "error", "message": "Falling back from WebSockets to HTTPS transport. stream disconnected before completion"}}]
if mode == "failed":
    events.append({"type": "turn.failed", "error": {"message": "unexpected status 401 Unauthorized: Incorrect API key provided"}})
elif mode == "cut":
    events.append({"type": "error", "message": "Reconnecting... 5/5 (stream disconnected before completion)"})
else:
    events += [{"type": "item.completed", "item": {"id": "item_1", "type": "agent_message", "text": f"lowered the value to {new}\nmore words"}},
               {"type": "turn.completed", "usage": {"input_tokens": 2000, "cached_input_tokens": 500, "cache_write_input_tokens": 0,
                                                    "output_tokens": 400, "reasoning_output_tokens": 150}}]
for event in events:
    print(json.dumps(event))
sys.exit(0 if mode == "completed" else 1)
''',
    "aider": r'''
assert "--no-auto-commits" in args and "--yes-always" in args and args[-1] == "calc.py", args
assert "--analytics-disable" in args, args  # else --yes-always may opt in to analytics
brief = open(args[args.index("--message-file") + 1]).read()
old, new = edit(brief)
open(os.environ["RATCHET_HYPOTHESIS_FILE"], "w").write(f"aider: return {new}")
print("Applied edit to calc.py")
# aider's usage lines with prompt caching; the cost is printed only for models it knows.
cost = os.environ.get("STANDIN_AIDER_COST", "1") == "1"
print("Tokens: 12k sent, 3.1k cache hit, 240 received." + (" Cost: $0.03 message, $0.03 session." if cost else ""))
print("Tokens: 2.5k sent, 1.2k cache write, 3.1k cache hit, 310 received." + ("\nCost: $0.01 message, $0.04 session." if cost else ""))
''',
    "gemini": r'''
assert args[args.index("--approval-mode") + 1] == "auto_edit" and args[args.index("--output-format") + 1] == "json", args
assert os.environ.get("GEMINI_CLI_TRUST_WORKSPACE") == "true" and args[args.index("-m") + 1] == "gemini-2.5-pro"
old, new = edit(sys.stdin.read())
if os.environ.get("STANDIN_FAIL") == str(n):
    # Gemini CLI 0.61 on a failure: stdout empty, the JSON object (pretty-printed) on stderr, exit 41.
    print("Loaded cached credentials.", file=sys.stderr)
    print(json.dumps({"session_id": "b2b90938-611f-4bd0-adf6-829e14549653", "error": {"type": "Error",
          "message": "Please set an Auth method in your /root/.gemini/settings.json", "code": 41}}, indent=2), file=sys.stderr)
    sys.exit(41)
open(os.environ["RATCHET_HYPOTHESIS_FILE"], "w").write(f"gemini: return {new}")
# "prompt" includes "cached" ("input" = prompt - cached); "thoughts" are billed as output.
tokens = {"input": 2500, "prompt": 3000, "candidates": 200, "total": 3500, "cached": 500, "thoughts": 300, "tool": 0}
api = {"totalRequests": 2, "totalErrors": 0, "totalLatencyMs": 5120}
models = {"gemini-2.5-pro": {"api": api, "tokens": tokens}}
if os.environ.get("STANDIN_GEMINI_ALSO"):  # a second model (its utility router), as the CLI may use one
    models[os.environ["STANDIN_GEMINI_ALSO"]] = {"api": {"totalRequests": 1}, "tokens": {"prompt": 100, "candidates": 5, "total": 105}}
print(json.dumps({"session_id": "s1", "response": "done", "stats": {"models": models,
                  "tools": {"totalCalls": 1}, "files": {"totalLinesAdded": 1, "totalLinesRemoved": 1}}}, indent=2))
''',
    "my-agent": r'''
old, new = edit(open(os.environ["RATCHET_BRIEF_FILE"]).read())
open(os.environ["RATCHET_HYPOTHESIS_FILE"], "w").write(f"generic: return {new}")
spent = {"tokens_in": 10, "tokens_out": 5, "cost_usd": 0.001}
if os.environ.get("STANDIN_NO_COST"):
    del spent["cost_usd"]
json.dump(spent, open(os.environ["RATCHET_USAGE_FILE"], "w"))
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


# aider's usage lines without a cost (a model aider cannot price): ratchet prices them for gpt-5
# (cache writes, which gpt-5 has no rate for, at the input rate).
AIDER_GPT5 = (12000 * 1.25e-6 + 3100 * 0.125e-6 + 240 * 10e-6) + (2500 * 1.25e-6 + 3100 * 0.125e-6 + 310 * 10e-6)


@pytest.mark.parametrize(
    "proposer, standin, hypothesis, usage",
    [
        # The stream has Codex's transient reconnect error before turn.completed: a keep.
        # gpt-5: $1.25 input, $0.125 cached input, $10 output per million (genai-prices);
        # output_tokens already holds the 150 reasoning tokens.
        ('preset = "codex"\nmodel = "gpt-5"', {}, "lowered the value to 7", (2000, 400, 1500 * 1.25e-6 + 500 * 0.125e-6 + 400 * 10e-6)),
        # A [proposer.prices] entry prices a model the table does not know (cached input at its one input rate).
        ('preset = "codex"\nmodel = "my-proxy-model"\n[proposer.prices."my-proxy-model"]\ninput = 1.0\noutput = 2.0', {},
         "lowered the value to 7", (2000, 400, 2000 * 1e-6 + 400 * 2e-6)),
        # aider's own cost; cache hits are counted apart from "sent".
        ('preset = "aider"\nmodel = "gpt-5"', {}, "aider: return 7", (12000 + 3100 + 2500 + 3100, 550, 0.04)),
        ('preset = "aider"\nmodel = "gpt-5"', {"STANDIN_AIDER_COST": "0"}, "aider: return 7", (12000 + 3100 + 2500 + 3100, 550, AIDER_GPT5)),
        # gemini-2.5-pro: $1.25, $0.125 cached, $10 out; output = candidates + thoughts.
        ('preset = "gemini"\nmodel = "gemini-2.5-pro"', {}, "gemini: return 7", (3000, 500, 2500 * 1.25e-6 + 500 * 0.125e-6 + 500 * 10e-6)),
        ("preset = \"generic\"\ncommand = 'my-agent'", {}, "generic: return 7", (10, 5, 0.001)),
    ],
)
def test_other_presets(tmp_path, monkeypatch, proposer, standin, hypothesis, usage):
    """Each preset under a money budget: it starts (its cost is known), keeps, and records what it spent."""
    repo, env = make(tmp_path, proposer, budget="iterations = 3\ncost_usd = 5")
    for key, value in {**env, **standin}.items():
        monkeypatch.setenv(key, value)
    Loop(repo, load_config(repo / "ratchet.toml"), iterations=1).run()
    rows = log_json(repo)
    assert [r["verdict"] for r in rows] == ["baseline", "keep"], rows[-1]["reason"]
    assert rows[1]["hypothesis"] == hypothesis
    assert (rows[1]["tokens_in"], rows[1]["tokens_out"]) == usage[:2]
    assert rows[1]["cost_usd"] == pytest.approx(usage[2])


@pytest.mark.parametrize(
    "proposer, standin, reasons",
    [
        (
            'preset = "codex"\nmodel = "gpt-5"',
            # Codex reads its base URL from -c openai_base_url (the stand-in checks the preset passes it).
            {"STANDIN_CODEX": "1:failed,2:cut", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"},
            [
                "the codex agent reported an error: unexpected status 401 Unauthorized: Incorrect API key provided",
                "the codex agent reported an error: Reconnecting... 5/5 (stream disconnected before completion)",
            ],
        ),
        (
            'preset = "gemini"\nmodel = "gemini-2.5-pro"',
            {"STANDIN_FAIL": "1"},
            ["the gemini agent reported an error: Please set an Auth method in your /root/.gemini/settings.json (code 41)"],
        ),
    ],
)
def test_agent_failures_show_the_cli_s_own_message(tmp_path, monkeypatch, proposer, standin, reasons):
    """turn.failed, an error with no later turn.completed, Gemini's JSON on stderr: invalid, in the CLI's words."""
    repo, env = make(tmp_path, proposer)
    for key, value in {**env, **standin}.items():
        monkeypatch.setenv(key, value)
    Loop(repo, load_config(repo / "ratchet.toml"), iterations=len(reasons) + 1).run()
    rows = log_json(repo)
    assert [r["verdict"] for r in rows] == ["baseline", *["invalid"] * len(reasons), "keep"]
    assert [r["reason"] for r in rows[1:-1]] == [f"proposer: {reason}" for reason in reasons]


@pytest.mark.parametrize(
    "proposer, line",
    [
        (
            'preset = "codex"\nmodel = "gpt-nonexistent-9"',
            "the agent proposer cannot start: [budget] cost_usd needs the price of model 'gpt-nonexistent-9', which "
            'ratchet does not know: add [proposer.prices."gpt-nonexistent-9"] with input = ... and output = ... '
            "(dollars per million tokens)",
        ),
        (
            'preset = "aider"',
            "the agent proposer cannot start: [budget] cost_usd needs the price of the aider agent's model, and none "
            "is set: set [proposer] model (the aider CLI does not always report dollars)",
        ),
    ],
)
def test_money_budget_refuses_an_agent_it_cannot_price(tmp_path, proposer, line):
    repo, env = make(tmp_path, proposer, budget="iterations = 2\ncost_usd = 1")
    result = run_cli(repo, "run", env={**env, "COLUMNS": "400"})
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output
    assert [text.strip() for text in output.splitlines() if "cost_usd needs" in text] == [f"ratchet: error: {line}"]
    assert not (repo / ".ratchet/runs/t/logs/0001").exists()  # the agent never ran


@pytest.mark.parametrize(
    "proposer, standin, line",
    [
        (
            "preset = \"generic\"\ncommand = 'my-agent'",
            {"STANDIN_NO_COST": "1"},
            "[budget] cost_usd needs what the generic agent spent: it wrote no cost_usd to $RATCHET_USAGE_FILE",
        ),
        (
            'preset = "gemini"\nmodel = "gemini-2.5-pro"',
            {"STANDIN_GEMINI_ALSO": "gemini-nonexistent-router"},
            "[budget] cost_usd needs the price of model 'gemini-nonexistent-router', which ratchet does not know",
        ),
    ],
)
def test_money_budget_stops_a_run_whose_cost_is_unknown(tmp_path, proposer, standin, line):
    """What the CLI's output leaves unpriced is not counted as free: the run stops, one clear line."""
    repo, env = make(tmp_path, proposer, budget="iterations = 2\ncost_usd = 1")
    result = run_cli(repo, "run", env={**env, **standin, "COLUMNS": "400"})
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output
    assert f"the agent proposer cannot go on: {line}" in output
    assert [r["verdict"] for r in log_json(repo)] == ["baseline"]


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
