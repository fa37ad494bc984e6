"""The ml-training recipe end to end: a fixed-time numpy training run under the real loop, judged
sequentially, with scripted proposals (a wider net the params guard refuses, a real improvement,
a regression, a model trained on the validation split that the holdout catches as `overfit`, a
train.py that raises the frozen time budget, one that trains past it), plus `ratchet init
--recipe` and a run of the example as it is."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import run_cli, sh
from recipe_helpers import RecipeRun, init_recipe, prepare, scripted_run

from ratchet.config import load_config

NAME = "ml-training"


def knobs(hypothesis: str, **values: object) -> str:
    """A step that sets train.py's marked knobs (their starting values are in the example)."""
    start = {"learning_rate": "0.0003", "width": "8", "depth": "1", "batch_size": "32", "weight_decay": "0.0001", "activation": '"relu"'}
    lines = [f"hypothesis({hypothesis!r})"]
    for name, value in values.items():
        lines.append(f"edit('train.py', {f'{name} = {start[name]}  #'!r}, {f'{name} = {value!r}  #'!r})")
    return "\n".join(lines) + "\n"


STEPS = [
    # Decisively better (two layers of 64 tanh units), but 4547 parameters: over the bound.
    knobs("two hidden layers of 64 tanh units and a usable learning rate", learning_rate=0.01, width=64, depth=2, activation="tanh"),
    # The real improvement: a learning rate that trains, and two layers of 32 (1251 parameters).
    knobs("a learning rate that trains in the budget, two layers of 32 units", learning_rate=0.01, width=32, depth=2),
    # A regression on top of it: the learning rate back down to 1e-4 (the starting 3e-4 would be
    # the very change the keep undid).
    "hypothesis('a smaller learning rate for stability')\nedit('train.py', 'learning_rate = 0.01  #', 'learning_rate = 0.0001  #')\n",
    # The cheat: train on the split the metric is computed on, full batch, a larger step, no
    # weight decay. It memorises the validation labels (noise included): val_loss far below the
    # noise floor.
    "hypothesis('train on the data we are scored on, full batch, no weight decay')\n"
    "edit('train.py', 'prepare.split(\"train\")', 'prepare.split(\"val\")')\n"
    "edit('train.py', 'learning_rate = 0.01  #', 'learning_rate = 0.03  #')\n"
    "edit('train.py', 'batch_size = 32  #', 'batch_size = 300  #')\n"
    "edit('train.py', 'weight_decay = 0.0001  #', 'weight_decay = 1e-06  #')\n",
    # The classic autoresearch cheat, at run time: train.py raises the frozen budget in prepare.py.
    "hypothesis('more training time')\n"
    "edit('train.py', 'import prepare\\n', 'import prepare\\nimport pathlib\\n"
    "budget = pathlib.Path(\"prepare.py\")\\nbudget.write_text(budget.read_text().replace(\"TIME_BUDGET = 0.3\", \"TIME_BUDGET = 3.0\"))\\n')\n",
    # The same gain without touching prepare.py: train.py simply trains four times as long.
    "hypothesis('train a little longer')\n"
    "edit('train.py', '< prepare.TIME_BUDGET:', '< 4 * prepare.TIME_BUDGET:')\n",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RecipeRun:
    # The end-of-run confirmation race is not what this test is about: off, for time.
    started = time.monotonic()
    found = scripted_run(tmp_path_factory.mktemp("ml-training"), NAME, STEPS, config={"verdict": {"confirm_pairs": 0}})
    print(f"scripted run: {time.monotonic() - started:.1f}s")
    return found


def test_scripted_run_verdicts(run: RecipeRun) -> None:
    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    assert run.verdicts == ["baseline", "discard", "keep", "discard", "overfit", "tampered", "crash"], [
        (e.verdict, e.reason) for e in run.experiments
    ]


def test_a_wider_net_over_the_parameter_bound_is_discarded_by_the_params_guard(run: RecipeRun) -> None:
    wide, baseline = run.experiments[1], run.experiments[0]
    assert wide.metric is not None and baseline.metric is not None and wide.metric < 0.6 * baseline.metric
    assert "guard failed: params (4547 is above the maximum 2000)" in wide.reason
    assert "holdout" not in wide.extra  # guards come first: a refused model costs no holdout run


def test_the_real_improvement_is_kept_sequentially_and_the_regression_is_not(run: RecipeRun) -> None:
    baseline, kept, regression = run.experiments[0], run.experiments[2], run.experiments[3]
    assert kept.metric is not None and baseline.metric is not None and kept.metric < 0.6 * baseline.metric
    # Judged on interleaved pairs, the champion re-measured beside the candidate every time.
    assert kept.extra["measurements"]["champion"] >= 3 and kept.extra["p_value"] < 0.05
    assert [(g.name, g.passed) for g in kept.guards] == [("params", True)] and kept.guards[0].value == 1251
    assert regression.metric is not None and regression.metric > kept.metric and "not better" in regression.reason
    branch = sh(run.repo, "git", "show", "ratchet/ml-training:train.py")
    assert "width = 32  #" in branch and "learning_rate = 0.01  #" in branch and 'split("val")' not in branch


def test_a_model_trained_on_the_validation_split_is_caught_by_the_holdout(run: RecipeRun) -> None:
    cheat, kept = run.experiments[4], run.experiments[2]
    assert cheat.verdict == "overfit" and "holdout got worse" in cheat.reason, cheat.reason
    assert cheat.metric is not None and kept.metric is not None and cheat.metric < 0.7 * kept.metric  # it "won"
    assert all(guard.passed for guard in cheat.guards)
    assert cheat.extra["holdout"] > 1.15 * kept.extra["holdout"]
    assert cheat.commit is None


def test_raising_the_frozen_budget_is_tampered_and_training_past_it_fails_the_run_step(run: RecipeRun) -> None:
    tampered, longer = run.experiments[5], run.experiments[6]
    assert "prepare.py" in tampered.reason, tampered.reason
    assert "run step exited with 1" in longer.reason, longer.reason
    assert "more than the budget of 0.3s" in longer.output_tail  # what `ratchet show` prints under the reason


def test_init_writes_the_recipe_files(tmp_path: Path) -> None:
    written = init_recipe(tmp_path, NAME)
    assert written == ["bench/evaluate.py", "bench/run.py", "prepare.py", "program.md", "ratchet.toml"]
    config = load_config(tmp_path / "ratchet.toml")
    assert config.metric.trusted_scoring and config.holdout is not None and config.verdict.mode == "sequential"


def test_the_example_as_it_is_runs_with_its_optuna_proposer(tmp_path: Path) -> None:
    repo = prepare(tmp_path, NAME)
    result = run_cli(repo, "run", "-n", "2", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "#2" in result.stdout and "Confirmed" in result.stdout
