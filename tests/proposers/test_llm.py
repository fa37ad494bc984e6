"""The llm proposer: answer parsing and edits, the real SDK clients against a local server, and
whole runs (in process and through the CLI) against that server."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import calc_context, running_experiment, make_repo, run_cli, sh
from fake_llm import FakeLLM, Reply, Request, error, serve
from hypothesis import given, settings
from hypothesis import strategies as st

from ratchet.config import LLMProposerSection, load_config
from ratchet.experiment import Experiment
from ratchet.loop import Loop, RunSummary
from ratchet.proposers._edits import (
    Block,
    EditError,
    MalformedAnswer,
    apply_blocks,
    diff_key,
    parse_answer,
)
from ratchet.proposers._llm_clients import ChatError, Message, open_client
from ratchet.proposers.base import ProposalContext

KEY = "sk-test-SECRET-7f3a9c"
PROVIDERS = ["openai", "anthropic"]


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    yield from serve()


def answer(hypothesis: str, *blocks: tuple[str, str, str], tokens: tuple[int, int] = (100, 20)) -> Reply:
    """A model's answer: a hypothesis line and SEARCH/REPLACE blocks (path, search, replace)."""
    text = f"HYPOTHESIS: {hypothesis}\n"
    for path, search, replace in blocks:
        text += f"\n{path}\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"
    return Reply(text=text, tokens_in=tokens[0], tokens_out=tokens[1])


# ---------------------------------------------------------------- parsing answers


def test_parse_answer_with_fences_names_and_several_files():
    text = """Some thinking first.

HYPOTHESIS: **cache the parse tree**; parsing dominates

`src/a.py`
```python
<<<<<<< SEARCH
x = 1
=======
x = 2
>>>>>>> REPLACE
```

```python
<<<<<<< SEARCH
y = 1
=======
y = 3
>>>>>>> REPLACE
```

**notes.txt**:
<<<<<<< FILE
all new
>>>>>>> FILE
"""
    parsed = parse_answer(text)
    assert parsed.hypothesis.startswith("cache the parse tree")
    assert [b.path for b in parsed.blocks] == ["src/a.py", "src/a.py", "notes.txt"]  # the second block reuses the path
    assert parsed.blocks[0] == Block("src/a.py", ("x = 1",), ("x = 2",))
    assert parsed.blocks[2] == Block("notes.txt", None, ("all new",))


@pytest.mark.parametrize(
    "text, message",
    [
        ("I would change the learning rate.", "no SEARCH/REPLACE or FILE block"),
        ("HYPOTHESIS: h\n\na.py\n<<<<<<< SEARCH\nx\n>>>>>>> REPLACE\n", "expected ======="),
        ("HYPOTHESIS: h\n\na.py\n<<<<<<< SEARCH\nx\n=======\ny\n", "without its >>>>>>> REPLACE"),
        ("HYPOTHESIS: h\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n", "no file name"),
        ("HYPOTHESIS: h\n\na.py\n<<<<<<< FILE\nx\n", "without its >>>>>>> FILE"),
        ("a.py\n>>>>>>> REPLACE\n", "without the block's opening line"),
    ],
)
def test_malformed_answers(text, message):
    with pytest.raises(MalformedAnswer, match=message):
        parse_answer(text)


# ---------------------------------------------------------------- applying blocks

SOURCE = "class Model:\n    def forward(self, x):\n        y = x * 2\n        return y\n\n\ndef helper():\n    return 1\n"


def apply(search: str | None, replace: str, files: dict[str, str] | None = None, limit: int = 200) -> dict[str, str]:
    files = {"m.py": SOURCE} if files is None else files
    block = Block(
        "m.py" if files else "new.py",
        None if search is None else tuple(search.split("\n")),
        tuple(replace.split("\n")),
    )
    return apply_blocks((block,), files.get, limit)


def test_exact_match_replaces_one_place():
    out = apply("        y = x * 2", "        y = x * 3")
    assert out["m.py"] == SOURCE.replace("x * 2", "x * 3")


def test_whitespace_tolerant_match_reindents_the_replacement():
    # The model quoted the method flush left and with odd spacing; the file indents by 4.
    out = apply("def forward(self,  x):\n    y = x * 2", "def forward(self, x):\n    y = x * 2 + 1")
    assert "    def forward(self, x):\n        y = x * 2 + 1\n        return y\n" in out["m.py"]


