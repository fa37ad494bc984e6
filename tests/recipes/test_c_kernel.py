"""The c-kernel recipe end to end: kernel.c's matrix multiply built with the system compiler
under the real loop, with scripted proposals (a vectorizable loop order kept, -O0 discarded, a
fast kernel wrong at odd sizes stopped by the correctness guard, a fast wrong kernel stopped by
the metric's own check, a kernel that rewrites the benchmark while it runs `tampered`), plus
`ratchet init --recipe` and a run of the example as it is."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import run_cli, sh
from recipe_helpers import RecipeRun, init_recipe, prepare, scripted_run

from ratchet.config import load_config
from ratchet.experiment import Experiment

NAME = "c-kernel"


def _compiler() -> None:
    # No skip: in CI a missing compiler fails here, with the fix (.ci/run installs gcc).
    if shutil.which("cc") is None and os.environ.get("CI"):
        pytest.fail("no C compiler (cc) on PATH: the c-kernel recipe needs one (apt install gcc)")


# The real improvement: i-k-j order, so the inner loop streams a row of B into a row of C, and
# -O3, where gcc vectorizes that loop. Correct for every n.
IKJ = r"""
void matmul(int n, const double *restrict a, const double *restrict b, double *restrict c) {
    for (long i = 0; i < (long)n * n; i++) c[i] = 0.0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++) {
            const double aik = a[(long)i * n + k];
            const double *restrict bk = b + (long)k * n;
            double *restrict ci = c + (long)i * n;
            for (int j = 0; j < n; j++) ci[j] += aik * bk[j];
        }
}
"""

# Just as fast at n = 256, and wrong whenever n is not a multiple of 4: the last columns are
# never computed. The metric's check (n = 256) passes; the correctness guard (n = 1..129) fails.
NO_TAIL = IKJ.replace("for (int j = 0; j < n; j++)", "for (int j = 0; j < (n & ~3); j++)")

# Twice as "fast" and wrong everywhere: half the products are skipped.
HALF_THE_WORK = IKJ.replace("for (int k = 0; k < n; k++)", "for (int k = 0; k < n; k += 2)")

# Correct when it is checked, idle when it is timed: the first call (the check) does the work,
# every later one returns at once. Caught because each timed run's result is sampled too.
FIRST_CALL_ONLY = IKJ.replace(
    "double *restrict c) {\n", "double *restrict c) {\n    static int calls;\n    if (calls++ > 0) return;\n"
)

# The benchmark rewritten from inside: at load time the kernel shrinks bench/run.py's SIZE to
# 64, where the matrices fit in L1 and every later measurement would look faster.
SHRINKS_THE_BENCHMARK = IKJ + r"""
#include <stdio.h>
#include <string.h>

