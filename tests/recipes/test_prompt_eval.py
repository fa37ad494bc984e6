"""The prompt-eval recipe end to end, both variants.

ratchet.eval.toml scores a prompt template through an OpenAI-compatible endpoint: here a real
HTTP server on 127.0.0.1 (tests/proposers/fake_llm.py) answers as a stand-in model whose
answers are a deterministic function of the prompt, so a better prompt really scores better.
The harness calls it with the official openai SDK from inside the sandbox, with the key and
base URL passed through [sandbox] env. ratchet.toml, the default, scores landing-page copy with
a deterministic rubric, offline.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import recipe_helpers
from conftest import run_cli, sh
from proposers.fake_llm import FakeLLM, Reply, Request, serve
from recipe_helpers import init_recipe, prepare, scripted_run

from ratchet import Ledger
from ratchet.config import load_config

NAME = "prompt-eval"
KEY = "sk-test-prompt-eval"

# ---------------------------------------------------------------- the stand-in model
#
# It follows what the prompt says the way a weak model does: it knows the four kinds of ticket
# by their words, but calls them by the prompt's labels only when the prompt lists them; it
# answers in bare JSON only when told "only"; it says "urgent" only when the prompt defines it
# (else "high"), and quotes the ticket number only when asked to. Given answered examples
# (`Ticket #n: ... => {json}` lines) it copies the closest one: the answer itself for a ticket it
# was shown, the nearest example's labels for any other ticket (in-context learning as nearest
# neighbour), which is how a prompt that memorizes the eval suite loses on the holdout.

LABELS = ("billing", "bug", "account", "feature")
OWN_WORDS = {"billing": "payment", "bug": "bug", "account": "login", "feature": "feature request"}
KIND_CUES = (  # the first kind whose cue is in the ticket
    ("feature", ("please add", "could you add", "would love", "wish")),
    ("account", ("password", "log in", "login", "locked")),
    ("billing", ("charged", "invoice", "refund", "card")),
    ("bug", ("crash", "error", "down", "blank", "broken")),
)
URGENT_CUES = ("down", "cannot", "lost", "blocked", "locked out")
TICKET = re.compile(r"^\s*(Ticket (#\d+): .*?)\s*$")
EXAMPLE = re.compile(r"^\s*(Ticket #\d+: .*?)\s*=>\s*(\{.*\})\s*$")


def _words(text: str) -> set[str]:
    return {word for word in re.findall(r"[a-z']+", text.lower()) if len(word) >= 4}


def triage_model(request: Request) -> Reply:
    lines = request.prompt.splitlines()
    examples = [(m[1], json.loads(m[2])) for m in map(EXAMPLE.match, lines) if m]
    tickets = [m for line in lines if "=>" not in line and (m := TICKET.match(line))]
    if not tickets:
        return Reply("Happy to help: which ticket should I triage?")
    ticket, number = tickets[-1][1], tickets[-1][2]
    rules = "\n".join(line for line in lines if line.strip() != ticket and "=>" not in line).lower()
    text = ticket.split(":", 1)[1].lower()
    reply = f"Thanks, we are on ticket {number}." if "ticket number" in rules else "Thanks, we are on it."
    if examples:
        shown, copied = max(examples, key=lambda example: len(_words(example[0]) & _words(ticket)))
        answer = copied if shown == ticket else {**copied, "reply": reply}
    else:
        kind = next((name for name, cues in KIND_CUES if any(cue in text for cue in cues)), "bug")
        category = kind if all(label in rules for label in LABELS) else OWN_WORDS[kind]
        urgent = any(cue in text for cue in URGENT_CUES)
        priority = ("urgent" if "urgent" in rules else "high") if urgent else "normal"
        answer = {"category": category, "priority": priority, "reply": reply}
    body = json.dumps(answer)
    if "json" not in rules:
        return Reply(f"This looks like a {answer['category']} issue, priority {answer['priority']}. {answer['reply']}")
    if "only" not in rules:
        return Reply(f"Here is my triage:\n{body}")
    return Reply(body)


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLM]:
    """The stand-in model on 127.0.0.1, and the variables the harness reads, in ratchet's environment."""
    for server in serve():
        server.fallback = triage_model
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_url)
        yield server