def test_ambiguous_and_missing_search_text_are_errors_with_hints():
    with pytest.raises(EditError, match=r"matches 2 places \(lines 4, 8\)"):
        apply("return", "return 0", {"m.py": SOURCE.replace("return y", "return").replace("return 1", "return")})
    with pytest.raises(EditError, match=r"(?s)not found.*closest lines.*3 \|         y = x \* 2"):
        apply("        y = x * 20", "        y = 0")


def test_new_file_whole_file_and_its_size_limit():
    assert apply("", "print('hi')", files={})["new.py"] == "print('hi')\n"
    assert apply(None, "x = 1")["m.py"] == "x = 1\n"
    with pytest.raises(EditError, match="8 lines, too many to replace whole"):
        apply(None, "x = 1", limit=5)
    with pytest.raises(EditError, match="no such file"):
        apply_blocks((Block("gone.py", ("x",), ("y",)),), {}.get, 200)


def test_crlf_files_keep_their_line_endings():
    out = apply_blocks((Block("w.txt", ("b",), ("B",)),), {"w.txt": "a\r\nb\r\nc\r\n"}.get, 200)
    assert out["w.txt"] == "a\r\nB\r\nc\r\n"


def test_every_failing_block_is_reported():
    blocks = (Block("m.py", ("nope",), ("x",)), Block("m.py", ("def helper():",), ("def helper2():",)), Block("m.py", ("zzz",), ("x",)))
    with pytest.raises(EditError) as info:
        apply_blocks(blocks, {"m.py": SOURCE}.get, 200)
    assert "block 1 (m.py)" in str(info.value) and "block 3 (m.py)" in str(info.value)
    assert "block 2" not in str(info.value)


@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(st.text(alphabet="abc xy=()", min_size=1, max_size=12), min_size=1, max_size=30, unique=True),
    data=st.data(),
)
def test_a_unique_window_always_applies_exactly(lines, data):
    lines = [line for line in lines if line.strip()] or ["x"]
    text = "\n".join(lines) + "\n"
    start = data.draw(st.integers(0, len(lines) - 1))
    end = data.draw(st.integers(start + 1, len(lines)))
    window = lines[start:end]
    if sum(1 for i in range(len(lines)) if lines[i : i + len(window)] == window) != 1:
        return  # only unique windows are applicable
    out = apply_blocks((Block("f", tuple(window), ("NEW",)),), {"f": text}.get, 200)
    assert out["f"] == "\n".join(lines[:start] + ["NEW"] + lines[end:]) + "\n"


def test_diff_key_names_the_change_not_its_place():
    a = {"f.py": "x = 1\ny = 2\n"}
    assert diff_key(a, {"f.py": "x = 1\ny = 3\n"}) == diff_key({"f.py": "z\nx = 1\ny = 2\n"}, {"f.py": "z\nx = 1\ny = 3\n"})
    assert diff_key(a, {"f.py": "x = 1\ny = 3\n"}) != diff_key(a, {"f.py": "x = 1\ny = 4\n"})
    assert diff_key(a, {"f.py": "x = 1\ny = 2\n"}) is None  # no change at all


# ---------------------------------------------------------------- the SDK clients against the server


def section(fake: FakeLLM, provider: str = "openai", **overrides: object) -> LLMProposerSection:
    values: dict[str, object] = {
        "kind": "llm",
        "provider": provider,
        "model": "test-model",
        "base_url": fake.url(provider),
        "api_key_env": "RATCHET_TEST_KEY",
        "max_retries": 2,
        "timeout": 5,
        "max_tokens": 300,
    }
    values.update(overrides)
    return LLMProposerSection.model_validate(values)


@pytest.fixture
def key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATCHET_TEST_KEY", KEY)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_client_sends_the_request_and_counts_usage(fake_llm, key_env, provider):
    fake_llm.add(Reply(text="hello", tokens_in=321, tokens_out=45))
    client = open_client(section(fake_llm, provider, temperature=0.3))
    reply = client.complete("be brief", [Message("user", "hi")])
    assert (reply.text, reply.tokens_in, reply.tokens_out, reply.retries, reply.estimated) == ("hello", 321, 45, 0, False)
    (request,) = fake_llm.requests
    assert request.body["model"] == "test-model" and request.body["temperature"] == 0.3
    assert "be brief" in request.prompt and "hi" in request.prompt
    assert KEY in (request.headers.get("authorization", "") + request.headers.get("x-api-key", ""))
    assert request.body["max_tokens"] == 300


