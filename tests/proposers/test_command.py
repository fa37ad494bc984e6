"""The command proposer with several workers: programs side by side, each told what is in flight."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

from conftest import calc_context, running_experiment

from ratchet.config import CommandProposerSection
from ratchet.experiment import Experiment
from ratchet.proposers.base import Proposal, ProposalContext
from ratchet.proposers.command import CommandProposer

# Notes what it was told (the in-flight file, or that there is none), then changes calc.py.
SCRIPT = r"""
import json, os, pathlib
path = os.environ["RATCHET_IN_FLIGHT_FILE"]
told = json.load(open(path)) if path else None
n = os.environ["RATCHET_EXPERIMENT"]
open(os.environ["RATCHET_HYPOTHESIS_FILE"], "w").write(json.dumps(told))
pathlib.Path("calc.py").write_text(f"def value():\n    return {n}\n")
"""


def proposer(tmp_path: Path) -> CommandProposer:
    script = tmp_path / "propose.py"
    script.write_text(SCRIPT)
    return CommandProposer(CommandProposerSection(kind="command", command=f"{sys.executable} {script}", timeout=30))


def context(tmp_path: Path, iteration: int, in_flight: tuple[Experiment, ...] = ()) -> ProposalContext:
    return calc_context(tmp_path, iteration, in_flight)


def running(id: int, hypothesis: str = "", meta: dict | None = None) -> Experiment:
    return running_experiment(id, "command", hypothesis, meta)


def test_one_worker_gets_no_in_flight_file_and_the_brief_of_before(tmp_path: Path) -> None:
    proposal = proposer(tmp_path).propose(context(tmp_path, 1))
    assert proposal.hypothesis == "null"  # $RATCHET_IN_FLIGHT_FILE is empty
    assert not (tmp_path / "logs" / "1" / "in-flight.json").exists()
    brief = (tmp_path / "logs" / "1" / "brief.md").read_text()
    assert "Being measured now" not in brief and "## History\n(no experiments yet)\n\n## Rules\n" in brief


def test_the_program_is_told_what_is_in_flight(tmp_path: Path) -> None:
    others = (running(4, "return 3, fewer steps", {"preset": "x"}), running(5))  # 5: still being proposed
    proposal = proposer(tmp_path).propose(context(tmp_path, 6, others))
    assert json.loads(proposal.hypothesis) == [{"id": 4, "hypothesis": "return 3, fewer steps", "meta": {"preset": "x"}}]
    brief = (tmp_path / "logs" / "6" / "brief.md").read_text()
    assert "## History\n(no experiments yet)\n\n## Being measured now: do not propose these again\n- #4 return 3, fewer steps\n\n## Rules\n" in brief
    assert "#5" not in brief


def test_programs_run_side_by_side_each_in_its_own_worktree(tmp_path: Path) -> None:
    assert CommandProposer.concurrent is True
    shared = proposer(tmp_path)
    results: dict[int, Proposal | BaseException] = {}
    start = threading.Barrier(4)

    def propose(i: int) -> None:
        start.wait()
        try:
            results[i] = shared.propose(context(tmp_path, i, tuple(running(j, f"idea {j}") for j in range(1, 5) if j != i)))
        except BaseException as exc:  # noqa: BLE001 - checked below
            results[i] = exc

    threads = [threading.Thread(target=propose, args=(i,)) for i in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i in range(1, 5):
        proposal = results[i]
        assert isinstance(proposal, Proposal), proposal
        assert [row["id"] for row in json.loads(proposal.hypothesis)] == [j for j in range(1, 5) if j != i]
        assert (tmp_path / f"worktree-{i}" / "calc.py").read_text() == f"def value():\n    return {i}\n"
