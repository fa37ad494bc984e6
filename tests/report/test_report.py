"""``ratchet report``: the HTML file of a real run, opened in headless Chromium; the PNG; errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import make_repo, run_cli
from report_helpers import (  # noqa: F401 (browser is a fixture)
    HOSTILE,
    assert_fits,
    browser,
    config_text,
    expected,
    screenshot,
    target,
)

from ratchet.report.html import json_for_script

ITERATIONS = 8


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """A run of 8 experiments: keeps, discards, one crash; and its ledger as `ratchet log --json` says."""
    repo = target(tmp_path_factory.mktemp("report") / "repo", iterations=ITERATIONS)
    result = run_cli(repo, "run")
    assert result.returncode == 0, result.stderr
    log = run_cli(repo, "log", "--json")
    return repo, json.loads(log.stdout)


def open_report(browser, path: Path):  # noqa: F811
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(path.as_uri())
    page.wait_for_selector(".ratchet-plot svg .best-line", state="attached")
    return page, requests, errors


def test_report_shows_the_run(finished, browser, tmp_path: Path):  # noqa: F811
    repo, log = finished
    output = tmp_path / "report.html"
    result = run_cli(repo, "report", "-o", str(output))
    assert result.returncode == 0, result.stderr
    assert f"wrote {output}" in result.stdout
    counts = expected(ITERATIONS)
    assert {v: sum(1 for e in log if e["verdict"] == v) for v in counts} == counts  # the plan ran as written

    page, requests, errors = open_report(browser, output)
    # One dot per measured experiment (baseline included), each failure marked under the axis.
    assert page.locator(".ratchet-plot .point").count() == 1 + counts["keep"] + counts["discard"]
    assert page.locator(".ratchet-plot .point.keep").count() == counts["keep"]
    assert page.locator(".ratchet-plot .point.discard").count() == counts["discard"]
    assert page.locator(".ratchet-plot .point.baseline").count() == 1
    assert page.locator(".ratchet-plot .failure.crash").count() == counts["crash"]
    assert page.locator(".ratchet-plot .point.clipped").count() == 0
    # The table of keeps: one row per keep, in order, with its deltas.
    rows = page.locator("#kept tbody tr.kept-row")
    keeps = [e for e in log if e["verdict"] == "keep"]
    assert rows.count() == len(keeps)
    assert [int(rows.nth(i).get_attribute("data-id")) for i in range(rows.count())] == [e["id"] for e in keeps]
    first = rows.nth(0).inner_text()
    assert "-1" in first and "-1.00%" in first  # 100 -> 99: against the previous champion and the baseline
    last = rows.nth(rows.count() - 1).inner_text()
    assert f"-{counts['keep']}" in last  # each keep lowers the number by one
    for verdict, n in counts.items():
        assert page.locator(f'.count[data-verdict="{verdict}"] .n').inner_text() == str(n)
    # The diff of a keep opens under it.
    rows.nth(0).locator("details summary").click()
    diff = rows.nth(0).locator("pre.diff")
    assert diff.is_visible()
    assert "+99.0" in diff.inner_text() and "-100" in diff.inner_text()
    # Budget: the proposer's tokens and money, summed.
    tokens = sum((e["tokens_in"] or 0) + (e["tokens_out"] or 0) for e in log)
    cost = sum(e["cost_usd"] or 0 for e in log)
    assert tokens > 0
    budget = page.locator("#budget").inner_text()
    assert f"{tokens:,}" in budget and f"${cost:.4f}" in budget
    assert page.locator("#hardware tbody tr").count() == 1
    assert page.locator("#hardware tbody td").nth(1).inner_text() == f"{ITERATIONS} and the baseline"
    assert page.locator("#ledger tbody tr").count() == len(log)
    # This run measured no noise and confirmed nothing: the one statistic is its error control.
    assert page.locator("#statistics .stat").count() == 1
    assert "Error control" in page.locator("#statistics .stat").inner_text()
    # One experiment count everywhere: the card and the list agree (the baseline is #0, not one of them).
    assert page.locator("#summary .card", has_text="experiments").locator(".v").inner_text() == str(ITERATIONS)
    assert page.locator("#all-experiments summary").inner_text().startswith(f"{ITERATIONS} experiments and the baseline")
    # The legend names every kind of mark; these numbers span less than a decade: a linear axis.
    legend = page.locator(".ratchet-plot .plot-legend").inner_text()
    for name in ("kept", "discarded", "baseline", "running best", "crash", "timeout", "invalid", "tampered"):
        assert name in legend
    assert page.locator(".ratchet-plot svg").get_attribute("data-y-scale") == "linear"

    # Hovering a point shows its hypothesis and verdict; the proposer's markup stays text.
    hostile = next(e for e in keeps if HOSTILE in e["hypothesis"])
    page.hover(f'.ratchet-plot .point[data-id="{hostile["id"]}"]')
    tooltip = page.locator(".plot-tooltip")
    assert tooltip.is_visible()
    assert f"#{hostile['id']} keep" in tooltip.inner_text()
    assert HOSTILE in tooltip.inner_text()
    assert HOSTILE in page.locator(f"#kept-{hostile['id']}").inner_text()
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#kept img").count() == 0
    screenshot(page, "report.png")
    page.mouse.move(5, 5)
    assert not tooltip.is_visible()

    # A failure's mark has a tooltip too, with the reason.
    crash = next(e for e in log if e["verdict"] == "crash")
    page.hover(f'.ratchet-plot .failure[data-id="{crash["id"]}"]')
    assert f"#{crash['id']} crash" in tooltip.inner_text()
    assert "write a word instead" in tooltip.inner_text()

    # Self-contained: the page asked for nothing but itself, and ran without errors.
    assert requests == [output.as_uri()]
    assert errors == []
    page.close()


@pytest.mark.parametrize("calibrate", [2, 0], ids=["deterministic-1-pair", "2-pairs"])
def test_report_shows_noise_and_confirmation(browser, tmp_path: Path, calibrate: int):  # noqa: F811
    """A calibration that finds the metric deterministic cuts the confirmation to one pair: one
    pair has no interval, and the report says so instead of printing a zero-width one."""
    repo = target(tmp_path / "repo", iterations=3)
    config = repo / "ratchet.toml"
    config.write_text(config.read_text().replace("calibrate_pairs = 0", f"calibrate_pairs = {calibrate}").replace("confirm_pairs = 0", "confirm_pairs = 2"))
    result = run_cli(repo, "run")
    assert result.returncode == 0, result.stderr
    output = tmp_path / "report.html"
    assert run_cli(repo, "report", "-o", str(output)).returncode == 0
    page, _, errors = open_report(browser, output)
    stats = page.locator("#statistics .stat")
    # Without calibration the default (auto) judges sequentially at run level: its error control
    # is shown too, before the confirmation; a deterministic metric is judged on one measurement.
    controlled = 0 if calibrate else 1
    assert stats.count() == (2 if calibrate else 1) + controlled
    if controlled:
        assert "Estimated false-keep share" in stats.nth(0).inner_text()
    confirmation = stats.nth(stats.count() - 1).inner_text()
    assert "Final confidence interval" in confirmation and "Confirmed: the champion" in confirmation
    if calibrate:
        noise = stats.nth(0).inner_text()
        assert "Noise estimate" in noise and "sd of one measurement" in noise and "pairs" in noise
        assert "1 pair, no interval" in confirmation
        assert "(95% CI" not in confirmation and "95% CI, low end" not in confirmation  # no interval of width zero
        assert "no interval" not in noise
    else:
        assert "95% CI, low end" in confirmation and "(95% CI" in confirmation and "no interval" not in confirmation
    assert errors == []
    page.close()


def test_report_reads_at_400px(finished, browser, tmp_path: Path):  # noqa: F811
    """On a phone-wide window the page does not scroll sideways, and the plot is drawn at the
    window's size: its labels keep their size instead of shrinking with the picture."""
    repo, _ = finished
    output = tmp_path / "report.html"
    assert run_cli(repo, "report", "-o", str(output)).returncode == 0
    page = browser.new_page(viewport={"width": 400, "height": 800})
    page.goto(output.as_uri())
    page.wait_for_selector(".ratchet-plot svg .best-line", state="attached")
    assert_fits(page, 400)
    screenshot(page, "report-400px.png")
    page.close()


