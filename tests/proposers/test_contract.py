"""Every built-in proposer passes ratchet.testing.ProposerContract, made from a ratchet.toml as a run
makes it (``create_proposer``): optuna, command, llm (both wire formats, against the local fake
server), agent (against the stand-in CLIs of test_agent.py) and hybrid.

Each class overrides the contract's ``proposer`` and, where it can provoke one cheaply, the
failing proposal; the optuna, command and generic-agent classes keep the default ``fresh_proposer``
(a deep copy), the others make a second proposer from the same config.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import os
import re
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fake_llm import FakeLLM, Reply, Request, serve
from test_agent import COMMON, STANDINS
from test_agent import TARGET as AGENT_TARGET

from ratchet.config import parse_config
from ratchet.proposers import create_proposer
from ratchet.proposers.base import Proposal, ProposalContext, Proposer, Usage
from ratchet.testing import ProposerContract
from ratchet.testing.proposers import (
    DEFAULT_TARGET,
    ContractTarget,
    WriteWatch,
    check_candidate,
    check_concurrent_proposals,
    check_proposal,
    make_context,
    make_target_repository,
    materialize,
    open_workspace,
)

PYTHON = sys.executable


def build(repository: Path, target: ContractTarget, proposer: str) -> Proposer:
    """The proposer a run on ``repository`` makes from its config's ``[proposer]`` section."""
    text = f"""
[run]
name = "{target.run}"
[scope]
mutable = {list(target.scope)!r}
harness = {list(target.harness)!r}
[metric]
name = "{target.metric_name}"
command = "{PYTHON} bench.py"
regex = 'metric: (\\S+)'
direction = "{target.direction}"
timeout = "20s"
[proposer]
{textwrap.dedent(proposer)}
"""
    return create_proposer(parse_config(text), root=repository)


# ---------------------------------------------------------------- optuna


class TestOptunaProposer(ProposerContract):
    # Several trials in flight at once never share a point (TPE's constant liar, one seed).
    concurrent_distinct = True

    @pytest.fixture
    def proposer(self, repository: Path, target: ContractTarget) -> Proposer:
        return build(repository, target, 'kind = "optuna"\nseed = 0')

    @pytest.fixture
    def failing_proposer(self, proposer: Proposer) -> Proposer:
        return proposer

    @pytest.fixture
    def failing_context(self, context: ProposalContext) -> ProposalContext:
        # A scope file with no marked literal: nothing to tune is a ProposerError, not a crash.
        return dataclasses.replace(context, scope_files=("src/notes.txt",))


# ---------------------------------------------------------------- command

# Lowers `rate` in src/tune.py by a step that depends on the experiment (and again on a rework),
# says why in the hypothesis file and what it spent in the usage file.
PROPOSE_SCRIPT = r"""
import json, os, re
n = int(os.environ["RATCHET_EXPERIMENT"])
step = n / 1000 + (0.0005 if os.environ.get("RATCHET_REWORK") else 0.0)
text = open("src/tune.py").read()
rate = float(re.search(r"^rate = (\S+)", text, re.M).group(1))
open("src/tune.py", "w").write(re.sub(r"^rate = \S+", f"rate = {rate - step:.4f}", text, count=1, flags=re.M))
open(os.environ["RATCHET_HYPOTHESIS_FILE"], "w").write(f"a rate of {rate - step:.4f} converges faster\n")
json.dump({"tokens_in": 7, "tokens_out": 3, "cost_usd": 0.0}, open(os.environ["RATCHET_USAGE_FILE"], "w"))
"""


def standin_bin(repository: Path) -> Path:
    """An untracked folder in the user's checkout for stand-in programs: the sandbox shows the
    repository read-only, so they can run from there; it is never part of the candidate."""
    folder = repository / ".standin"
    folder.mkdir(exist_ok=True)
    return folder


class TestCommandProposer(ProposerContract):
    @pytest.fixture
    def proposer(self, repository: Path, target: ContractTarget) -> Proposer:
        script = standin_bin(repository) / "propose.py"
        script.write_text(PROPOSE_SCRIPT)
        return build(repository, target, f"kind = \"command\"\ncommand = '{PYTHON} {script}'")

    @pytest.fixture
    def failing_proposer(self, repository: Path, target: ContractTarget) -> Proposer:
        return build(repository, target, "kind = \"command\"\ncommand = 'echo the tool broke >&2; exit 3'")


# ---------------------------------------------------------------- llm and hybrid, against the fake server

TUNE_LINE = re.compile(r"^rate = (\S+)(  # ratchet: .*)$", re.MULTILINE)


