"""Several experiments in flight ([run] workers = N): the read model lists each with its worker,
``ratchet status`` prints a line for each, the dashboard's JSON and page show them all, a finished
row says which worker ran it and where, and the terminal names the worker."""

from __future__ import annotations

import io
import json
import re
import select
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import NUMBER_CONFIG, make_repo, run_cli, sh
from report_helpers import browser, screenshot  # noqa: F401 (browser is a fixture)
from rich.console import Console

from ratchet.commands.show import status_data
from ratchet.experiment import Experiment, Verdict
from ratchet.ledger import Ledger, RunInfo
from ratchet.project import Project
from ratchet.report.data import RunFollower, placement_text, run_view
from ratchet.report.terminal import Display, LiveDisplay
from ratchet.report.text import print_status
from ratchet.state import STATE_DIR, run_lock

PLACEMENTS = [
    {"side": "champion", "node": "node-1", "devices": "0,1", "attempt": 1},
    {"side": "candidate", "node": "node-2", "devices": "2,3", "attempt": 1},
]


def _two_in_flight(tmp_path: Path) -> tuple[Path, Ledger, RunInfo]:
    """A baseline, a discard measured by worker 1 (its samples on node-1 and node-2), and two
    experiments in flight on workers 0 and 1; #3 already re-measured once on node-3."""
    repo = make_repo(tmp_path / "r", {"value.txt": "10\n"}, NUMBER_CONFIG.replace("{python}", sys.executable))
    base = sh(repo, "git", "rev-parse", "HEAD").strip()
    ledger = Ledger(repo / STATE_DIR / "ledger.sqlite")
    info = RunInfo("t", 1.0, base, "ratchet/t", "number", "minimize", {})
    ledger.create_run(info)
    now = time.time()
    ledger.begin(Experiment("t", 0, base, "baseline", now - 100, state="done", verdict=Verdict.BASELINE, metric=10.0, commit=base))
    ledger.begin(Experiment("t", 1, base, "command", now - 90, state="done", verdict=Verdict.DISCARD, reason="not better",
                            hypothesis="raise it", metric=11.0, ended=now - 80,
                            extra={"worker": 1, "placements": PLACEMENTS}))  # fmt: skip
    first = Experiment("t", 2, base, "command", now - 34, extra={"worker": 0})
    ledger.begin(first)
    first.hypothesis, first.state = "halve the loop", "measuring"
    ledger.update(first)
    ledger.begin(Experiment("t", 3, base, "command", now - 5, hypothesis="unroll [it]",
                            extra={"worker": 1, "placements": [{"side": "candidate", "node": "node-3", "devices": "", "attempt": 2}]}))  # fmt: skip
    return repo, ledger, info


@pytest.fixture
def two_in_flight(tmp_path: Path) -> Iterator[tuple[Path, Ledger, RunInfo]]:
    repo, ledger, info = _two_in_flight(tmp_path)
    try:
        with run_lock(repo / STATE_DIR, "t"):  # as `ratchet run` holds it: the experiments are in flight
            yield repo, ledger, info
    finally:
        ledger.close()


def test_a_placement_in_a_few_words() -> None:
    assert placement_text({"node": "node-1", "devices": "0,1", "attempt": 1}) == "node-1 gpu 0,1"
    assert placement_text({"node": "node-1", "devices": "", "attempt": 1}) == "node-1"
    assert placement_text({"node": "", "devices": "3"}) == "gpu 3"
    assert placement_text({"node": "n", "devices": "0", "attempt": 2}) == "n gpu 0, retried"
    assert placement_text(None) == "" and placement_text({}) == ""