QUARTERING = """\
import os, pathlib
n = int(os.environ["RATCHET_EXPERIMENT"])
value = pathlib.Path("value.txt")
value.write_text("-1\\n" if n == 3 else f"{float(value.read_text()) / 4}\\n")
pathlib.Path(os.environ["RATCHET_HYPOTHESIS_FILE"]).write_text(f"step {n}")
"""


def test_y_scale(browser, tmp_path: Path):  # noqa: F811
    """Numbers over more than a decade get a log axis unless told otherwise; a number of 0 or
    less has no place on one: the axis stays linear and says why."""
    config = config_text(name="a", metric="m", command=f"{sys.executable} bench.py", proposer=f"{sys.executable} propose.py", iterations=2)
    files = {"value.txt": "100\n", "bench.py": "print('metric:', open('value.txt').read().strip())\n", "propose.py": QUARTERING}
    repo = make_repo(tmp_path / "repo", files, config)
    assert run_cli(repo, "run").returncode == 0  # 100, 25, 6.25
    assert run_cli(repo, "run", "--name", "b", "--iterations", "3").returncode == 0  # 100, 25, 6.25, -1

    def drawn(run: str, *flags: str) -> tuple[str, str, list[str]]:
        output = tmp_path / f"{run}{''.join(flags)}.html"
        result = run_cli(repo, "report", run, "-o", str(output), *flags)
        assert result.returncode == 0, result.stderr
        page, _, errors = open_report(browser, output)
        assert errors == []
        svg = page.locator(".ratchet-plot svg")
        note = page.locator(".ratchet-plot .plot-note")
        found = (svg.get_attribute("data-y-scale") or "", note.inner_text() if note.count() else "", svg.locator("text.tick").all_text_contents())
        page.close()
        return found

    scale, note, ticks = drawn("a")
    assert scale == "log" and note == "" and "10" in ticks and "100" in ticks
    assert drawn("a", "--y-scale", "linear")[:2] == ("linear", "")
    for flags in ((), ("--y-scale", "log")):
        scale, note, _ = drawn("b", *flags)
        assert scale == "linear" and "log scale" in note and "1 number is 0 or less" in note
    png, linear = tmp_path / "a.png", tmp_path / "a-linear.png"
    assert run_cli(repo, "report", "a", "--png", "-o", str(png)).returncode == 0
    assert run_cli(repo, "report", "a", "--png", "--y-scale", "linear", "-o", str(linear)).returncode == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.read_bytes() != linear.read_bytes()  # the PNG follows the scale too
    bad = run_cli(repo, "report", "a", "--y-scale", "steep")
    assert bad.returncode == 2 and bad.stderr == "ratchet: error: --y-scale: 'steep' is not one of auto, linear, log\n"