@pytest.mark.parametrize("provider", PROVIDERS)
def test_429_is_retried_after_the_retry_after_delay(fake_llm, key_env, provider):
    fake_llm.add(error(429, retry_after="1"), Reply(text="ok"))
    reply = open_client(section(fake_llm, provider)).complete("s", [Message("user", "u")])
    assert reply.text == "ok" and reply.retries == 1
    first, second = fake_llm.requests
    assert second.headers["x-stainless-retry-count"] == "1"
    # Honoured: the SDK's own first backoff is at most 0.5 s; retry-after asked for 1 s.
    assert second.at - first.at >= 0.95


@pytest.mark.parametrize("provider", PROVIDERS)
def test_500s_and_slow_answers_are_retried(fake_llm, key_env, provider):
    fake_llm.add(error(500), Reply(text="late", delay=3), Reply(text="ok"))
    reply = open_client(section(fake_llm, provider, timeout=0.5)).complete("s", [Message("user", "u")])
    assert reply.text == "ok" and reply.retries == 2
    assert len(fake_llm.requests) == 3


@pytest.mark.parametrize("provider", PROVIDERS)
def test_retries_are_bounded_and_failures_are_one_line(fake_llm, key_env, provider):
    fake_llm.add(error(500), error(500), error(500))
    with pytest.raises(ChatError, match=r"server error 500 \(after 2 retries\)") as info:
        open_client(section(fake_llm, provider)).complete("s", [Message("user", "u")])
    assert not info.value.fatal and len(fake_llm.requests) == 3  # 1 + max_retries, no second layer of retries
    fake_llm.add(Reply(delay=2), Reply(delay=2))
    with pytest.raises(ChatError, match=r"no answer from .* within 0.3s \(after 1 retry\)"):
        open_client(section(fake_llm, provider, timeout=0.3, max_retries=1)).complete("s", [Message("user", "u")])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_rejected_key_is_fatal_and_never_echoed(fake_llm, key_env, provider):
    fake_llm.add(Reply(status=401, text=f"Incorrect API key provided: {KEY}"))
    with pytest.raises(ChatError) as info:
        open_client(section(fake_llm, provider)).complete("s", [Message("user", "u")])
    assert info.value.fatal and "rejected the API key from $RATCHET_TEST_KEY (401)" in str(info.value)
    assert KEY not in str(info.value)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_malformed_body_and_missing_usage(fake_llm, key_env, provider):
    fake_llm.add(Reply(raw_body=b"{not json"))
    with pytest.raises(ChatError, match="malformed response"):
        open_client(section(fake_llm, provider)).complete("s", [Message("user", "u")])
    fake_llm.add(Reply(text="x" * 90, tokens_in=None))
    reply = open_client(section(fake_llm, provider)).complete("s" * 30, [Message("user", "u" * 30)])
    assert reply.estimated and reply.tokens_in >= 20 and reply.tokens_out >= 30  # counted from the text, generously


def test_missing_key_and_missing_sdk_are_clear(fake_llm, monkeypatch):
    monkeypatch.delenv("RATCHET_TEST_KEY", raising=False)
    with pytest.raises(ChatError, match="no API key: set the environment variable RATCHET_TEST_KEY"):
        open_client(section(fake_llm))
    monkeypatch.setenv("RATCHET_TEST_KEY", KEY)
    monkeypatch.setitem(sys.modules, "anthropic", None)  # what Python does when a package is absent
    with pytest.raises(ChatError, match=r"the anthropic package is not installed: pip install 'ratchet\[llm\]'"):
        open_client(section(fake_llm, "anthropic"))


# ---------------------------------------------------------------- whole runs, in process

TARGET = {
    "calc.py": "def value():\n    return 10\n",
    "bench.py": (
        "import os, sys\nfrom calc import value\nprint('candidate sees the key:', 'RATCHET_TEST_KEY' in os.environ)\n"
        "v = value()\nif v < 0:\n    sys.exit('boom: negative value ' + str(v))\nprint('metric:', v)\n"
    ),
    "program.md": "Make value() small.\n",
}


