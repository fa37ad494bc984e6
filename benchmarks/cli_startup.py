"""How long a command takes to start: whole-process CPU time (user + system, `os.wait4` of the
child) of `ratchet --help`, `--version`, `status`, `status --json`, `log`, `log --json` and
`show 1` on a run of 100 experiments (generated with the real Ledger API, as benchmarks/reads.py).

--before DIR compares another source tree (e.g. ``git archive <commit> src | tar -x -C DIR``) side
by side: each repeat runs both trees, in alternating order; medians of --repeats. The import tree
of one command: ``python -X importtime -m ratchet --help``. Run:

    python benchmarks/cli_startup.py [--repeats 9] [--before /tmp/ratchet-before]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reads import build_project, cpu_of, load  # noqa: E402
from _common import trees as source_trees

COMMANDS = (("--help",), ("--version",), ("status",), ("status", "--json"), ("log",), ("log", "--json"), ("show", "1"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--experiments", type=int, default=100)
    parser.add_argument("--before", type=Path, help="another source tree's root (holding src/ratchet)")
    args = parser.parse_args()
    trees = source_trees(args.before)
    figures: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
    with tempfile.TemporaryDirectory() as tmp:
        root = build_project(Path(tmp) / "project", args.experiments)
        print(load(), file=sys.stderr)
        for repeat in range(args.repeats):
            order = list(trees) if repeat % 2 == 0 else list(reversed(trees))
            for command in COMMANDS:
                for name in order:
                    spent, _ = cpu_of([sys.executable, "-m", "ratchet", *command], cwd=root, src=trees[name])
                    figures[name].setdefault(" ".join(command), []).append(spent)
        print(load(), file=sys.stderr)
    print(f"CPU seconds per command (user + system), median of {args.repeats}, {args.experiments} experiments")
    print(f"{'':22}" + "".join(f"{name:>10}" for name in trees) + ("     ratio" if len(trees) == 2 else ""))
    for label in figures["after"]:
        values = [statistics.median(figures[name][label]) for name in trees]
        ratio = f"{values[0] / values[1]:>9.1f}×" if len(values) == 2 else ""
        print(f"ratchet {label:14}" + "".join(f"{v:>10.3f}" for v in values) + ratio)


if __name__ == "__main__":
    main()