__attribute__((constructor)) static void smaller_benchmark(void) {
    static char text[1 << 16];
    FILE *file = fopen("bench/run.py", "r");
    if (file == NULL) return;
    size_t size = fread(text, 1, sizeof text - 1, file);
    fclose(file);
    text[size] = 0;
    char *at = strstr(text, "SIZE = 256");
    if (at == NULL) return;
    memcpy(at, "SIZE =  64", 10);
    file = fopen("bench/run.py", "w");
    fwrite(text, 1, size, file);
    fclose(file);
}
"""


def kernel(hypothesis: str, source: str, opt_level: int | None = None) -> str:
    step = f"hypothesis({hypothesis!r})\nimport pathlib\npathlib.Path('kernel.c').write_text({source!r})\n"
    if opt_level is not None:
        step += f"edit('flags.toml', 'opt_level = 2', 'opt_level = {opt_level}')\n"
    return step


STEPS = [
    kernel("i-k-j, vectorized at -O3, with the j loop in steps the vector width likes", NO_TAIL, opt_level=3),
    kernel("i-k-j order: the inner loop streams rows of B and C; -O3 vectorizes it", IKJ, opt_level=3),
    "hypothesis('-O0: compile faster')\nedit('flags.toml', 'opt_level = 3', 'opt_level = 0')\n",
    kernel("skip every other k: half the multiplies", HALF_THE_WORK),
    kernel("do the work once; later calls find C already computed", FIRST_CALL_ONLY),
    kernel("benchmark at a size that fits in cache", SHRINKS_THE_BENCHMARK),
]


def _faster_than_its_champion(experiment: Experiment, by: float = 1.0) -> bool:
    """GFLOPS against the champion as the verdict measured them, side by side: not against the
    champion's own number from minutes earlier, which a machine whose load changed in between
    can put on either side."""
    comparison = experiment.comparison(None)
    assert comparison is not None and comparison.remeasured, experiment
    return comparison.candidate > comparison.champion * by


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RecipeRun:
    _compiler()
    # The end-of-run confirmation race is not what this test is about: 2 pairs keep it short.
    return scripted_run(tmp_path_factory.mktemp("c-kernel"), NAME, STEPS, config={"verdict": {"confirm_pairs": 2}})


def test_scripted_run_verdicts(run: RecipeRun) -> None:
    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    assert run.verdicts == ["baseline", "discard", "keep", "discard", "crash", "crash", "tampered"], [
        (e.verdict, e.reason) for e in run.experiments
    ]


def test_a_kernel_wrong_at_odd_sizes_is_stopped_by_the_correctness_guard(run: RecipeRun) -> None:
    no_tail = run.experiments[1]
    assert _faster_than_its_champion(no_tail)  # fast at 256
    assert "guard failed: correctness" in no_tail.reason
    assert "wrong result for n = 1 " in no_tail.guards[0].output_tail


def test_the_real_improvement_is_kept_and_the_regression_is_not(run: RecipeRun) -> None:
    baseline, kept, regression = run.experiments[0], run.experiments[2], run.experiments[3]
    assert kept.parent_commit == baseline.parent_commit and _faster_than_its_champion(kept, by=1.2)
    assert [(g.name, g.passed) for g in kept.guards] == [("correctness", True)]
    assert regression.parent_commit == kept.commit and not _faster_than_its_champion(regression)
    assert "opt_level = 3" in sh(run.repo, "git", "show", "ratchet/matmul:flags.toml")
    assert "ci[j] += aik * bk[j]" in sh(run.repo, "git", "show", "ratchet/matmul:kernel.c")


@pytest.mark.parametrize("experiment, where", [(4, "n = 256 at"), (5, "in a timed run")])
def test_a_fast_wrong_kernel_crashes_with_no_number(run: RecipeRun, experiment: int, where: str) -> None:
    # Half the work: wrong at the check before timing. Work only when checked: wrong in a
    # timed run's sampled entries. Either way the metric command exits 1 and prints no number.
    wrong = run.experiments[experiment]
    assert wrong.verdict == "crash" and wrong.metric is None and "exited with 1" in wrong.reason
    log = Path(wrong.log_dir)
    stdout = log / "metric.stdout"  # no file when the command printed nothing there
    assert where in (log / "metric.stderr").read_text() and "gflops" not in (stdout.read_text() if stdout.exists() else "")


def test_a_kernel_that_rewrites_the_benchmark_is_tampered(run: RecipeRun) -> None:
    tampered = run.experiments[6]
    assert "bench/run.py" in tampered.reason and tampered.metric is None and tampered.commit is None
    assert "SIZE = 256" in sh(run.repo, "git", "show", "ratchet/matmul:bench/run.py")


def test_build_outputs_stay_out_of_the_user_checkout_and_the_branch(run: RecipeRun) -> None:
    assert not (run.repo / "build").exists()
    tracked = sh(run.repo, "git", "ls-tree", "-r", "--name-only", "ratchet/matmul").split()
    assert not [path for path in tracked if path.startswith("build/")]


def test_init_writes_the_recipe_files(tmp_path: Path) -> None:
    written = init_recipe(tmp_path, NAME)
    assert written == [".gitignore", "bench/bench.c", "bench/run.py", "program.md", "ratchet.toml"]
    config = load_config(tmp_path / "ratchet.toml")
    assert config.verdict.mode == "sequential" and [guard.name for guard in config.guards] == ["correctness"]


def test_the_example_runs_as_it_is(tmp_path: Path) -> None:
    _compiler()
    repo = prepare(tmp_path, NAME)
    result = run_cli(repo, "run", "-n", "2", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Stopped: iteration budget spent (2/2)" in result.stdout, result.stdout
