"""The walk-forward recipe end to end: a forecasting formula scored out of sample under the real
loop, with scripted proposals (a better formula that needs 60 days of history, a real
improvement, a regression, a formula that reads the future, one that prints a fake RMSE), plus
`ratchet init --recipe` and a run of the example as it is."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli, sh
from recipe_helpers import RecipeRun, init_recipe, prepare, scripted_run

from ratchet.config import load_config

NAME = "walk-forward"

ANCHOR = (
    "edit('forecast.py', 'anchor = 0.0  #', 'anchor = 1.0  #')\n"
    "edit('forecast.py', 'persistence = 0.9  #', 'persistence = 0.99  #')\n"
)

# Reads the whole series from the frozen generator and answers each window with its future.
READS_THE_FUTURE = '''

import sys as _sys, pathlib as _pathlib
_sys.path.append(str(_pathlib.Path(__file__).resolve().parent / "bench"))
import series as _series

_everything = _series.log_prices()


def forecast(history, horizon):
    return _everything[len(history) : len(history) + horizon]
'''


def append(code: str) -> str:
    return f"with open('forecast.py', 'a') as file:\n    file.write({code!r})\n"


STEPS = [
    # Much better than the power law, but the 60-day momentum indexes history[-61]: it breaks on
    # a young series.
    "hypothesis('start from today and follow the last 60 days of momentum')\n" + ANCHOR
    + "edit('forecast.py', '    return trend + anchor', '    trend = trend + (history[-1] - history[-61]) / 60 * np.arange(1, horizon + 1)\\n    return trend + anchor')\n",
    # The real improvement: start from today's deviation from the trend, fading 1% a day.
    "hypothesis('start from where the price is today, the deviation fading 1% a day')\n" + ANCHOR,
    # A regression on top of it: the deviation fades too fast.
    "hypothesis('deviations fade faster')\nedit('forecast.py', 'persistence = 0.99  #', 'persistence = 0.97  #')\n",
    # The cheat: look-ahead.
    "hypothesis('use the whole series')\n" + append(READS_THE_FUTURE),
    # Another: a forecast.py that prints the metric line it would like to have.
    "hypothesis('report the error')\n" + append("\nprint('rmse: 0.000001')\n"),
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RecipeRun:
    return scripted_run(tmp_path_factory.mktemp("walk-forward"), NAME, STEPS)


def test_scripted_run_verdicts(run: RecipeRun) -> None:
    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    assert run.verdicts == ["baseline", "discard", "keep", "discard", "discard", "discard"], [
        (e.verdict, e.reason) for e in run.experiments
    ]
    # Deterministic: the A/A check found no noise, so each candidate was measured once.
    assert all(e.extra["measurements"] == {"candidate": 1, "champion": 0} for e in run.experiments[1:])


def test_a_formula_that_needs_60_days_of_history_fails_the_short_history_guard(run: RecipeRun) -> None:
    momentum, baseline = run.experiments[1], run.experiments[0]
    assert momentum.metric is not None and baseline.metric is not None and momentum.metric < 0.5 * baseline.metric
    assert "guard failed: short-history (exit 1)" in momentum.reason, momentum.reason
    assert "with 30 days of history raised IndexError" in momentum.guards[0].output_tail


def test_the_real_improvement_is_kept_with_its_bootstrap_interval_and_the_regression_is_not(run: RecipeRun) -> None:
    baseline, kept, regression = run.experiments[0], run.experiments[2], run.experiments[3]
    assert kept.metric is not None and baseline.metric is not None and kept.metric < 0.5 * baseline.metric
    assert [(g.name, g.passed) for g in kept.guards] == [("short-history", True), ("lookahead", True)]
    assert kept.guards[1].value is not None and kept.guards[1].value > 0.01  # a formula of the past: no alarm
    assert 0 < kept.extra["holdout"] < baseline.extra["holdout"]
    # The score step's tail holds the interval of the change against the frozen reference.
    line = next(line for line in kept.output_tail.splitlines() if line.startswith("rmse vs the reference"))
    assert "95% bootstrap interval -" in line and "(36 windows, 2000 resamples)" in line
    assert regression.metric is not None and regression.metric > kept.metric and "not better" in regression.reason
    branch = sh(run.repo, "git", "show", "ratchet/walk-forward:forecast.py")
    assert "anchor = 1.0  #" in branch and "persistence = 0.99  #" in branch and "_series" not in branch


def test_a_formula_that_reads_the_future_is_caught_by_the_lookahead_guard(run: RecipeRun) -> None:
    cheat, kept = run.experiments[4], run.experiments[2]
    assert cheat.metric is not None and cheat.metric < 1e-9  # a perfect out-of-sample score
    assert "guard failed: lookahead (" in cheat.reason and "is below the minimum 0.001" in cheat.reason, cheat.reason
    lookahead = cheat.guards[1]
    assert lookahead.value is not None and lookahead.value < 1e-9 and "that is look-ahead" in lookahead.output_tail
    assert "holdout" not in cheat.extra and cheat.commit is None


def test_a_printed_fake_rmse_is_not_the_metric(run: RecipeRun) -> None:
    fake, kept = run.experiments[5], run.experiments[2]
    assert fake.metric == kept.metric and "not better" in fake.reason  # the score step's number, not 0.000001
    assert "rmse: 0.000001" in (Path(fake.log_dir) / "metric.run.stdout").read_text()


def test_init_writes_the_recipe_files(tmp_path: Path) -> None:
    written = init_recipe(tmp_path, NAME)
    assert written == [
        "bench/reference.py", "bench/score.py", "bench/series.py", "bench/short_history.py", "bench/walk.py",
        "program.md", "ratchet.toml",
    ]  # fmt: skip
    config = load_config(tmp_path / "ratchet.toml")
    assert config.metric.trusted_scoring and config.holdout is not None and [g.name for g in config.guards] == ["short-history", "lookahead"]


def test_the_example_as_it_is_runs_with_its_optuna_proposer(tmp_path: Path) -> None:
    repo = prepare(tmp_path, NAME)
    result = run_cli(repo, "run", "-n", "2", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "#2" in result.stdout and "deterministic" in result.stdout
