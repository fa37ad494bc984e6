"""commands/show.py: the data behind `ratchet status --json` and `ratchet show --json`, read from a real run's ledger."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

from conftest import NUMBER_CONFIG, run_cli, sh

from ratchet.commands.show import experiment_data, status_data
from ratchet.experiment import Verdict
from ratchet.project import Project

# Proposes 9, then 8 (both keeps), then a number larger than the champion (a discard).
PROPOSER = "{python} -c \\\"import pathlib; p = pathlib.Path('value.txt'); v = float(p.read_text()); p.write_text(str(v - 1 if v > 8 else 50))\\\"; echo step"


def test_status_and_show_data_are_what_the_cli_prints(number_repo: Callable[..., Path]) -> None:
    config = NUMBER_CONFIG.replace('command = "true"', f'command = "{PROPOSER}"')
    repo = number_repo(config.replace("iterations = 5", "iterations = 3").replace("{python}", sys.executable))
    ran = run_cli(repo, "run")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    project = Project.find(repo)
    ledger = project.ledger()
    info = project.pick_run(ledger, None)
    data = status_data(project, ledger, info)
    experiments = ledger.experiments(info.name)
    ledger.close()
    assert data == json.loads(run_cli(repo, "status", "--json").stdout)
    assert data["counts"] == {"baseline": 1, "keep": 2, "discard": 1} and data["champion"] == 8.0
    assert data["budget"]["iterations"] == 3 and data["measured"] == 3

    kept = next(e for e in experiments if e.verdict is Verdict.KEEP)
    shown = experiment_data(project, kept)
    assert shown == json.loads(run_cli(repo, "show", str(kept.id), "--json").stdout)
    assert "-10" in shown["diff"] and "+9" in shown["diff"]
    # A discarded candidate was never committed: its diff is the one saved beside its logs.
    discarded = next(e for e in experiments if e.verdict is Verdict.DISCARD)
    assert discarded.commit is None and "+50" in experiment_data(project, discarded)["diff"]


def test_an_experiment_in_flight_shows_as_running(number_repo: Callable[..., Path]) -> None:
    import time

    from ratchet.experiment import Experiment
    from ratchet.ledger import LEDGER_FILE, Ledger, RunInfo
    from ratchet.state import STATE_DIR

    repo = number_repo()
    head = sh(repo, "git", "rev-parse", "HEAD").strip()
    (repo / STATE_DIR).mkdir()
    ledger = Ledger(repo / STATE_DIR / LEDGER_FILE)
    ledger.create_run(RunInfo("t", time.time(), head, "ratchet/t", "number", "minimize", {}))
    ledger.begin(Experiment("t", 0, head, "baseline", time.time(), state="done", verdict=Verdict.BASELINE, metric=10.0, commit=head))
    ledger.begin(Experiment("t", 1, head, "command", time.time(), hypothesis="halve [it]"))  # no verdict yet
    ledger.close()
    shown = run_cli(repo, "show", "1")
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    assert "experiment 1 of t: running" in shown.stdout and "hypothesis: halve [it]" in shown.stdout
    log = run_cli(repo, "log")
    assert log.returncode == 0 and "running" in log.stdout and "halve [it]" in log.stdout