def test_the_read_model_lists_every_experiment_in_flight(two_in_flight: tuple[Path, Ledger, RunInfo]) -> None:
    repo, ledger, info = two_in_flight
    view = run_view(repo, ledger, info, diffs=False)
    assert view.active and view.counts == {"baseline": 1, "discard": 1, "running": 2}
    assert [(f.id, f.worker, f.hypothesis) for f in view.running] == [(2, 0, "halve the loop"), (3, 1, "unroll [it]")]
    assert view.running[0].elapsed_s >= 34 and view.running[0].placement == ""
    assert (view.running[1].node, view.running[1].devices, view.running[1].placement) == ("node-3", "", "node-3, retried")
    assert view.in_flight == view.running[-1]  # the newest, where readers of one experiment in flight look
    baseline, discard, first, second = view.experiments
    # A finished row: the worker that ran it and where its last sample ran.
    assert (discard.worker, discard.placement) == (1, "node-2 gpu 2,3")
    assert (baseline.worker, baseline.placement) == (None, "")
    assert (first.worker, first.verdict, second.worker) == (0, None, 1)
    # The whole view is JSON, the two in flight in it.
    data = json.loads(json.dumps(view.to_json()))
    assert [(f["id"], f["worker"]) for f in data["running"]] == [(2, 0), (3, 1)] and data["in_flight"]["id"] == 3
    assert data["experiments"][1]["worker"] == 1 and data["experiments"][1]["placement"] == "node-2 gpu 2,3"


def test_nothing_is_in_flight_without_a_run_holding_the_lock(tmp_path: Path) -> None:
    repo, ledger, info = _two_in_flight(tmp_path)
    try:
        view = run_view(repo, ledger, info, diffs=False)
        project = Project.find(repo)
        data = status_data(project, ledger, info)
    finally:
        ledger.close()
    # Rows left "running" by a run that is gone are rows, not experiments in flight.
    assert view.running == [] and view.in_flight is None and not view.active and view.counts["running"] == 2
    assert data["running"] == [] and not data["active"]
    shown = run_cli(repo, "status")
    assert shown.returncode == 0 and "running:" not in shown.stdout and "last: #3 running" in shown.stdout


def test_status_prints_one_line_per_experiment_in_flight(two_in_flight: tuple[Path, Ledger, RunInfo]) -> None:
    repo, ledger, info = two_in_flight
    data = status_data(Project.find(repo), ledger, info)
    assert data["active"]
    assert [(f["id"], f["worker"], f["hypothesis"], f["placement"]) for f in data["running"]] == [
        (2, 0, "halve the loop", ""), (3, 1, "unroll [it]", "node-3, retried"),
    ]  # fmt: skip
    assert data["running"][0]["elapsed_s"] >= 34 and "output_tail" not in data["running"][0]
    console = Console(file=io.StringIO(), width=200, color_system=None)
    print_status(console, data)
    lines = console.file.getvalue().splitlines()  # type: ignore[attr-defined]
    running = [line for line in lines if line.startswith("running: ")]
    assert len(running) == 2, lines
    assert re.fullmatch(r"running: #2 on worker 0 for \d+s — halve the loop", running[0]), running
    assert re.fullmatch(r"running: #3 on worker 1 \(node-3, retried\) for \d+s — unroll \[it\]", running[1]), running
    assert lines[-1] == "last: #3 running — unroll [it]"  # the last line stays
    # The command line says the same (another process: it sees the lock held).
    shown = run_cli(repo, "status")
    assert shown.returncode == 0, shown.stderr
    assert "running: #2 on worker 0 for" in shown.stdout and "running: #3 on worker 1" in shown.stdout
    as_json = json.loads(run_cli(repo, "status", "--json").stdout)
    assert [(f["id"], f["worker"]) for f in as_json["running"]] == [(2, 0), (3, 1)]


def test_the_dashboards_json_carries_every_experiment_in_flight(two_in_flight: tuple[Path, Ledger, RunInfo]) -> None:
    repo, ledger, info = two_in_flight
    follower = RunFollower(repo, "t")
    first = follower.poll(ledger, info).data
    assert first["complete"] and first["active"]
    assert [(f["id"], f["worker"]) for f in first["running"]] == [(2, 0), (3, 1)] and first["in_flight"]["id"] == 3
    rows = {row["id"]: row for row in first["experiments"]}
    assert (rows[1]["worker"], rows[1]["placement"]) == (1, "node-2 gpu 2,3") and rows[2]["worker"] == 0
    # A quiet poll: no rows, the experiments in flight still (a live field).
    cursor = first["cursor"]
    quiet = follower.poll(ledger, info, after=cursor["last_id"], revision=cursor["revision"], token=cursor["token"]).data
    assert quiet["experiments"] == [] and not quiet["changed"] and [f["id"] for f in quiet["running"]] == [2, 3]
    # One of them done: it leaves the list, its row comes with its worker.
    done = ledger.experiment("t", 2)
    assert done is not None
    done.state, done.verdict, done.metric, done.extra["placements"] = "done", Verdict.KEEP, 9.0, PLACEMENTS[:1]
    ledger.update(done)
    moved = follower.poll(ledger, info, after=quiet["cursor"]["last_id"], revision=quiet["cursor"]["revision"], token=cursor["token"]).data
    assert [f["id"] for f in moved["running"]] == [3] and moved["in_flight"]["id"] == 3
    assert [(r["id"], r["verdict"], r["worker"], r["placement"]) for r in moved["experiments"]] == [(2, "keep", 0, "node-1 gpu 0,1")]
    assert follower.view(ledger, info).running[0].id == 3