def standin_model() -> Callable[[Request], Reply]:
    """A stand-in model: reads src/tune.py from the prompt and lowers its rate, a different step
    at each call (so no answer repeats an earlier change)."""
    calls = itertools.count(1)

    def answer(request: Request) -> Reply:
        n = next(calls)
        match = TUNE_LINE.search(request.prompt)
        if match is None:
            return Reply(text="I cannot find src/tune.py in the prompt.")
        new = f"rate = {float(match.group(1)) - n / 1000:.4f}{match.group(2)}"
        return Reply(
            text=f"HYPOTHESIS: {new.split('#')[0].strip()} converges faster\n\n"
            f"src/tune.py\n<<<<<<< SEARCH\n{match.group(0)}\n=======\n{new}\n>>>>>>> REPLACE\n",
            tokens_in=120,
            tokens_out=30,
        )

    return answer


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    server = serve()
    fake = next(server)
    fake.fallback = standin_model()
    yield fake
    next(server, None)  # shuts the server down


def llm_section(fake: FakeLLM, provider: str, kind: str = "llm", extra: str = "") -> str:
    return f"""
kind = "{kind}"
provider = "{provider}"
model = "test-model"
base_url = "{fake.url(provider)}"
api_key_env = ""
max_retries = 0
timeout = "10s"
{extra}
"""


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
class TestLLMProposer(ProposerContract):
    @pytest.fixture
    def proposer(self, repository: Path, target: ContractTarget, fake_llm: FakeLLM, provider: str) -> Proposer:
        return build(repository, target, llm_section(fake_llm, provider))

    @pytest.fixture
    def fresh_proposer(self, repository: Path, target: ContractTarget, fake_llm: FakeLLM, provider: str) -> Proposer:
        return build(repository, target, llm_section(fake_llm, provider))

    @pytest.fixture
    def failing_proposer(self, proposer: Proposer, fake_llm: FakeLLM) -> Proposer:
        fake_llm.add(Reply(text="I would lower the rate a little."))  # no block to apply: a malformed answer
        return proposer


HYBRID = 'tuning_trials = 2\nstartup_trials = 1\nseed = 1'


class TestHybridProposer(ProposerContract):
    @pytest.fixture
    def proposer(self, repository: Path, target: ContractTarget, fake_llm: FakeLLM) -> Proposer:
        return build(repository, target, llm_section(fake_llm, "openai", "hybrid", HYBRID))

    @pytest.fixture
    def fresh_proposer(self, repository: Path, target: ContractTarget, fake_llm: FakeLLM) -> Proposer:
        return build(repository, target, llm_section(fake_llm, "openai", "hybrid", HYBRID))

    @pytest.fixture
    def failing_proposer(self, proposer: Proposer, fake_llm: FakeLLM) -> Proposer:
        fake_llm.add(Reply(status=500, text="the model is overloaded"))  # max_retries = 0: one failed call
        return proposer


# ---------------------------------------------------------------- agent, against the stand-in CLIs