def llm_config(fake: FakeLLM, *, provider: str = "openai", proposer: str = "", budget: str = "iterations = 10", max_tokens: int = 500) -> str:
    return f"""
[run]
name = "t"
[scope]
mutable = ["calc.py"]
harness = ["bench.py"]
[metric]
name = "number"
command = "{sys.executable} bench.py"
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
kind = "llm"
provider = "{provider}"
model = "test-model"
base_url = "{fake.url(provider)}"
api_key_env = "RATCHET_TEST_KEY"
max_retries = 1
timeout = "10s"
max_tokens = {max_tokens}
{proposer}
"""


def run_loop(repo: Path, iterations: int | None = None) -> list[dict]:
    return run_loop_summary(repo, iterations)[1]


def run_loop_summary(repo: Path, iterations: int | None = None) -> tuple[RunSummary, list[dict]]:
    summary = Loop(repo, load_config(repo / "ratchet.toml"), iterations=iterations).run()
    out = run_cli(repo, "log", "--json")
    assert out.returncode == 0, out.stderr
    return summary, json.loads(out.stdout)


def test_prompt_holds_what_the_loop_knows_and_nothing_secret(tmp_path, fake_llm, key_env):
    extra = """
history_rows = 3
[[proposer.context_commands]]
name = "env-check"
command = "python3 -c \\"import os; print('key visible' if 'RATCHET_TEST_KEY' in os.environ else 'key hidden'); open('junk.prof', 'w')\\""
"""
    repo = make_repo(tmp_path / "repo", TARGET, llm_config(fake_llm, proposer=extra))
    fake_llm.add(
        answer("go negative", ("calc.py", "    return 10", "    return -1")),  # crashes the bench
        answer("seven", ("calc.py", "    return 10", "    return 7")),
        answer("eight", ("calc.py", "    return 7", "    return 8")),
        answer("six", ("calc.py", "    return 7", "    return 6")),
        answer("five", ("calc.py", "    return 6", "    return 5")),
    )
    rows = run_loop(repo, iterations=5)
    assert [r["verdict"] for r in rows] == ["baseline", "crash", "keep", "discard", "keep", "keep"]
    prompts = [r.prompt for r in fake_llm.requests]
    second, last = prompts[1], prompts[-1]
    assert "Make value() small." in second and "lower is better" in second and "def value():\n    return 10" in second
    assert "## Last failure: experiment 1 (crash)" in second and "boom: negative value -1" in second
    assert "```\nkey hidden\n```" in second and KEY not in "".join(prompts)  # the context command's output
    # The history table: bounded to 3 rows, older ones summarized, changes against the champion of their time.
    assert "| 3 | discard | 8 | +14.29% | eight |" in last and "| 0 | baseline" not in last
    assert "2 older experiments not shown: 1 baseline, 1 crash" in last
    # What a context command leaves behind is not part of the next candidate.
    assert not any("junk.prof" in r.get("reason", "") for r in rows)
    assert "junk.prof" not in sh(repo, "git", "log", "--stat", "ratchet/t")


def test_plateau_changes_strategy_until_the_next_keep(tmp_path, fake_llm, key_env):
    repo = make_repo(tmp_path / "repo", TARGET, llm_config(fake_llm, proposer="plateau = 2"))
    fake_llm.add(
        answer("eleven", ("calc.py", "    return 10", "    return 11")),
        answer("twelve", ("calc.py", "    return 10", "    return 12")),
        answer("nine", ("calc.py", "    return 10", "    return 9")),  # asked under the plateau strategy
        answer("eight", ("calc.py", "    return 9", "    return 8")),
    )
    rows = run_loop(repo, iterations=4)
    assert [r["verdict"] for r in rows] == ["baseline", "discard", "discard", "keep", "keep"]
    prompts = [r.prompt for r in fake_llm.requests]
    assert "Strategy: you are stuck" not in prompts[1]
    assert "Strategy: you are stuck" in prompts[2] and "experiment 1: number 11: eleven" in prompts[2]
    assert "Strategy: you are stuck" not in prompts[3]
    assert [r["proposal"]["strategy"] for r in rows[1:]] == ["normal", "normal", "plateau", "normal"]