def _experiment(i: int, verdict: Verdict | None, metric: float | None, worker: int | None, hypothesis: str = "") -> Experiment:
    extra = {} if worker is None else {"worker": worker}
    state = "running" if verdict is None else "done"
    return Experiment("r", i, "0" * 40, "test", time.time(), state, verdict, metric=metric, hypothesis=hypothesis or f"h{i}", extra=extra)


def test_a_finished_line_names_its_worker_when_the_run_has_several() -> None:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    display = Display(console)
    display.metric_name = "number"
    display.experiment_done(_experiment(0, Verdict.BASELINE, 10.0, None))
    display.experiment_done(_experiment(12, Verdict.KEEP, 9.0, 2))
    display.experiment_done(_experiment(13, Verdict.LOST, None, 0))
    lines = console.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert lines[0].startswith("#0   baseline  number=10")
    assert lines[1].startswith("#12  keep      w2 number=9") and lines[2].startswith("#13  lost      w0 number=-")


def test_the_live_panel_shows_one_row_per_worker_busy() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=160, color_system=None)
    display = LiveDisplay(console)

    def panel() -> list[str]:
        recorder = Console(file=io.StringIO(), width=160, color_system=None)
        recorder.print(display)
        return [line for line in recorder.file.getvalue().splitlines() if " running " in line]  # type: ignore[attr-defined]

    try:
        display.experiment_started(_experiment(7, None, None, 1, "unroll the loop"))
        display.experiment_started(_experiment(8, None, None, 0, "halve it"))
        # Samples come from the workers' threads while the panel is drawn.
        workers = [
            threading.Thread(target=lambda e=e: [display.sample(e, "candidate", 1.0) for _ in range(200)])
            for e in (_experiment(7, None, None, 1), _experiment(8, None, None, 0))
        ]
        for worker in workers:
            worker.start()
        for _ in range(20):
            panel()
        for worker in workers:
            worker.join()
        rows = panel()
        assert len(rows) == 2, rows
        # By worker: w0 first.
        assert re.search(r"w0  #8 for \d+s, 200 samples  halve it", rows[0]), rows
        assert re.search(r"w1  #7 for \d+s, 200 samples  unroll the loop", rows[1]), rows
        display.experiment_done(_experiment(8, Verdict.DISCARD, 11.0, 0))
        rows = panel()
        assert len(rows) == 1 and "#7" in rows[0] and set(display.running) == {7}
        display.experiment_done(_experiment(7, Verdict.KEEP, 9.0, 1))
        assert panel() == [] and display.running == {}
    finally:
        display.close()
    printed = console.file.getvalue()  # type: ignore[attr-defined]
    assert "w0 metric=11" in printed and "w1 metric=9" in printed


def test_one_worker_panel_row_has_no_worker() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=160, color_system=None)
    display = LiveDisplay(console)
    try:
        display.experiment_started(_experiment(3, None, None, None, "try it"))
        recorder = Console(file=io.StringIO(), width=160, color_system=None)
        recorder.print(display)
        rows = [line for line in recorder.file.getvalue().splitlines() if " running " in line]  # type: ignore[attr-defined]
    finally:
        display.close()
    assert len(rows) == 1 and re.search(r"running\s+#3 for \d+s  try it", rows[0]), rows


