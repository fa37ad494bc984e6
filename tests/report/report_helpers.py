"""Shared by the browser tests: Debian's Chromium through Playwright, a target whose runs have
keeps, discards and crashes, and a folder for screenshots."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_repo

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

# What the proposer does at each experiment: k = lower the number (a keep), d = raise it (a
# discard), c = write something that is no number (the metric crashes).
PLAN = "kdkcdkdkdkdk"
# Untrusted text in a hypothesis: must show as text, never run.
HOSTILE = '</script><script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> & <b>bold</b>'

PROPOSE = f"""\
import os, pathlib
n = int(os.environ["RATCHET_EXPERIMENT"])
step = {PLAN!r}[(n - 1) % {len(PLAN)}]
value = pathlib.Path("value.txt")
v = float(value.read_text())
if step == "k":
    new, words = v - 1, "lower the number"
elif step == "d":
    new, words = v + 3, "raise the number"
else:
    new, words = "oops", "write a word instead"
value.write_text(f"{{new}}\\n")
hypothesis = f"{{words}} to {{new}} (experiment {{n}})"
if n == 3:
    hypothesis += " " + {HOSTILE!r}
pathlib.Path(os.environ["RATCHET_HYPOTHESIS_FILE"]).write_text(hypothesis)
pathlib.Path(os.environ["RATCHET_USAGE_FILE"]).write_text('{{"tokens_in": 1000, "tokens_out": 200, "cost_usd": 0.01}}')
"""

# The metric says it started, waits (argv[1] seconds), then prints the number.
BENCH = """\
import pathlib, sys, time
print("measuring value.txt", flush=True)
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 0)
print("metric:", float(pathlib.Path("value.txt").read_text()))
"""

def config_text(
    *, name: str, command: str, proposer: str, iterations: int, metric: str = "number", direction: str = "minimize",
    harness: tuple[str, ...] = ("bench.py", "propose.py"),
) -> str:
    """The ratchet.toml of a small test target: value.txt in scope, no calibration or confirmation."""
    return f"""
[run]
name = {json.dumps(name)}
[scope]
mutable = ["value.txt"]
harness = {json.dumps(list(harness))}
[metric]
name = {json.dumps(metric)}
command = {json.dumps(command)}
regex = 'metric: (\\S+)'
direction = "{direction}"
timeout = "60s"
[verdict]
calibrate_pairs = 0
confirm_pairs = 0
[budget]
iterations = {iterations}
[proposer]
kind = "command"
command = {json.dumps(proposer)}
"""


def target(root: Path, *, name: str = "t", iterations: int = 8, sleep: float = 0) -> Path:
    config = config_text(
        name=name, command=f"{sys.executable} bench.py {sleep}", proposer=f"{sys.executable} propose.py", iterations=iterations
    )
    return make_repo(root, {"value.txt": "100\n", "bench.py": BENCH, "propose.py": PROPOSE, "program.md": "Make it small.\n"}, config)


def expected(iterations: int) -> dict[str, int]:
    """How many of each verdict a run of ``iterations`` experiments of PLAN ends with."""
    steps = [PLAN[i % len(PLAN)] for i in range(iterations)]
    return {"keep": steps.count("k"), "discard": steps.count("d"), "crash": steps.count("c")}


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def screenshot(page: object, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    print(f"screenshot: {path}")
    return path


def assert_fits(page: Any, width: int, plot: str = ".ratchet-plot") -> None:
    """The page does not scroll sideways at ``width``; the plot is drawn at its size on screen
    (once a resize has redrawn it), whole, legible, with its legend."""
    page.wait_for_function(
        f"""() => {{ const svg = document.querySelector('{plot} svg');
                   return svg && Math.abs(svg.getBoundingClientRect().width - Number(svg.getAttribute('width'))) < 1; }}""",
        timeout=10_000,
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    svg = page.locator(f"{plot} svg").first
    assert svg.is_visible()
    box = svg.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= width and box["width"] >= width * 0.6
    heights = page.evaluate(f"[...document.querySelector('{plot} svg').querySelectorAll('text.tick')].map(t => t.getBoundingClientRect().height)")
    assert heights and min(heights) >= 10  # 11px labels, not a 960px drawing scaled down to a third
    assert page.locator(f"{plot} .plot-legend").first.is_visible()
