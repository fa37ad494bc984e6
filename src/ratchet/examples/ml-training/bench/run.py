"""The run step: train.py in a child process, held to the time budget from outside.

train.py keeps the budget itself (it is the candidate's code, free to change); this frozen
wrapper checks it: the child's CPU time (its own and its waited-for children's, from wait4) may
exceed prepare.TIME_BUDGET only by the allowance for starting Python, importing numpy and
saving. One BLAS thread, so that a second core buys no extra training.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOWANCE = 0.6  # seconds of CPU to start Python, import numpy and save: about 0.15 measured, so room to spare


def time_budget() -> float:
    """prepare.TIME_BUDGET, read from the source: importing prepare would cost a numpy import."""
    for node in ast.parse((ROOT / "prepare.py").read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "TIME_BUDGET" for t in node.targets):
            return float(ast.literal_eval(node.value))
    raise SystemExit("run.py: prepare.py has no TIME_BUDGET")


def main() -> int:
    budget = time_budget()
    threads = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    child = subprocess.Popen([sys.executable, "-B", "train.py"], cwd=ROOT, env={**os.environ, **threads})
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    used = usage.ru_utime + usage.ru_stime
    if child.returncode != 0:
        print(f"run.py: train.py exited with {child.returncode}", file=sys.stderr)
        return 1
    if used > budget + ALLOWANCE:
        print(f"run.py: train.py used {used:.2f}s of CPU, more than the budget of {budget}s "
              f"(+{ALLOWANCE}s to start): it must stop training on time", file=sys.stderr)  # fmt: skip
        return 1
    print(f"run.py: train.py used {used:.2f}s of CPU (budget {budget}s + {ALLOWANCE}s to start)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