def test_identical_proposals_are_not_measured_twice(tmp_path, fake_llm, key_env):
    repo = make_repo(tmp_path / "repo", TARGET, llm_config(fake_llm, provider="anthropic"))
    same = ("calc.py", "    return 10", "    return 12")
    fake_llm.add(
        answer("twelve", same),
        answer("twelve again", same),  # the same change: the model is told and asked again...
        answer("still twelve", same),  # ...and repeats it: not measured
        answer("twelve once more", same),
        answer("nine instead", ("calc.py", "    return 10", "    return 9")),  # after the note: a new idea
    )
    rows = run_loop(repo, iterations=3)
    assert [r["verdict"] for r in rows] == ["baseline", "discard", "invalid", "keep"]
    assert "the same change as experiment 1; not measured again" in rows[2]["reason"]
    assert rows[2]["tokens_in"] == 200 and rows[2]["cost_usd"] == 0  # both calls counted; no price known
    assert "already tried as experiment 1 (discard, number 12)" in fake_llm.requests[2].prompt
    assert rows[3]["hypothesis"] == "nine instead" and rows[3]["proposal"]["calls"] == 2
    # Only three candidates were measured: the bench ran for the baseline and experiments 1 and 3.
    assert len(list((repo / ".ratchet/runs/t/logs/0002").glob("metric*"))) == 0


def test_token_budget_stops_before_a_call_could_exceed_it(tmp_path, fake_llm, key_env):
    repo = make_repo(tmp_path / "repo", TARGET, llm_config(fake_llm, budget="tokens = 3000"))
    fake_llm.add(*[answer(f"n{n}", ("calc.py", f"    return {10 - n + 1}", f"    return {10 - n}"), tokens=(600, 100)) for n in range(1, 9)])
    summary, rows = run_loop_summary(repo)
    spent = sum((r["tokens_in"] or 0) + (r["tokens_out"] or 0) for r in rows)
    assert spent <= 3000 and len(rows) >= 3
    match = re.fullmatch(r"token budget: the next call could use up to ([\d,]+) tokens, ([\d,]+) left", summary.stop_reason)
    assert match, summary.stop_reason
    worst, left = (int(g.replace(",", "")) for g in match.groups())
    assert left == 3000 - spent and worst > left and worst > 500  # the prompt estimate plus max_tokens


def test_holdout_values_never_reach_the_prompt(tmp_path, fake_llm, key_env):
    holdout = f"""
[holdout]
command = "{sys.executable} holdout.py"
last_number = true
direction = "minimize"
max_regression = "1000%"
"""
    files = {**TARGET, "holdout.py": "from calc import value\nprint(value() + 0.987654321)\n"}
    config = llm_config(fake_llm).replace('harness = ["bench.py"]', 'harness = ["bench.py", "holdout.py"]') + holdout
    repo = make_repo(tmp_path / "repo", files, config)
    fake_llm.add(
        answer("eight", ("calc.py", "    return 10", "    return 8")),
        answer("nine", ("calc.py", "    return 8", "    return 9")),
        answer("seven", ("calc.py", "    return 8", "    return 7")),
    )
    rows = run_loop(repo, iterations=3)
    assert [r["verdict"] for r in rows] == ["baseline", "keep", "discard", "keep"]
    assert rows[1]["extra"]["holdout"] == 8.987654321  # measured, recorded...
    prompts = "".join(r.prompt for r in fake_llm.requests)
    assert "987654" not in prompts and "holdout.py" not in prompts  # ...never shown


def test_edits_outside_the_scope_are_rejected_and_bad_paths_repaired(tmp_path, fake_llm, key_env):
    repo = make_repo(tmp_path / "repo", TARGET, llm_config(fake_llm))
    fake_llm.add(
        answer("fake the bench", ("bench.py", "print('metric:', v)", "print('metric:', 0)")),
        answer("escape", ("../outside.py", "", "x = 1")),
        answer("nine", ("calc.py", "    return 10", "    return 9")),
    )
    rows = run_loop(repo, iterations=2)
    assert [r["verdict"] for r in rows] == ["baseline", "invalid", "keep"]
    assert rows[1]["reason"].startswith("rejected before measuring") and "bench.py" in rows[1]["reason"]
    assert "block 1 (../outside.py): not a plain path inside the repository" in fake_llm.requests[2].prompt
    assert not (tmp_path / "outside.py").exists()


