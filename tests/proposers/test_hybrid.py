"""The hybrid proposer: an LLM (the local fake server) proposes a structure, TPE tunes its numbers.

The target is the earth-system case in miniature: a formula (model.py, the scope) predicts data
that the frozen harness scores by RMSE. The baseline is linear; the truth is quadratic.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_repo, run_cli, sh
from fake_llm import FakeLLM, Reply, serve

TARGET = {
    "model.py": "a = 1.0  # ratchet: -3..3\nb = -3.0  # ratchet: -3..3\n\ndef predict(x):\n    return a * x + b\n",
    "bench.py": (
        "from model import predict\n"
        "xs = [i / 10 for i in range(-20, 21)]\n"
        "err = sum((predict(x) - (2.0 * x * x + 0.5)) ** 2 for x in xs) / len(xs)\n"
        "print('rmse:', err ** 0.5)\n"
    ),
    "program.md": "Fit the data: lower RMSE.\n",
}


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    yield from serve()


def config(fake: FakeLLM, *, tuning_trials: int = 6, iterations: int = 7) -> str:
    return f"""
[run]
name = "h"
[scope]
mutable = ["model.py"]
harness = ["bench.py"]
[metric]
name = "rmse"
command = "{sys.executable} bench.py"
regex = 'rmse: (\\S+)'
direction = "minimize"
timeout = "20s"
[verdict]
# Deterministic targets: no noise calibration or confirmation race needed.
calibrate_pairs = 0
confirm_pairs = 0
[budget]
iterations = {iterations}
[proposer]
kind = "hybrid"
model = "test-model"
base_url = "{fake.openai_url}"
api_key_env = ""
max_retries = 0
tuning_trials = {tuning_trials}
startup_trials = 3
seed = 1
"""


# The structural change: a quadratic term, its coefficient marked for tuning, started badly
# (c = 0 leaves the prediction as it was: the structure alone gains nothing).
QUADRATIC = Reply(
    text="""HYPOTHESIS: the response is quadratic in x, not linear

model.py
<<<<<<< SEARCH
def predict(x):
    return a * x + b
=======
c = 0.0  # ratchet: 0..4

def predict(x):
    return c * x * x + a * x + b