@pytest.fixture
def eval_variant(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make scripted_run use ratchet.eval.toml: it edits and runs ratchet.toml, so the copy of
    the example gets the eval variant as its ratchet.toml (as `ratchet demo` would, with this
    interpreter for `python3`)."""
    example = recipe_helpers.prepare

    def with_eval_config(tmp_path: Path, name: str) -> Path:
        repo = example(tmp_path, name)
        text = (repo / "ratchet.eval.toml").read_text().replace('"python3 ', f'"{shlex.quote(sys.executable)} ')
        (repo / "ratchet.toml").write_text(text)
        sh(repo, "git", "commit", "-qam", "the eval variant as ratchet.toml")
        return repo

    monkeypatch.setattr(recipe_helpers, "prepare", with_eval_config)


LINE3 = 'Answer in JSON with the keys "category", "priority" and "reply" (one line back to the customer).'
LABELLED = (
    'Answer with only a JSON object, no other text, with the keys "category" (one of billing, bug, account, feature), '
    '"priority" and "reply" (one line back to the customer).'
)
URGENCY = '"priority" ("urgent" when the customer cannot work, lost data or is locked out, else "normal")'

EVAL_STEPS = [
    # 1. a real improvement: the labels, and the JSON alone (the proposer never gets the key)
    f"""
    assert "OPENAI_API_KEY" not in os.environ, "the proposer got the API key"
    edit("prompt/triage.md", {LINE3!r}, {LABELLED!r})
    hypothesis("name the four labels and ask for the JSON object alone")
    """,
    # 2. a regression: a shorter prompt without the labels
    """
    edit("prompt/triage.md", ' (one of billing, bug, account, feature)', '')
    hypothesis("the label list is noise: the keys say enough")
    """,
    # 3. better answers, but a prompt past the 300-word budget
    f"""
    edit("prompt/triage.md", '"priority"', {URGENCY!r})
    guide = " ".join(["Be warm, patient and precise, and never promise a date you cannot keep."] * 25)
    edit("prompt/triage.md", "{{ticket}}", "Tone: " + guide + "\\n\\n{{ticket}}")
    hypothesis("define urgent, and add the support team's tone guide in full")
    """,
    # 4. the cheat: the eval suite's answers pasted into the prompt (an agent that read eval/)
    """
    import json
    rows = []
    for line in pathlib.Path("eval/scenarios.jsonl").read_text().splitlines():
        scenario = json.loads(line)
        number = scenario["ticket"].split("#")[1].split(":")[0]
        answer = {**scenario["checks"]["exact"], "reply": f"Thanks, we are on ticket #{number}."}
        rows.append(f"{scenario['ticket']} => {json.dumps(answer)}")
    edit("prompt/triage.md", "{ticket}", "Known tickets:\\n" + "\\n".join(rows) + "\\n\\n{ticket}")
    hypothesis("show the model worked examples")
    """,
    # 5. the other cheat: the suite's expected answers rewritten to what the model says
    """
    suite = pathlib.Path("eval/scenarios.jsonl")
    suite.write_text(suite.read_text().replace('"priority": "urgent"', '"priority": "high"'))
    edit("prompt/triage.md", "Read the customer's ticket", "Read the ticket")
    hypothesis("accept 'high' as urgent")
    """,
    # 6. a real improvement, within the budget: what urgent means, and the ticket number
    f"""
    edit("prompt/triage.md", '"priority"', {URGENCY!r})
    edit("prompt/triage.md", "(one line back to the customer)", "(one line back to the customer that quotes the ticket number)")
    hypothesis("define urgent and ask the reply to quote the ticket number")
    """,
]


def test_eval_variant_keeps_a_better_prompt_and_catches_what_is_not(
    tmp_path: Path, stand_in: FakeLLM, eval_variant: None
) -> None:
    # Fewer A/A pairs than the config's and no confirmation race, for time (each measurement
    # loads the openai SDK, about a second): the stand-in is deterministic.
    run = scripted_run(tmp_path, NAME, EVAL_STEPS, config={"verdict": {"calibrate_pairs": 2, "confirm_pairs": 0}})
    output = run.result.stdout + run.result.stderr
    assert run.result.returncode == 0, output
    assert run.verdicts == ["baseline", "keep", "discard", "discard", "overfit", "invalid", "keep"], output
    baseline, labelled, regression, bloated, memorized, edited_suite, final = run.experiments
    assert (baseline.metric, labelled.metric, regression.metric, bloated.metric, final.metric) == (25.0, 68.75, 50.0, 75.0, 100.0)
    assert "prompt-budget" in bloated.reason, bloated.reason
    # The memorized suite scores 100 on it and worse than the champion on the unseen tickets.
    assert memorized.metric == 100.0
    assert memorized.extra["holdout"] < labelled.extra["holdout"], (memorized.extra, labelled.extra)
    assert "eval/scenarios.jsonl" in edited_suite.reason, edited_suite.reason
    assert final.extra["holdout"] > labelled.extra["holdout"]
    # The harness reached the endpoint from inside the sandbox, with the key from [sandbox] env.
    assert stand_in.requests and {r.headers.get("authorization") for r in stand_in.requests} == {f"Bearer {KEY}"}
    kept = sh(run.repo, "git", "show", "ratchet/prompt-eval:prompt/triage.md")
    assert "quotes the ticket number" in kept and "Known tickets" not in kept


LANDING_STEPS = [
    # 1. a real improvement: a measurable outcome the customer study backs
    """
    edit("landing/copy.toml", 'headline = "A better way to review code"', 'headline = "Cut code-review time by 40%"')
    hypothesis("put the study's outcome in the headline")
    """,
    # 2. false scarcity (the catalog's auto-reverted change): the rubric halves the score for it
    """
    edit("landing/copy.toml", 'banner = "Free for open-source projects"', 'banner = "Only 3 seats left at this price!"')
    hypothesis("urgency converts")
    """,
    # 3. proof above the fold, with a number nobody can back: the claims guard
    """
    edit("landing/copy.toml", 'proof = "Loved by developers"', 'proof = "Trusted by 9000 engineering teams"')
    hypothesis("social proof with a big number")
    """,
    # 4. the backed number, and a call to action that says what the visitor gets
    """
    edit("landing/copy.toml", 'proof = "Loved by developers"', 'proof = "Trusted by 1200 engineering teams"')
    edit("landing/copy.toml", 'cta = "Get started"', 'cta = "Start your free 14-day trial"')
    hypothesis("the real team count, and the trial as the call to action")
    """,
]


def test_rubric_variant_reverts_false_scarcity_and_unbacked_numbers(tmp_path: Path) -> None:
    run = scripted_run(tmp_path, NAME, LANDING_STEPS, config={"verdict": {"calibrate_pairs": 2, "confirm_pairs": 0}})
    output = run.result.stdout + run.result.stderr
    assert run.result.returncode == 0, output
    assert run.verdicts == ["baseline", "keep", "discard", "discard", "keep"], output
    assert [e.metric for e in run.experiments] == [25.0, 50.0, 25.0, 75.0, 100.0]
    assert "claims" in run.experiments[3].reason, run.experiments[3].reason
    logs = run.repo / ".ratchet" / "runs" / "landing-copy" / "logs"
    assert any("FAIL  no-false-scarcity" in path.read_text() for path in logs.rglob("*stdout*")), "the rubric did not say why"


def test_the_example_as_it_is_runs_offline_without_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    repo = prepare(tmp_path, NAME)
    result = run_cli(repo, "run", "-n", "2", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    ledger = Ledger(repo / ".ratchet" / "ledger.sqlite")
    try:
        experiments = ledger.experiments("landing-copy")
    finally:
        ledger.close()
    assert [str(e.verdict) for e in experiments][0] == "baseline" and len(experiments) == 3
    assert experiments[0].metric == 25.0


def test_the_eval_harness_says_in_one_line_what_is_missing(tmp_path: Path) -> None:
    repo = prepare(tmp_path, NAME)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no OPENAI_API_KEY
    result = subprocess.run([sys.executable, "-B", "eval/run_eval.py", "eval/scenarios.jsonl"], cwd=repo, env=env, capture_output=True, text=True)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().count("\n") == 0 and "OPENAI_API_KEY is not set" in result.stderr and "[sandbox] env" in result.stderr


def test_init_writes_both_configs_and_their_harnesses(tmp_path: Path) -> None:
    project = tmp_path / "project"
    written = init_recipe(project, NAME)
    assert written == [
        "eval/budget.py", "eval/checks.py", "eval/holdout.jsonl", "eval/model.toml", "eval/run_eval.py", "eval/scenarios.jsonl",
        "program.eval.md", "program.md", "ratchet.eval.toml", "ratchet.toml",
        "rubric/claims.py", "rubric/claims.toml", "rubric/page.py", "rubric/score.py",
    ]  # fmt: skip
    for config in ("ratchet.toml", "ratchet.eval.toml"):
        load_config(project / config)  # raises on anything it does not accept