def test_user_templates_replace_the_bundled_ones(tmp_path, fake_llm, key_env):
    files = {**TARGET, "prompts/prompt.j2": "CUSTOM PROMPT for {{ metric }} ({{ better }} is better)\n{% include 'context.j2' %}\n"}
    repo = make_repo(tmp_path / "repo", files, llm_config(fake_llm, proposer='templates = "prompts"'))
    fake_llm.add(answer("nine", ("calc.py", "    return 10", "    return 9")))
    rows = run_loop(repo, iterations=1)
    assert rows[-1]["verdict"] == "keep"
    assert "CUSTOM PROMPT for number (lower is better)" in fake_llm.requests[0].prompt
    assert "HYPOTHESIS:" in fake_llm.requests[0].prompt  # system.j2 is still the bundled one


# ---------------------------------------------------------------- several workers: what is in flight


def proposing_context(tmp_path: Path, iteration: int = 3, in_flight: tuple[Experiment, ...] = ()) -> ProposalContext:
    return calc_context(tmp_path, iteration, in_flight, worktree=tmp_path / "worktree", source=TARGET["calc.py"])


def in_flight(id: int, hypothesis: str = "", meta: dict | None = None) -> Experiment:
    return running_experiment(id, "llm", hypothesis, meta)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_prompt_names_what_is_in_flight_only_when_something_is(tmp_path, fake_llm, key_env, provider):
    from ratchet.proposers.llm import LLMProposer

    proposer = LLMProposer(section(fake_llm, provider), root=tmp_path)
    proposer.resume((), tmp_path / "state")
    for _ in range(3):
        fake_llm.add(answer("nine", ("calc.py", "    return 10", "    return 9")))
    proposer.propose(proposing_context(tmp_path))  # one worker: nothing else in flight
    # Several workers: #1 is being measured, #2 is still being proposed (nothing to avoid yet).
    running = (in_flight(1, "return 8 instead of 10, fewer steps"), in_flight(2))
    proposer.propose(proposing_context(tmp_path, in_flight=running))
    proposer.propose(proposing_context(tmp_path, in_flight=(in_flight(2),)))
    alone, busy, unproposed = (r.prompt for r in fake_llm.requests)
    assert "Being measured now" not in alone
    assert "## Being measured now: do not propose these again\n- #1 return 8 instead of 10, fewer steps\n" in busy
    assert "#2" not in busy
    # The section sits after the history and is the only difference: with nothing proposed in
    # flight, the prompt is the one-worker prompt, byte for byte.
    assert busy.index("## History") < busy.index("## Being measured now")
    assert unproposed == alone
    assert busy.replace("\n\n## Being measured now: do not propose these again\n- #1 return 8 instead of 10, fewer steps", "") == alone


def test_the_in_flight_section_is_bounded(tmp_path, fake_llm, key_env):
    from ratchet.proposers.brief import IN_FLIGHT_ROWS
    from ratchet.proposers.llm import LLMProposer

    proposer = LLMProposer(section(fake_llm), root=tmp_path)
    proposer.resume((), tmp_path / "state")
    fake_llm.add(answer("nine", ("calc.py", "    return 10", "    return 9")))
    running = tuple(in_flight(i, f"idea {i} " + "x" * 500) for i in range(10, 10 + IN_FLIGHT_ROWS + 5))
    proposer.propose(proposing_context(tmp_path, iteration=100, in_flight=running))
    prompt = fake_llm.requests[0].prompt
    rows = [line for line in prompt.splitlines() if line.startswith("- #")]
    assert len(rows) == IN_FLIGHT_ROWS and all(len(row) < 140 for row in rows)
    assert "- … and 5 more" in prompt


def test_a_change_already_in_flight_is_a_repeat(tmp_path, fake_llm, key_env):
    from ratchet.proposers.llm import LLMProposer

    proposer = LLMProposer(section(fake_llm), root=tmp_path)
    proposer.resume((), tmp_path / "state")
    same = ("calc.py", "    return 10", "    return 9")
    fake_llm.add(answer("nine", same))
    first = proposer.propose(proposing_context(tmp_path, iteration=1))
    fake_llm.add(answer("nine as well", same), answer("eight", ("calc.py", "    return 10", "    return 8")))
    running = (in_flight(1, first.hypothesis, dict(first.meta)),)
    second = proposer.propose(proposing_context(tmp_path, iteration=2, in_flight=running))
    assert second.hypothesis == "eight" and second.meta["calls"] == 2
    assert "already tried as experiment 1 (being measured now)" in fake_llm.requests[-1].prompt