def test_png_of_the_plot(finished, tmp_path: Path):
    import matplotlib.image

    repo, _ = finished
    output = tmp_path / "plot.png"
    result = run_cli(repo, "report", "t", "--png", "-o", str(output))
    assert result.returncode == 0, result.stderr
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = matplotlib.image.imread(output).shape[:2]
    assert (width, height) == (1200, 540)


def test_default_file_name(finished, tmp_path: Path):
    repo, _ = finished
    result = run_cli(repo, "report")
    assert result.returncode == 0, result.stderr
    written = repo / "ratchet-t.html"
    assert written.exists() and "ratchet report: run" in written.read_text()
    written.unlink()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("report", "nope"), "no run named 'nope' (runs: t)"),
        (("report", "-o", "/nonexistent/folder/r.html"), "cannot write /nonexistent/folder/r.html"),
    ],
)
def test_bad_input_is_one_line(finished, args: tuple[str, ...], message: str):
    repo, _ = finished
    result = run_cli(repo, *args)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert message in result.stderr and "Traceback" not in result.stderr


def test_no_run_yet_is_one_line(tmp_path: Path):
    repo = make_repo(tmp_path / "fresh", {"a.txt": "1\n"})
    result = run_cli(repo, "report")
    assert result.returncode == 1
    assert result.stderr.startswith("ratchet: error: no ledger") and result.stderr.count("\n") == 1


def test_embedded_json_cannot_close_its_script():
    text = str(json_for_script({"h": "</script><!-- & \u2028"}))
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"h": "</script><!-- & \u2028"}


def test_report_of_a_run_with_a_nan_an_outlier_and_no_keep(tmp_path: Path, browser):  # noqa: F811
    """A metric that printed nan has no dot (JSON has no NaN) but a mark; a far outlier is drawn
    at the edge, not allowed to flatten the plot; no keep is said plainly."""
    files = {"value.txt": "5\n", "bench.py": "print('metric:', open('value.txt').read().strip())\n"}
    propose = "import os; open('value.txt', 'w').write('nan' if os.environ['RATCHET_EXPERIMENT'] == '1' else '-1e9'); print('try')"
    config = config_text(
        name="n", metric="m", command=f"{sys.executable} bench.py", proposer=f"{sys.executable} -c \"{propose}\"",
        iterations=2, direction="maximize", harness=("bench.py",),
    )
    repo = make_repo(tmp_path / "repo", files, config)
    result = run_cli(repo, "run")
    assert result.returncode == 0, result.stderr
    log = json.loads(run_cli(repo, "log", "--json").stdout)
    assert [e["verdict"] for e in log] == ["baseline", "invalid", "discard"]
    output = tmp_path / "r.html"
    assert run_cli(repo, "report", "-o", str(output)).returncode == 0
    page, _, errors = open_report(browser, output)
    assert errors == []
    assert page.locator(".ratchet-plot .point").count() == 2
    assert page.locator(".ratchet-plot .point.clipped").count() == 1  # -1e9, at the bottom edge
    assert page.locator(".ratchet-plot .failure.invalid").count() == 1
    assert "No experiment was kept" in page.locator("#kept").inner_text()
    assert "higher is better" in page.locator(".ratchet-plot svg").inner_html()
    page.close()
