"""``ratchet dashboard``: a real server on 127.0.0.1, a real ``ratchet run`` advancing under it,
headless Chromium watching the page."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_repo, run_cli
from report_helpers import assert_fits, browser, expected, screenshot, target  # noqa: F401 (browser is a fixture)

LIVE_ITERATIONS = 6


def start(repo: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ratchet", *args], cwd=repo, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )  # fmt: skip


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[tuple[Path, str, subprocess.Popen[str]]]:
    """A fresh repository (no run yet) and its dashboard on a free port."""
    repo = target(tmp_path / "repo", name="live", iterations=LIVE_ITERATIONS, sleep=1.2)
    server = start(repo, "dashboard", "--port", "0")
    try:
        ready, _, _ = select.select([server.stdout], [], [], 30)
        assert ready, "the dashboard printed no URL within 30s"
        line = server.stdout.readline()  # type: ignore[union-attr]
        match = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        assert match, f"no URL in {line!r}; stderr: {server.stderr.read() if server.poll() is not None else ''}"  # type: ignore[union-attr]
        yield repo, match.group(1), server
    finally:
        stop(server)


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def count(page, run: str, selector: str) -> int:
    return page.locator(f'section.run-panel[data-run="{run}"] {selector}').count()


def test_dashboard_follows_runs_live(dashboard, browser):  # noqa: F811
    repo, url, server = dashboard
    page = browser.new_page(viewport={"width": 1700, "height": 1100})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    # No run yet: the page says so and waits.
    page.wait_for_selector("#empty", state="visible")

    # A first, short run: it appears by itself.
    finished = run_cli(repo, "run", "--name", "first", "--iterations", "2")
    assert finished.returncode == 0, finished.stderr
    # (The page may have seen it half done: it catches up.) A baseline, a keep, a discard.
    page.wait_for_function(
        """() => document.querySelectorAll('section.run-panel[data-run="first"] .ratchet-plot .point').length === 3""",
        timeout=20_000,
    )

    # The live run: slow measurements, so the test sees it move.
    run = start(repo, "run")
    try:
        page.wait_for_selector('section.run-panel[data-run="live"] .ratchet-plot .point', timeout=30_000)
        # The experiment in flight, with the output of its measurement as it comes.
        page.wait_for_function(
            """() => { const box = document.querySelector('section.run-panel[data-run="live"] .in-flight-box');
                       return box && !box.hidden && box.innerText.includes('measuring value.txt'); }""",
            timeout=30_000,
        )
        assert "in flight" in page.locator('section.run-panel[data-run="live"] .in-flight-box').inner_text()
        seen = count(page, "live", ".ratchet-plot .point")
        # New points appear while we watch.
        page.wait_for_function(
            f"""() => document.querySelectorAll('section.run-panel[data-run="live"] .ratchet-plot .point').length > {seen}""",
            timeout=30_000,
        )
        assert count(page, "live", ".ratchet-plot .point") > seen
        screenshot(page, "dashboard-live.png")
        assert run.wait(timeout=180) == 0, run.stderr.read()  # type: ignore[union-attr]
    finally:
        stop(run)

    # The run is over: every experiment is on the page, nothing is in flight.
    plan = expected(LIVE_ITERATIONS)
    points = 1 + plan["keep"] + plan["discard"]
    page.wait_for_function(
        f"""() => document.querySelectorAll('section.run-panel[data-run="live"] .ratchet-plot .point').length === {points}""",
        timeout=20_000,
    )
    page.wait_for_selector('section.run-panel[data-run="live"] .in-flight-box', state="hidden", timeout=20_000)
    assert count(page, "live", ".ratchet-plot .failure.crash") == plan["crash"]
    assert count(page, "live", "tbody tr.row") == 1 + LIVE_ITERATIONS

    # Two runs side by side.
    first_box = page.locator('section.run-panel[data-run="first"]').bounding_box()
    live_box = page.locator('section.run-panel[data-run="live"]').bounding_box()
    assert first_box and live_box and first_box["y"] == live_box["y"] and first_box["x"] != live_box["x"]

    # A row opens its diff (a keep: its commit).
    log = json.loads(run_cli(repo, "log", "--json", "--run", "live").stdout)
    keep = next(e for e in log if e["verdict"] == "keep")
    page.locator(f'section.run-panel[data-run="live"] tr.row[data-id="{keep["id"]}"]').click()
    detail = page.locator(f'section.run-panel[data-run="live"] tr.detail[data-id="{keep["id"]}"] pre.diff')
    detail.wait_for(timeout=10_000)
    assert "+99.0" in detail.inner_text()
    # A discard's diff comes from its proposal.
    discard = next(e for e in log if e["verdict"] == "discard")
    page.locator(f'section.run-panel[data-run="live"] tr.row[data-id="{discard["id"]}"]').click()
    detail = page.locator(f'section.run-panel[data-run="live"] tr.detail[data-id="{discard["id"]}"] pre.diff')
    detail.wait_for(timeout=10_000)
    assert "+102.0" in detail.inner_text()

    # Hovering a point of the live plot shows its hypothesis.
    page.hover(f'section.run-panel[data-run="live"] .ratchet-plot .point[data-id="{keep["id"]}"]')
    tooltip = page.locator('section.run-panel[data-run="live"] .plot-tooltip')
    assert tooltip.is_visible() and keep["hypothesis"][:30] in tooltip.inner_text()
    screenshot(page, "dashboard-done.png")
    # One experiment count: the runs bar, the panel and the list (the baseline is not one of them).
    # (The bar asks for the list of runs less often than a panel for its run: it may lag a poll.)
    page.wait_for_function(f"() => document.getElementById('runs-bar').innerText.includes('live (number, {LIVE_ITERATIONS})')", timeout=10_000)
    assert f"{LIVE_ITERATIONS} experiments" in page.locator('section.run-panel[data-run="live"] .summary').inner_text()
    legend = page.locator('section.run-panel[data-run="live"] .plot-legend').inner_text()
    assert "running best" in legend and "crash" in legend and "tampered" in legend
    # A phone-wide window: the panels stack, nothing scrolls sideways, the plot is redrawn to fit.
    page.set_viewport_size({"width": 400, "height": 900})
    assert_fits(page, 400, 'section.run-panel[data-run="live"] .ratchet-plot')
    screenshot(page, "dashboard-400px.png")
    assert errors == []
    page.close()

    # The JSON behind the page.
    status, runs = get(url + "api/runs")
    assert status == 200 and [r["name"] for r in runs["runs"]] == ["first", "live"]
    assert [r["experiments"] for r in runs["runs"]] == [2, LIVE_ITERATIONS]
    status, view = get(url + "api/runs/live")
    assert status == 200 and len(view["experiments"]) == 1 + LIVE_ITERATIONS and view["in_flight"] is None
    assert view["experiment_count"] == LIVE_ITERATIONS and view["y_axis"]["scale"] == "linear"  # 100 down to 96
    assert get(url + "api/runs/nope")[0] == 404
    assert get(url + "api/runs/live/experiments/999")[0] == 404
    assert server.poll() is None


def test_dashboard_y_scale(tmp_path: Path):
    """``--y-scale log`` draws every run on a log axis; a word that is no scale is one line."""
    repo = target(tmp_path / "repo", iterations=1)
    assert run_cli(repo, "run").returncode == 0
    server = start(repo, "dashboard", "--port", "0", "--y-scale", "log")
    try:
        ready, _, _ = select.select([server.stdout], [], [], 30)
        assert ready
        url = re.search(r"(http://127\.0\.0\.1:\d+/)", server.stdout.readline()).group(1)  # type: ignore[union-attr]
        status, view = get(url + "api/runs/t")
        assert status == 200 and view["y_axis"] == {"scale": "log", "wanted": "log", "note": ""}
    finally:
        stop(server)
    bad = run_cli(repo, "dashboard", "--y-scale", "steep", timeout=30)
    assert bad.returncode == 2 and bad.stderr == "ratchet: error: --y-scale: 'steep' is not one of auto, linear, log\n"


def test_dashboard_bad_port_is_one_line(tmp_path: Path):
    repo = make_repo(tmp_path / "repo", {"a.txt": "1\n"})
    blocker = start(repo, "dashboard", "--port", "0")
    try:
        ready, _, _ = select.select([blocker.stdout], [], [], 30)
        assert ready
        port = re.search(r":(\d+)/", blocker.stdout.readline()).group(1)  # type: ignore[union-attr]
        result = run_cli(repo, "dashboard", "--port", port, timeout=30)
        assert result.returncode == 1
        assert result.stderr.strip() == f"ratchet: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    finally:
        stop(blocker)


def test_dashboard_outside_a_repository(tmp_path: Path):
    result = run_cli(tmp_path, "dashboard", "--port", "0", timeout=30)
    assert result.returncode == 1
    assert "not inside a git repository" in result.stderr and "Traceback" not in result.stderr


def test_only_loopback_counts_as_private():
    """The CLI warns unless the address is this machine's loopback (the test binds nothing else)."""
    from ratchet.report.dashboard import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("no such host.invalid")