def test_llm_proposals_are_made_side_by_side(tmp_path, fake_llm, key_env):
    import threading

    from ratchet.proposers.llm import LLMProposer

    assert LLMProposer.concurrent is True
    proposer = LLMProposer(section(fake_llm), root=tmp_path)
    proposer.resume((), tmp_path / "state")
    # Each answer is held until all four requests have arrived: only calls made at once can pass.
    arrived = threading.Barrier(4, timeout=20)

    def held(request: Request) -> Reply:
        arrived.wait()
        n = re.search(r"# Experiment (\d+)", request.prompt).group(1)  # type: ignore[union-attr]
        return answer(f"n{n}", ("calc.py", "    return 10", f"    return {n}"))

    fake_llm.add(*[held] * 4)
    results: dict[int, object] = {}

    def propose(i: int) -> None:
        try:
            results[i] = proposer.propose(proposing_context(tmp_path / str(i), iteration=i))
        except Exception as exc:  # noqa: BLE001 - checked below
            results[i] = exc

    threads = [threading.Thread(target=propose, args=(i,)) for i in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {i: r.hypothesis for i, r in results.items()} == {i: f"n{i}" for i in range(1, 5)}  # type: ignore[union-attr]
    assert {i: r.edits["calc.py"] for i, r in results.items()} == {  # type: ignore[union-attr]
        i: f"def value():\n    return {i}\n" for i in range(1, 5)
    }


# ---------------------------------------------------------------- through the CLI, as a user runs it


def cli_env() -> dict[str, str]:
    return {"RATCHET_TEST_KEY": KEY}


def test_must_show_llm_run_end_to_end(tmp_path, fake_llm):
    """Keeps an improvement, discards a regression, repairs a failed SEARCH block, survives a 429
    and a malformed answer, stops on the money budget, shows tokens and cost per experiment."""
    proposer = """
[proposer.prices."test-model"]
input = 10
output = 100
[[proposer.context_commands]]
name = "env-check"
command = "python3 -c \\"import os; print('key visible' if 'RATCHET_TEST_KEY' in os.environ else 'key hidden')\\""
"""
    # Each answered call costs 1000 * $10/M + 1000 * $100/M = $0.11; with max_tokens 1000 the worst
    # case of a call is a little over $0.10: six calls fit in $0.72, a seventh would not.
    config = llm_config(fake_llm, proposer=proposer, budget="iterations = 20\ncost_usd = 0.72", max_tokens=1000)
    repo = make_repo(tmp_path / "repo", TARGET, config)
    billed = (1000, 1000)
    fake_llm.add(
        error(429, retry_after="1"),
        answer("seven", ("calc.py", "    return 10", "    return 7"), tokens=billed),  # keep
        answer("nine", ("calc.py", "    return 7", "    return 9"), tokens=billed),  # discard
        answer("five", ("calc.py", "    return 99", "    return 5"), tokens=billed),  # SEARCH fails...
        answer("five", ("calc.py", "    return 7", "    return 5"), tokens=billed),  # ...repaired: keep
        Reply(text="Let me think about this problem more before editing.", tokens_in=1000, tokens_out=1000),  # malformed
        error(500),
        answer("four", ("calc.py", "return   5", "return 4"), tokens=billed),  # whitespace-tolerant: keep
        answer("never asked", ("calc.py", "return 4", "return 3"), tokens=billed),
    )
    result = run_cli(repo, "run", env=cli_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"money budget: the next call could cost up to \$0\.1\d+, \$0\.0600 left", result.stdout), result.stdout
    assert len(fake_llm.requests) == 8  # the ninth answer was never asked for

    rows = json.loads(run_cli(repo, "log", "--json").stdout)
    assert [r["verdict"] for r in rows] == ["baseline", "keep", "discard", "keep", "invalid", "keep"]
    assert [r["tokens_in"] for r in rows] == [None, 1000, 1000, 2000, 1000, 1000]
    assert [r["tokens_out"] for r in rows] == [None, 1000, 1000, 2000, 1000, 1000]
    assert [r["cost_usd"] and round(r["cost_usd"], 6) for r in rows] == [None, 0.11, 0.11, 0.22, 0.11, 0.11]
    assert sum(r["cost_usd"] or 0 for r in rows) <= 0.72
    assert rows[1]["proposal"]["retries"] == 1 and rows[5]["proposal"]["retries"] == 1  # the 429 and the 500
    assert rows[3]["proposal"]["repaired"] is True
    assert "the SEARCH text was not found" in fake_llm.requests[4].prompt  # the repair carried the error
    assert rows[4]["reason"].startswith("proposer: malformed answer")
    assert fake_llm.requests[1].at - fake_llm.requests[0].at >= 0.95  # retry-after honoured
    assert sh(repo, "git", "show", "ratchet/t:calc.py") == "def value():\n    return 4\n"

    status = json.loads(run_cli(repo, "status", "--json").stdout)
    assert round(status["cost_usd"], 6) == 0.66 and status["tokens"] == 12000

    # The key was used, and is nowhere else: not in the ledger, logs, prompts or output.
    assert all(r.headers.get("authorization") == f"Bearer {KEY}" for r in fake_llm.requests)
    assert "```\nkey hidden\n```" in fake_llm.requests[1].prompt
    for path in (repo / ".ratchet").rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    measured = list((repo / ".ratchet").rglob("metric.stdout"))
    assert len(measured) >= 5 and all("candidate sees the key: False" in p.read_text() for p in measured)
    assert KEY not in result.stdout + result.stderr


def test_cli_errors_are_one_clear_line(tmp_path, fake_llm):
    repo = make_repo(tmp_path / "repo", TARGET, llm_config(fake_llm))
    result = run_cli(repo, "run", env={"RATCHET_TEST_KEY": ""})
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "no API key: set the environment variable RATCHET_TEST_KEY" in result.stdout + result.stderr

    big = {**TARGET, "calc.py": TARGET["calc.py"] + "# padding\n" * 200}
    repo = make_repo(tmp_path / "big", big, llm_config(fake_llm, proposer="max_scope_chars = 1000"))
    result = run_cli(repo, "run", env=cli_env())
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "the scope is too large to send: 2,058 characters with headings in 1 file (largest: calc.py 2,027)" in result.stdout + result.stderr
    assert fake_llm.requests == []

    repo = make_repo(tmp_path / "priced", TARGET, llm_config(fake_llm, budget="cost_usd = 1"))
    result = run_cli(repo, "run", env=cli_env())
    assert result.returncode != 0
    assert """needs the price of model 'test-model'""" in result.stdout + result.stderr

    files = {**TARGET, "prompts/system.j2": "{% if %}\n"}
    repo = make_repo(tmp_path / "templ", files, llm_config(fake_llm, proposer='templates = "prompts"'))
    result = run_cli(repo, "run", env=cli_env())
    assert result.returncode != 0 and "system.j2:1:" in result.stdout + result.stderr

    fake_llm.add(Reply(status=401, text="bad key"))
    repo = make_repo(tmp_path / "rejected", TARGET, llm_config(fake_llm))
    result = run_cli(repo, "run", env=cli_env())
    assert result.returncode != 0 and "cannot go on" in result.stdout + result.stderr
    assert len(fake_llm.requests) == 1  # not retried, not tried again by the loop


def test_rework_sends_the_guard_output_and_mends_the_candidate(tmp_path, fake_llm, key_env):
    guard = f"""
[[guards]]
name = "even"
command = "{sys.executable} -c \\"import sys; from calc import value; print('odd value', value()) if value() % 2 else None; sys.exit(value() % 2)\\""
"""
    config = llm_config(fake_llm).replace("[verdict]", "[verdict]\nrework = 1") + guard
    repo = make_repo(tmp_path / "repo", TARGET, config)
    fake_llm.add(
        answer("seven", ("calc.py", "    return 10", "    return 7")),  # better, but odd: the guard fails
        answer("six instead", ("calc.py", "    return 7", "    return 6")),  # the mend, on the candidate
    )
    rows = run_loop(repo, iterations=1)
    assert [r["verdict"] for r in rows] == ["baseline", "keep"]
    assert rows[1]["hypothesis"] == "seven (mended: six instead)" and rows[1]["metric"] == 6
    mend_prompt = fake_llm.requests[1].prompt
    assert "## Rework: your candidate failed a guard" in mend_prompt
    assert "guard even failed: exit 1" in mend_prompt and "odd value 7" in mend_prompt
    assert "    return 7" in mend_prompt  # it saw the candidate, not the champion
    assert rows[1]["tokens_in"] == 200  # both calls counted
    assert sh(repo, "git", "show", "ratchet/t:calc.py") == "def value():\n    return 6\n"