def test_the_dashboard_page_shows_each_worker(two_in_flight: tuple[Path, Ledger, RunInfo], browser) -> None:  # noqa: F811
    from test_dashboard import start, stop

    repo, ledger, info = two_in_flight
    server = start(repo, "dashboard", "--port", "0")
    page = None
    try:
        ready, _, _ = select.select([server.stdout], [], [], 30)
        assert ready
        url = re.search(r"(http://127\.0\.0\.1:\d+/)", server.stdout.readline()).group(1)  # type: ignore[union-attr]
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url)
        panel = 'section.run-panel[data-run="t"]'
        page.wait_for_function(f"() => document.querySelectorAll('{panel} .in-flight-box .flight').length === 2", timeout=20_000)
        flights = page.locator(f"{panel} .in-flight-box .flight")
        assert re.search(r"#2 in flight on worker 0 for \S+: halve the loop", flights.nth(0).inner_text())
        assert re.search(r"#3 in flight on worker 1 \(node-3, retried\) for \S+: unroll \[it\]", flights.nth(1).inner_text())
        assert page.locator(f"{panel} .verdict").first.inner_text() == "2 running"
        assert page.locator(f"{panel} .ratchet-plot svg circle.in-flight").count() == 2
        # The table's worker column: the worker, and where the last sample ran.
        assert "worker" in page.locator(f"{panel} thead").inner_text()
        worker_cell = page.locator(f'{panel} tr.row[data-id="1"] td.worker').inner_text()
        assert "w1" in worker_cell and "node-2 gpu 2,3" in worker_cell
        assert page.locator(f'{panel} tr.row[data-id="0"] td.worker').inner_text() == ""
        screenshot(page, "dashboard-workers.png")
        # One of them done: one part left, its row says keep.
        done = ledger.experiment("t", 2)
        assert done is not None
        done.state, done.verdict, done.metric = "done", Verdict.KEEP, 9.0
        ledger.update(done)
        page.wait_for_function(f"() => document.querySelectorAll('{panel} .in-flight-box .flight').length === 1", timeout=20_000)
        assert page.locator(f"{panel} .in-flight-box .flight").get_attribute("data-id") == "3"
        page.wait_for_function(f"""() => document.querySelector('{panel} tr.row[data-id="2"] .verdict').innerText === 'keep'""", timeout=20_000)
        # A row's detail spans every column, the worker's too.
        page.locator(f'{panel} tr.row[data-id="1"]').click()
        page.wait_for_selector(f'{panel} tr.detail[data-id="1"]', timeout=10_000)
        assert page.locator(f'{panel} tr.detail[data-id="1"] td').get_attribute("colspan") == "6"
        assert errors == []
    finally:
        if page is not None:
            page.close()
        stop(server)


def test_the_log_and_the_report_have_a_worker_column(two_in_flight: tuple[Path, Ledger, RunInfo]) -> None:
    from ratchet.report.html import render_report

    repo, ledger, info = two_in_flight
    shown = run_cli(repo, "log")
    assert shown.returncode == 0, shown.stderr
    header = next(line for line in shown.stdout.splitlines() if " verdict " in line)
    assert "worker" in header
    discard = next(line for line in shown.stdout.splitlines() if " discard " in line)
    assert "w1 node-2 gpu 2,3" in discard and "raise it" in discard
    html = render_report(run_view(repo, ledger, info, diffs=False), repo)
    assert "<th>worker</th>" in html and '<td class="worker">w1 <span class="muted">node-2 gpu 2,3</span></td>' in html


def test_one_worker_has_no_worker_column(tmp_path: Path) -> None:
    from ratchet.report.html import render_report

    repo = make_repo(tmp_path / "r", {"value.txt": "10\n"}, NUMBER_CONFIG.replace("{python}", sys.executable))
    base = sh(repo, "git", "rev-parse", "HEAD").strip()
    ledger = Ledger(repo / STATE_DIR / "ledger.sqlite")
    info = RunInfo("t", 1.0, base, "ratchet/t", "number", "minimize", {})
    ledger.create_run(info)
    ledger.begin(Experiment("t", 0, base, "baseline", 1.0, state="done", verdict=Verdict.BASELINE, metric=10.0, commit=base))
    ledger.begin(Experiment("t", 1, base, "command", 2.0, state="done", verdict=Verdict.DISCARD, hypothesis="raise it", metric=11.0))
    try:
        html = render_report(run_view(repo, ledger, info, diffs=False), repo)
    finally:
        ledger.close()
    assert "<th>worker</th>" not in html and 'class="worker"' not in html and "raise it" in html
    shown = run_cli(repo, "log")
    assert shown.returncode == 0 and "worker" not in shown.stdout and "raise it" in shown.stdout