def test_dashboard_asks_for_news_only(tmp_path: Path, browser):  # noqa: F811
    """The page polls with a cursor, gets only the rows it lacks (a row updated in place among
    them) and, while nothing changes and nothing is in flight, asks less and less often."""
    from conftest import NUMBER_CONFIG, sh

    from ratchet.experiment import Experiment, Verdict
    from ratchet.ledger import Ledger, RunInfo

    repo = make_repo(tmp_path / "repo", {"value.txt": "10\n"}, NUMBER_CONFIG.replace("{python}", sys.executable))
    base = sh(repo, "git", "rev-parse", "HEAD").strip()
    ledger = Ledger(repo / ".ratchet" / "ledger.sqlite")
    info = RunInfo("t", 1.0, base, "ratchet/t", "number", "minimize", {})
    ledger.create_run(info)
    ledger.begin(Experiment("t", 0, base, "baseline", 1.0, "done", Verdict.BASELINE, "", "baseline", 10.0))
    for i in (1, 2, 3):
        ledger.begin(Experiment("t", i, base, "command", 1.0 + i, "done", Verdict.DISCARD, "not better", f"try {i}", 10.0 + i))
    server = start(repo, "dashboard", "--port", "0")
    page = None
    try:
        ready, _, _ = select.select([server.stdout], [], [], 30)
        assert ready
        url = re.search(r"(http://127\.0\.0\.1:\d+/)", server.stdout.readline()).group(1)  # type: ignore[union-attr]
        page = browser.new_page()
        asked: list[str] = []
        page.on("request", lambda request: asked.append(request.url) if "/api/runs/t" in request.url else None)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url)
        rows = 'section.run-panel[data-run="t"] tbody tr.row'
        page.wait_for_function(f"() => document.querySelectorAll('{rows}').length === 4", timeout=20_000)
        # Nothing changes: the page waits longer between polls (refresh 1 s, then 2 s, 4 s…).
        page.wait_for_function("""() => Number(document.querySelector('section.run-panel[data-run="t"]').dataset.pollMs) >= 4000""", timeout=30_000)
        assert asked[0].endswith("/api/runs/t") and all("after=3&revision=" in u for u in asked[1:]), asked

        # The rows on the page are kept across polls, not made anew: each is marked to tell.
        page.evaluate(f"""() => document.querySelectorAll('{rows}').forEach(r => {{ r.ratchetMark = r.dataset.id; }})""")
        # A new experiment in flight (no run holds the lock: a row, not the in-flight box).
        running = Experiment("t", 4, base, "command", 9.0)
        ledger.begin(running)
        row = f'{rows}[data-id="4"]'
        page.wait_for_selector(row, timeout=20_000)
        assert "running" in page.locator(row).inner_text()
        # The same row updated in place: its hypothesis, then its verdict, show.
        running.hypothesis, running.state = "lower the number", "measuring"
        ledger.update(running)
        page.wait_for_function(f"""() => document.querySelector('{row}').innerText.includes('lower the number')""", timeout=20_000)
        running.verdict, running.metric, running.state, running.reason = Verdict.DISCARD, 12.5, "done", "not better"
        ledger.update(running)
        page.wait_for_function(f"""() => document.querySelector('{row} .verdict').innerText === 'discard'""", timeout=20_000)
        assert page.locator(rows).count() == 5
        marks = page.evaluate(f"""() => Array.from(document.querySelectorAll('{rows}')).map(r => [r.dataset.id, r.ratchetMark || null])""")
        assert marks == [["4", None], ["3", "3"], ["2", "2"], ["1", "1"], ["0", "0"]], marks  # newest first; only #4 is new
        # A row opens its detail, which stays open (the same element) while news arrive.
        page.locator(f'{rows}[data-id="2"]').click()
        detail = 'section.run-panel[data-run="t"] tbody tr.detail[data-id="2"]'
        page.wait_for_selector(detail, timeout=10_000)
        page.evaluate(f"""() => {{ document.querySelector('{detail}').ratchetMark = 'open'; }}""")
        ledger.begin(Experiment("t", 5, base, "command", 10.0, "done", Verdict.DISCARD, "not better", "try 5", 15.0))
        page.wait_for_selector(f'{rows}[data-id="5"]', timeout=20_000)
        order = page.evaluate("""() => Array.from(document.querySelectorAll('section.run-panel[data-run="t"] tbody tr'))
                                  .map(r => r.className.split(' ')[0] + r.dataset.id + (r.ratchetMark ? '*' : ''))""")
        assert order == ["row5", "row4", "row3*", "row2*", "detail2*", "row1*", "row0*"], order
        page.locator(f'{rows}[data-id="2"]').click()  # closed again
        page.wait_for_selector(detail, state="detached", timeout=10_000)
        assert any("after=4&revision=" in u for u in asked), asked  # the cursor moved with the news
        assert errors == []
        # The JSON without a cursor is still the whole view.
        status, view = get(url + "api/runs/t")
        assert status == 200 and view["complete"] and [e["id"] for e in view["experiments"]] == [0, 1, 2, 3, 4, 5]
        cursor = view["cursor"]
        status, quiet = get(url + f"api/runs/t?after={cursor['last_id']}&revision={cursor['revision']}&token={cursor['token']}")
        assert status == 200 and quiet["experiments"] == [] and not quiet["changed"] and "counts" not in quiet
    finally:
        if page is not None:
            page.close()
        ledger.close()
        stop(server)