>>>>>>> REPLACE
""",
    tokens_in=900,
    tokens_out=80,
)


def log(repo: Path) -> list[dict]:
    result = run_cli(repo, "log", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_must_show_structure_then_tuning_improves_the_target(tmp_path, fake_llm):
    repo = make_repo(tmp_path / "repo", TARGET, config(fake_llm))
    fake_llm.add(QUADRATIC)
    result = run_cli(repo, "run")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = log(repo)
    baseline, structure, tuning = rows[0], rows[1], rows[2:]

    # The ledger tells the steps apart: meta and hypothesis prefix.
    assert structure["proposal"]["step"] == "structure" and structure["hypothesis"].startswith("[structure] the response is quadratic")
    assert structure["proposal"]["params"] == {"model.py:a": 1.0, "model.py:b": -3.0, "model.py:c": 0.0}
    assert len(tuning) == 6
    for number, row in enumerate(tuning, start=1):
        assert row["proposal"]["step"] == "tuning" and row["proposal"]["structure"] == structure["id"]
        assert row["hypothesis"].startswith(f"[tuning {number}/6 of #{structure['id']}] a=")
        assert row["tokens_in"] is None  # tuning calls no model
    assert structure["tokens_in"] == 900 and len(fake_llm.requests) == 1

    # The structure alone gained nothing; with fitted coefficients it beats the baseline.
    assert structure["verdict"] == "discard" and structure["metric"] == baseline["metric"]
    kept = [row for row in tuning if row["verdict"] == "keep"]
    assert kept, [(r["verdict"], r["metric"]) for r in tuning]
    best = min(row["metric"] for row in kept)
    assert best < baseline["metric"] * 0.8
    champion = sh(repo, "git", "show", "ratchet/h:model.py")
    assert "return c * x * x + a * x + b" in champion and "c = 0.0" not in champion
    status = json.loads(run_cli(repo, "status", "--json").stdout)
    assert status["champion"] == best


def test_a_resumed_run_finishes_the_tuning_then_asks_for_a_new_structure(tmp_path, fake_llm):
    repo = make_repo(tmp_path / "repo", TARGET, config(fake_llm, tuning_trials=3, iterations=3))
    fake_llm.add(QUADRATIC)
    assert run_cli(repo, "run").returncode == 0  # structure, tuning 1/3, tuning 2/3
    fake_llm.add(Reply(text="I have no further idea."))  # the next structure step: malformed
    result = run_cli(repo, "run", "--iterations", "5")
    assert result.returncode == 0, result.stdout + result.stderr
    hypotheses = [row["hypothesis"] for row in log(repo)[1:]]
    assert [h.split("]")[0] + "]" if h.startswith("[") else h for h in hypotheses] == [
        "[structure]",
        "[tuning 1/3 of #1]",
        "[tuning 2/3 of #1]",
        "[tuning 3/3 of #1]",  # carried on from the ledger after the restart
        "",  # the new structure step failed: its answer was malformed
    ]
    assert len(fake_llm.requests) == 2


def test_a_structure_without_marked_numbers_is_not_tuned(tmp_path, fake_llm):
    files = {**TARGET, "model.py": "def predict(x):\n    return x\n"}
    repo = make_repo(tmp_path / "repo", files, config(fake_llm, iterations=2))
    change = "HYPOTHESIS: {h}\n\nmodel.py\n<<<<<<< SEARCH\n    return {old}\n=======\n    return {new}\n>>>>>>> REPLACE\n"
    fake_llm.add(
        Reply(text=change.format(h="square it", old="x", new="2 * x * x")),
        Reply(text=change.format(h="shift it", old="2 * x * x", new="2 * x * x + 0.5")),
    )
    assert run_cli(repo, "run").returncode == 0
    rows = log(repo)
    assert [(r["verdict"], r["proposal"].get("step")) for r in rows[1:]] == [("keep", "structure"), ("keep", "structure")]
    assert "params" not in rows[1]["proposal"]  # nothing to tune: straight to the next structure
    assert len(fake_llm.requests) == 2


# ---------------------------------------------------------------- several workers


def test_tuning_steps_in_flight_count_toward_the_structure_s_trials(tmp_path, fake_llm):
    from ratchet.config import HybridProposerSection
    from ratchet.experiment import Experiment, Verdict
    from ratchet.proposers.base import ProposalContext
    from ratchet.proposers.hybrid import HybridProposer

    section = HybridProposerSection.model_validate(
        {"kind": "hybrid", "model": "test-model", "base_url": fake_llm.openai_url, "api_key_env": "", "max_retries": 0,
         "tuning_trials": 3, "startup_trials": 3, "seed": 1}
    )  # fmt: skip
    assert HybridProposer.concurrent is True
    proposer = HybridProposer(section, root=tmp_path, direction="minimize")
    proposer.resume((), tmp_path / "state")
    worktree = tmp_path / "worktree"
    worktree.mkdir()
    (worktree / "model.py").write_text(TARGET["model.py"].replace("def predict", "c = 0.0  # ratchet: 0..4\n\ndef predict"))
    structure = Experiment(
        "h", 1, "0" * 40, "hybrid", 0.0, state="done", verdict=Verdict.KEEP, metric=1.0, hypothesis="[structure] quadratic",
        proposal_meta={"step": "structure", "structure": 1, "params": {"model.py:a": 1.0, "model.py:b": -3.0, "model.py:c": 0.0}},
    )  # fmt: skip

    def context(iteration: int, in_flight: tuple[Experiment, ...] = ()) -> ProposalContext:
        return ProposalContext(
            run="h", iteration=iteration, worktree=worktree, brief="Fit.", scope=("model.py",), scope_files=("model.py",),
            metric_name="rmse", direction="minimize", champion_metric=1.0, baseline_metric=2.0, history=(structure,),
            state_dir=tmp_path / "state", log_dir=tmp_path / "logs" / str(iteration), in_flight=in_flight,
        )  # fmt: skip

    first = proposer.propose(context(2))
    # Proposed while the first is measured: the loop lists it as in flight.
    running = Experiment("h", 2, "0" * 40, "hybrid", 0.0, hypothesis=first.hypothesis, proposal_meta=dict(first.meta))
    second = proposer.propose(context(3, (running,)))
    # Proposed before the loop lists either: the proposer still knows what it handed out.
    third = proposer.propose(context(4))
    assert [p.hypothesis.split("]")[0] for p in (first, second, third)] == ["[tuning 1/3 of #1", "[tuning 2/3 of #1", "[tuning 3/3 of #1"]
    points = [tuple(sorted(p.meta["params"].items())) for p in (first, second, third)]
    assert len(set(points)) == 3, points
    # All three tuning steps are in flight: the next proposal is a new structure, not a fourth.
    fake_llm.add(Reply(text="HYPOTHESIS: a cubic term\n\nmodel.py\n<<<<<<< SEARCH\nc = 0.0  # ratchet: 0..4\n=======\nc = 0.0  # ratchet: 0..4\nd = 0.0  # ratchet: -1..1\n>>>>>>> REPLACE\n"))
    fourth = proposer.propose(context(5))
    assert fourth.meta["step"] == "structure" and fourth.hypothesis == "[structure] a cubic term"
    assert not [p for p in (tmp_path / "state").iterdir() if p.name.startswith("overlay")]  # scratch folders removed
