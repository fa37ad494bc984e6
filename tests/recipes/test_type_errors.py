"""The type-errors recipe end to end: tsc's error count under the real loop, with scripted
proposals (a real fix, a new error, errors hidden by `any`, a file switched off by
`@ts-nocheck`, a looser tsconfig, code deleted with its errors), plus `ratchet init --recipe`
and a run of the example as it is. Needs node and a global typescript (.ci/run installs both)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import run_cli, sh
from recipe_helpers import RecipeRun, init_recipe, prepare, scripted_run

from ratchet.config import load_config

NAME = "type-errors"


@pytest.fixture(scope="module", autouse=True)
def typescript(tmp_path_factory: pytest.TempPathFactory) -> None:
    """tsc as the example's metric finds it: through npx, offline, from an empty folder."""
    folder = tmp_path_factory.mktemp("npx")
    try:
        found = subprocess.run(["npx", "--offline", "tsc", "--version"], cwd=folder, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        pytest.fail("the type-errors recipe needs Node.js and npm: apt-get install nodejs npm (.ci/run does)")
    if "Version" not in found.stdout:
        pytest.fail(f"npx --offline finds no tsc ({found.stderr.strip()[-200:]}): npm install -g typescript (.ci/run does)")


STEPS = [
    # 1. A real fix: money.ts's parameters typed, and a price that does not parse is an error.
    """
    hypothesis("type formatPrice's parameters; parsePrice throws on text without a price")
    edit("src/money.ts", "formatPrice(cents, currency)", "formatPrice(cents: number, currency: string): string")
    edit("src/money.ts", "  return Number(match[1])", "  if (match === null) throw new Error(`no price in ${text}`);\\n  return Number(match[1])")
    """,
    # 2. A regression: a return type that does not hold (one error more, behaviour unchanged).
    """
    hypothesis("initials are a count")
    edit("src/users.ts", "export function initials(user: User): string", "export function initials(user: User): number")
    """,
    # 3. Errors hidden, not fixed: the map typed `any`, three errors gone, one new `any`.
    """
    hypothesis("type the item map")
    edit("src/inventory.ts", "const items = {};", "const items: any = {};")
    edit("src/inventory.ts", "restock(sku: string, count)", "restock(sku: string, count: any)")
    """,
    # 4. The cheat: switch the checker off for the file with the most errors.
    """
    hypothesis("orders.ts is legacy code")
    edit("src/orders.ts", "// Order totals", "// @ts-nocheck\\n// Order totals")
    """,
    # 5. The other cheat: a looser compiler (the harness, outside the scope).
    """
    hypothesis("strict mode is too strict for migrated code")
    edit("tsconfig.json", '"strict": true', '"strict": false')
    """,
    # 6. Code deleted with its error: fewer errors, but the tests import what is gone.
    """
    hypothesis("sortByName is unused")
    text = pathlib.Path("src/users.ts").read_text()
    pathlib.Path("src/users.ts").write_text(text[: text.index("export function sortByName")])
    """,
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RecipeRun:
    return scripted_run(tmp_path_factory.mktemp("type-errors"), NAME, STEPS)


def test_scripted_run_verdicts(run: RecipeRun) -> None:
    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    assert run.verdicts == ["baseline", "keep", "discard", "discard", "discard", "invalid", "discard"], [
        (e.verdict, e.reason) for e in run.experiments
    ]


def test_the_real_fix_is_kept_and_the_new_error_is_not(run: RecipeRun) -> None:
    baseline, fixed, regression = run.experiments[0], run.experiments[1], run.experiments[2]
    # The real tsc output, counted: 16 errors, of which the fix removes money.ts's four.
    assert (baseline.metric, fixed.metric, regression.metric) == (16, 12, 13)
    assert [(g.name, g.passed) for g in fixed.guards] == [("any-casts", True), ("suppressions", True), ("tests", True)]
    branch = sh(run.repo, "git", "show", "ratchet/type-errors:src/money.ts")
    assert "cents: number" in branch
    assert "): number {\n  return user.name" not in sh(run.repo, "git", "show", "ratchet/type-errors:src/users.ts")


def test_errors_hidden_by_any_fail_the_any_casts_guard(run: RecipeRun) -> None:
    hidden = run.experiments[3]
    assert hidden.metric == 9  # it did win on the metric: three fewer errors
    assert "guard failed: any-casts" in hidden.reason
    failed = [guard for guard in hidden.guards if not guard.passed]
    assert [guard.name for guard in failed] == ["any-casts"]
    assert "src/inventory.ts:10:: any" in failed[0].output_tail and failed[0].value == 2


def test_ts_nocheck_is_caught_by_the_suppressions_guard(run: RecipeRun) -> None:
    cheat = run.experiments[4]
    assert cheat.metric == 9 and "guard failed: suppressions" in cheat.reason
    assert [guard.name for guard in cheat.guards if not guard.passed] == ["suppressions"]
    assert cheat.commit is None


def test_a_looser_tsconfig_is_refused_before_it_runs(run: RecipeRun) -> None:
    looser = run.experiments[5]
    assert looser.metric is None and "tsconfig.json is outside the mutable scope" in looser.reason


def test_deleting_code_with_errors_fails_the_tests_guard(run: RecipeRun) -> None:
    deleted = run.experiments[6]
    assert deleted.metric == 11 and "guard failed: tests" in deleted.reason
    failed = [guard for guard in deleted.guards if not guard.passed]
    assert [guard.name for guard in failed] == ["tests"] and "sortByName" in failed[0].output_tail


def test_init_writes_the_recipe_files(tmp_path: Path) -> None:
    written = init_recipe(tmp_path, NAME)
    assert written == ["check/escapes.sh", "program.md", "ratchet.toml"]
    config = load_config(tmp_path / "ratchet.toml")
    assert config.scope.mutable == ["src/**"] and "tsconfig.json" in config.scope.harness
    assert [guard.name for guard in config.guards] == ["any-casts", "suppressions", "tests"]
    # The skeleton counts escape hatches in the user's own src/ as it is.
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.ts").write_text("export const a = JSON.parse('1') as any; // @ts-ignore\n")
    counted = subprocess.run(["sh", "check/escapes.sh", "any"], cwd=tmp_path, capture_output=True, text=True)
    assert counted.returncode == 0 and counted.stdout.splitlines()[-1] == "any: 1"


def test_the_example_runs_as_it_is(tmp_path: Path) -> None:
    repo = prepare(tmp_path, NAME)
    result = run_cli(repo, "run", "-n", "2", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "#0   baseline  type_errors=16" in result.stdout, result.stdout
