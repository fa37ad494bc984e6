"""A run on the session's loopback Ray cluster: where each sample ran, and a node lost mid-run."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Scripted, make_repo, run_cli
from test_scheduler import check_keeps_against_champions

from ratchet import Proposal, ProposalContext
from ratchet.config import load_config
from ratchet.experiment import Verdict
from ratchet.ledger import LEDGER_FILE, Ledger
from ratchet.loop.run import Loop

pytestmark = pytest.mark.ray

# The first measurement after `arm` exists marks `started` and sleeps: the node it runs on is
# removed meanwhile. Every other measurement is quick.
BENCH = """\
import pathlib, time
arm, started = pathlib.Path({arm!r}), pathlib.Path({started!r})
if arm.exists() and not started.exists():
    started.touch()
    time.sleep(60)
value = float(pathlib.Path("value.txt").read_text())
for name in "ab":
    if pathlib.Path(name + ".txt").exists():
        value -= float(pathlib.Path(name + ".txt").read_text())
print("metric:", value)
"""

CONFIG = r"""
[run]
name = "t"
workers = 2
[scope]
mutable = ["value.txt", "?.txt"]
harness = ["bench.py"]
[metric]
name = "number"
command = "{python} bench.py"
regex = 'metric: (\S+)'
direction = "minimize"
timeout = "120s"
[verdict]
deterministic = "yes"
calibrate_pairs = 0
confirm_pairs = 0
[budget]
iterations = 2
[proposer]
kind = "command"
command = "true"
[sandbox]
mode = "off"
[executor]
kind = "ray"
address = "{address}"
num_cpus = 1
num_gpus = 1
retries = 1
"""


def _wait(condition: Any, what: str, seconds: float = 90) -> None:
    deadline = time.time() + seconds
    while not condition():
        if time.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_a_run_on_ray_records_where_each_sample_ran_and_loses_no_experiment_with_a_node(ray_cluster: Any, tmp_path: Path) -> None:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    arm, started, release = tmp_path / "arm", tmp_path / "started", tmp_path / "release"
    files = {
        "value.txt": "10\n",
        "bench.py": BENCH.format(arm=str(arm), started=str(started)),
        "program.md": "Make it small.\n",
    }
    repo = make_repo(tmp_path / "repo", files, CONFIG.format(python=sys.executable, address=ray_cluster.address))
    go = threading.Event()

    def first(context: ProposalContext) -> Proposal:
        go.wait(120)  # until the test has a node to lose
        return Proposal("lower by a", edits={"a.txt": "1\n"})

    proposer = Scripted([first, Proposal("lower by b", edits={"b.txt": "2\n"})])
    loop = Loop(repo, load_config(repo / "ratchet.toml"), proposer=proposer)
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(summary=loop.run()))
    thread.start()
    _wait(lambda: (repo / ".ratchet" / "runs").exists(), "the run to open its ledger")
    ledger = Ledger(repo / ".ratchet" / LEDGER_FILE)
    try:
        _wait(lambda: any(e.verdict is Verdict.BASELINE for e in ledger.experiments("t")), "the baseline")
        node = ray_cluster.add_node(num_cpus=1, num_gpus=1)

        @ray.remote(num_cpus=2)
        def hold(flag: str) -> None:  # the head's CPUs, so that the next measurement starts on the new node
            while not Path(flag).exists():
                time.sleep(0.1)

        holder = hold.options(scheduling_strategy=NodeAffinitySchedulingStrategy(ray_cluster.head_node_id, soft=False)).remote(str(release))
        time.sleep(1.0)
        arm.touch()
        go.set()
        _wait(started.exists, "a measurement on the new node")
        release.touch()
        ray.get(holder)
        ray_cluster.remove_node(node)  # mid-measurement: its worker dies with it
        thread.join(180)
        assert not thread.is_alive()
    finally:
        go.set()
        release.touch()
        thread.join(180)
        ledger.close()
    summary = outcome["summary"]
    assert summary.exit_code == 0, summary.stop_reason
    result = run_cli(repo, "log", "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()] if not result.stdout.lstrip().startswith("[") else json.loads(result.stdout)
    measured = [row for row in rows if row["verdict"] != "baseline"]
    assert len(measured) == 2 and all(row["verdict"] == "keep" for row in measured), [(r["id"], r["verdict"], r["reason"]) for r in measured]
    assert not [row for row in rows if row["verdict"] == "lost"]
    placements = [p for row in rows for p in row["extra"].get("placements", [])]
    assert placements and all(p["node"] and p["devices"] in ("0", "1") for p in placements), placements
    retried = [p for p in placements if p["attempt"] == 2]
    assert len(retried) == 1 and retried[0]["node"].endswith(ray_cluster.head_node_id[:12])  # run again on the head
    assert {row["extra"]["worker"] for row in measured} <= {0, 1}
    experiments = Ledger(repo / ".ratchet" / LEDGER_FILE).experiments("t")
    check_keeps_against_champions(repo, experiments)