class TestAgentProposer(ProposerContract):
    @pytest.fixture
    def target(self) -> ContractTarget:
        # The stand-ins edit calc.py (see test_agent.py).
        return ContractTarget(files=AGENT_TARGET, scope=("calc.py",), harness=("bench.py",), brief=AGENT_TARGET["program.md"])

    @pytest.fixture(autouse=True)
    def standins_on_path(self, repository: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        folder = standin_bin(repository)
        for name, body in STANDINS.items():
            path = folder / name
            path.write_text(f"#!{PYTHON}\n{COMMON}\n{textwrap.dedent(body)}")
            path.chmod(0o755)
        monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.delenv("STANDIN_FAIL", raising=False)

    @pytest.fixture
    def proposer(self, repository: Path, target: ContractTarget) -> Proposer:
        return build(repository, target, 'kind = "agent"\npreset = "claude"\nenv = ["STANDIN_*"]')

    @pytest.fixture
    def fresh_proposer(self, repository: Path, target: ContractTarget) -> Proposer:
        return build(repository, target, 'kind = "agent"\npreset = "claude"\nenv = ["STANDIN_*"]')

    @pytest.fixture
    def failing_proposer(self, proposer: Proposer, failing_context: ProposalContext, monkeypatch: pytest.MonkeyPatch) -> Proposer:
        # The stand-in ends with claude's is_error result on this experiment.
        monkeypatch.setenv("STANDIN_FAIL", str(failing_context.iteration))
        return proposer


class TestGenericAgentProposer(TestAgentProposer):
    """The generic preset: the user's own agent command, its spending in $RATCHET_USAGE_FILE."""

    @pytest.fixture
    def proposer(self, repository: Path, target: ContractTarget) -> Proposer:
        return build(repository, target, "kind = \"agent\"\npreset = \"generic\"\ncommand = 'my-agent'\nenv = [\"STANDIN_*\"]")

    @pytest.fixture
    def fresh_proposer(self, proposer: Proposer) -> Proposer:
        return copy.deepcopy(proposer)  # the contract's default, here over a sandboxed agent

    @pytest.fixture
    def failing_proposer(self, repository: Path, target: ContractTarget) -> Proposer:
        return build(repository, target, "kind = \"agent\"\npreset = \"generic\"\ncommand = 'my-agent && exit 2'")


# ---------------------------------------------------------------- the contract can fail


class _Wayward(Proposer):
    """A proposer that breaks the rules the contract checks, one per ``fault``."""

    kind = "wayward"

    def __init__(self, fault: str, elsewhere: Path) -> None:
        self.fault = fault
        self.elsewhere = elsewhere

    def propose(self, context: ProposalContext) -> Proposal:
        if self.fault == "outside scope":
            return Proposal(hypothesis="edit the readme", edits={"README.md": "changed\n"})
        if self.fault == "writes elsewhere":
            self.elsewhere.write_text("a note the proposer should not leave\n")
        if self.fault == "negative usage":
            return Proposal(hypothesis="h", edits={"src/tune.py": "rate = 0.1\n"}, usage=Usage(-1, 0, 0.0))
        if self.fault == "int meta keys":
            return Proposal(hypothesis="h", edits={"src/tune.py": "rate = 0.1\n"}, meta={1: "trial"})
        return Proposal(hypothesis="h", edits={"src/tune.py": "rate = 0.1\n"})


@pytest.mark.parametrize("fault", ["outside scope", "negative usage", "int meta keys"])
def test_the_contract_fails_a_proposal_that_breaks_a_rule(tmp_path: Path, fault: str) -> None:
    workspace = open_workspace(make_target_repository(tmp_path / "target"))
    context = make_context(workspace)
    proposal = _Wayward(fault, tmp_path / "x").propose(context)
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        check_candidate(materialize(workspace, context, check_proposal(proposal)), DEFAULT_TARGET)


def test_the_contract_sees_a_write_outside_the_run_s_folders(tmp_path: Path) -> None:
    workspace = open_workspace(make_target_repository(tmp_path / "target"))
    context = make_context(workspace)
    watch = WriteWatch.for_run(tmp_path, workspace, context)
    watch.call(lambda: _Wayward("", tmp_path / "note.txt").propose(context))
    assert watch.strays == []
    watch.call(lambda: _Wayward("writes elsewhere", tmp_path / "note.txt").propose(context))
    assert watch.strays == [str(tmp_path / "note.txt")]
    watch.call(lambda: (workspace.repo_root / "README.md").write_text("the user's file, changed\n"))
    assert watch.strays[-1] == str(workspace.repo_root / "README.md")


class _Racy(Proposer):
    """Claims ``concurrent`` but keeps the experiment it works on in one attribute: threads that
    propose at once all write into the last one's worktree."""

    kind = "racy"
    concurrent = True

    def __init__(self, workers: int) -> None:
        self.barrier = threading.Barrier(workers, timeout=30)
        self.current: ProposalContext | None = None
        self.calls = 0

    def propose(self, context: ProposalContext) -> Proposal:
        self.calls += 1
        if self.calls > 2 * self.barrier.parties:  # the final, single proposal
            return Proposal(hypothesis="h", edits={"src/tune.py": "rate = 0.1\n"})
        self.current = context
        self.barrier.wait()  # every thread has set it: the race lost, every time
        assert self.current is not None
        path = self.current.worktree / "src" / "tune.py"
        path.write_text(path.read_text() + f"# experiment {context.iteration}\n")
        return Proposal(hypothesis=f"note {context.iteration}", in_place=True)


class _Same(Proposer):
    """Concurrent and correct, but every proposal is the same change."""

    kind = "same"
    concurrent = True

    def propose(self, context: ProposalContext) -> Proposal:
        return Proposal(hypothesis="h", edits={"src/tune.py": "rate = 0.1  # ratchet: 0.0..1.0\nsteps = 3  # ratchet: int 1..8\n"})


def test_the_contract_fails_a_concurrent_proposer_with_shared_state(tmp_path: Path) -> None:
    workspace = open_workspace(make_target_repository(tmp_path / "target"))
    with pytest.raises(pytest.fail.Exception, match="changes nothing"):
        check_concurrent_proposals(_Racy(3), workspace, workers=3)


def test_the_contract_fails_repeats_in_flight_only_where_distinct_is_promised(tmp_path: Path) -> None:
    workspace = open_workspace(make_target_repository(tmp_path / "target"))
    check_concurrent_proposals(_Same(), workspace, workers=2)  # no promise: repeats are the loop's to refuse
    with pytest.raises(AssertionError, match=r"experiments 1 and 2 were in flight together with the same change"):
        check_concurrent_proposals(_Same(), workspace, workers=2, distinct=True)
