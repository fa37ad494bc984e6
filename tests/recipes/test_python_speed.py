"""The python-speed recipe end to end: minitemplate's hot path under the real loop, with
scripted proposals (a real speed-up, a regression, a speed-up that breaks a unit test, and the
benchmark-gaming cache that the holdout must catch as `overfit`), plus `ratchet init --recipe`
and a run of the example as it is."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli, sh
from recipe_helpers import RecipeRun, init_recipe, prepare, scripted_run

from ratchet.config import load_config

NAME = "python-speed"

# The real improvement: every tag found by one precompiled regex instead of a walk over the
# source one character at a time. Appended to minitemplate.py, it replaces the slow _tokenize.
REGEX_TOKENIZER = '''

import re

_TAG = re.compile(r"\\{\\{(.*?)\\}\\}|\\{%(.*?)%\\}", re.S)


def _tokenize(source: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    for match in _TAG.finditer(source):
        if match.start() > position:
            tokens.append(("text", _text(source, position, match.start())))
        variable, statement = match.groups()
        tokens.append(("var", variable.strip()) if variable is not None else ("tag", statement.strip()))
        position = match.end()
    if position < len(source):
        tokens.append(("text", _text(source, position, len(source))))
    return tokens


def _text(source: str, start: int, end: int) -> str:
    text = source[start:end]
    for opener in ("{{", "{%"):
        if opener in text:
            raise TemplateError(f"unclosed {opener} at offset {start + text.index(opener)}")
    return text
'''

# Faster still, and wrong: whitespace between two tags is dropped ("{{ first }} {{ last }}").
DROPS_WHITESPACE = REGEX_TOKENIZER.replace(
    "        if match.start() > position:\n",
    "        if match.start() > position and source[position:match.start()].strip():\n",
)

# A regression: a defensive deep copy of the context on every call.
DEEP_COPY = '''

import copy

_render_shared = render


def render(source: str, context: Mapping[str, Any]) -> str:
    return _render_shared(source, copy.deepcopy(context))
'''

# The cheat: the benchmark renders each input many times in a row, so remembering the last
# call's objects and output makes it ~100x "faster". The tests pass (they never render the same
# dict twice) and so does the allocation bound; the holdout, which updates one context dict per
# record as applications do, gets stale output and scores 0.
CACHE_LAST_INPUT = '''

_last: list[Any] = [None, None, ""]
_render_every_time = render


def render(source: str, context: Mapping[str, Any]) -> str:
    if source is _last[0] and context is _last[1]:
        return _last[2]
    _last[:] = [source, context, _render_every_time(source, context)]
    return _last[2]
'''


def append(hypothesis: str, code: str) -> str:
    return f"hypothesis({hypothesis!r})\nwith open('minitemplate.py', 'a') as file:\n    file.write({code!r})\n"


STEPS = [
    append("drop whitespace-only text between tags: fewer nodes to render", DROPS_WHITESPACE),
    append("find tags with one precompiled regex instead of a char-by-char walk", REGEX_TOKENIZER),
    append("deep-copy the context so templates cannot change the caller's data", DEEP_COPY),
    append("return the previous output when the same template and context come again", CACHE_LAST_INPUT),
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RecipeRun:
    # Time only: this environment's pytest plugins (hypothesis, pytest-benchmark) take seconds to
    # load on every `tests` guard and minitemplate's tests need none of them; the end-of-run
    # confirmation race is not what this test is about, 2 pairs of it are enough.
    # max_pairs 20: on a busy 2-core machine one CPU-time sample of this benchmark varies by 20-30%,
    # and the steps that must reach the guards need the power to show their speed-up first.
    config = {"verdict": {"confirm_pairs": 2, "max_pairs": 20}, "sandbox": {"env": ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"]}}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
        return scripted_run(tmp_path_factory.mktemp("python-speed"), NAME, STEPS, config=config)


def test_scripted_run_verdicts(run: RecipeRun) -> None:
    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    assert run.verdicts == ["baseline", "discard", "keep", "discard", "overfit"], [
        (e.verdict, e.reason) for e in run.experiments
    ]


def test_a_speedup_that_breaks_a_unit_test_is_discarded_by_the_tests_guard(run: RecipeRun) -> None:
    broken = run.experiments[1]
    assert "guard failed: tests" in broken.reason
    failed = [guard for guard in broken.guards if not guard.passed and not guard.skipped]
    assert [guard.name for guard in failed] == ["tests"]  # the allocations guard after it did not run
    assert "test_text_and_variables" in failed[0].output_tail


def test_the_real_improvement_is_kept_and_the_regression_is_not(run: RecipeRun) -> None:
    baseline, kept, regression = run.experiments[0], run.experiments[2], run.experiments[3]
    # Faster than the baseline as its verdict measured them, side by side (not its median against
    # the baseline's own, taken minutes earlier: the fresh-clone CI once saw the kept regex 3.8%
    # "slower" than that, on a machine whose load had risen in between).
    assert kept.parent_commit == baseline.parent_commit
    comparison = kept.comparison(None)
    assert comparison is not None and comparison.remeasured and comparison.candidate < comparison.champion
    # The regression was measured against the kept champion and not kept. (Not its raw median
    # against the keep's: a deep copy of a small context is within the noise of a loaded machine,
    # and the fresh-clone CI once measured it 0.5% faster; the paired verdict is what counts.)
    assert regression.parent_commit == kept.commit and regression.verdict == "discard" and regression.commit is None
    # Every guard ran for the keep, the allocation bound against the baseline's number.
    assert [(g.name, g.passed) for g in kept.guards] == [("tests", True), ("allocations", True)]
    branch = sh(run.repo, "git", "show", "ratchet/render-speed:minitemplate.py")
    assert "_TAG = re.compile" in branch and "deepcopy" not in branch and "_last" not in branch


def test_the_benchmark_gaming_cache_is_caught_by_the_holdout(run: RecipeRun) -> None:
    cheat, kept = run.experiments[4], run.experiments[2]
    assert cheat.verdict == "overfit" and "holdout got worse" in cheat.reason
    assert cheat.metric is not None and kept.metric is not None and cheat.metric < kept.metric / 10  # it won the benchmark
    assert all(guard.passed for guard in cheat.guards)  # ...and every visible check
    assert cheat.extra["holdout"] == 0.0 and kept.extra["holdout"] > 0
    assert "wrong" in (Path(cheat.log_dir) / "holdout.stderr").read_text()
    assert cheat.commit is None


def test_init_writes_the_recipe_files(tmp_path: Path) -> None:
    written = init_recipe(tmp_path, NAME)
    assert written == ["bench/allocs.py", "bench/corpus.py", "bench/holdout.py", "bench/speed.py", "program.md", "ratchet.toml"]
    config = load_config(tmp_path / "ratchet.toml")
    assert config.verdict.mode == "sequential" and config.holdout is not None
    assert [guard.name for guard in config.guards] == ["tests", "allocations"]


def test_the_example_runs_as_it_is(tmp_path: Path) -> None:
    repo = prepare(tmp_path, NAME)
    result = run_cli(repo, "run", "-n", "2", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Stopped: iteration budget spent (2/2)" in result.stdout, result.stdout
