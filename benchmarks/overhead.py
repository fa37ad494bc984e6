"""Harness overhead per experiment: ratchet's loop against a bare shell loop doing the same git work.

A repository of 1,000 files; a no-op proposer (it rewrites one line of one file in the scope); the
metric command is a shell builtin as cheap as `true` (run through /bin/sh, as ratchet runs every
command). `true` itself prints no number, and a baseline needs one, so the discard path uses
`echo 1`. Two paths:

- discard: the metric is `echo 1`, never better than the champion's 1, so every experiment is
  discarded and the worktree reset; the shell loop does
  `echo changed > target.txt; sh -c 'echo 1'; git reset --hard; git clean -fdxq`.
- keep: the metric is `cat value.txt` and every proposal lowers the value, so every experiment
  is committed; the shell loop does `echo N > value.txt; sh -c 'cat value.txt'; git add -A; git commit`.

Both with the sandbox off (`[sandbox] mode = "off"`: the harness's own work) and with the
default sandbox (bubblewrap, where it works: "+bwrap" rows). Each figure is the median of REPEATS timed blocks of N experiments (after a warm-up block), per
experiment. Run:  python benchmarks/overhead.py [--n 100] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from ratchet import Loop, Proposal, ProposalContext, Proposer
from ratchet.config import parse_config
from ratchet.report.terminal import Display

GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}



def make_repo(root: Path) -> Path:
    root.mkdir()
    for d in range(10):
        folder = root / f"pkg{d}"
        folder.mkdir()
        for f in range(100):
            (folder / f"module{f}.py").write_text(f"# file {d}/{f}\nVALUE = {d * 100 + f}\n")
    (root / "target.txt").write_text("original\n")
    (root / "value.txt").write_text("1000000\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=root, check=True, env=GIT_ENV)
    return root


class NoOp(Proposer):
    kind = "noop"

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.value = 1_000_000

    def propose(self, context: ProposalContext) -> Proposal:
        if self.keep:
            self.value -= 1
            return Proposal(hypothesis=f"value {self.value}", edits={"value.txt": f"{self.value}\n"})
        return Proposal(hypothesis="no-op", edits={"target.txt": "changed\n"})


def config_text(keep: bool, name: str, sandbox: str = "off") -> str:
    command = "cat value.txt" if keep else "echo 1"
    return f"""
[run]
name = "{name}"
[scope]
mutable = ["target.txt", "value.txt"]
harness = ["pkg0/**"]
[metric]
command = "{command}"
direction = "minimize"
[budget]
max_consecutive_crashes = 1000000
[proposer]
kind = "command"
command = "true"
[sandbox]
mode = "{sandbox}"
"""


def time_ratchet(repo: Path, keep: bool, n: int, repeats: int, sandbox: str) -> list[float]:
    """Seconds per experiment for each timed block (the block after the baseline and a warm-up)."""
    name = f"bench-{'keep' if keep else 'discard'}-{sandbox}"
    config = parse_config(config_text(keep, name, sandbox))
    proposer = NoOp(keep)
    quiet = Display(Console(file=open(os.devnull, "w")))
    Loop(repo, config, proposer=proposer, iterations=n, observer=quiet).run()  # baseline + warm-up
    times = []
    done = n
    for _ in range(repeats):
        done += n
        started = time.perf_counter()
        Loop(repo, config, proposer=proposer, iterations=done, observer=quiet).run()
        times.append((time.perf_counter() - started) / n)
    return times


def time_shell(repo: Path, keep: bool, n: int, repeats: int) -> list[float]:
    work = Path(tempfile.mkdtemp()) / "wt"
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(work)], cwd=repo, check=True)
    if keep:
        body = 'v=$((v-1)); echo $v > value.txt; sh -c "cat value.txt" > /dev/null; git add -A; git commit -qm "value $v"'
    else:
        body = 'echo changed > target.txt; sh -c "echo 1" > /dev/null; git reset -q --hard; git clean -fdxq'
    script = f"v=1000000; for i in $(seq {n}); do {body}; done"
    subprocess.run(["bash", "-c", script], cwd=work, check=True, env=GIT_ENV)  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(["bash", "-c", script], cwd=work, check=True, env=GIT_ENV)
        times.append((time.perf_counter() - started) / n)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="experiments per timed block")
    parser.add_argument("--repeats", type=int, default=5, help="timed blocks per figure")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{subprocess.run(['git', '--version'], capture_output=True, text=True).stdout.strip()}")
    print(f"repository: 1,000 files; {args.n} experiments per block, median of {args.repeats} blocks\n")
    print(f"{'path':<14} {'ratchet ms/exp':>15} {'shell ms/exp':>13} {'ratio':>6}   (min..max ratchet; min..max shell)")
    for sandbox in ("off", "auto"):
        for keep in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                repo = make_repo(Path(tmp) / "repo")
                ours = time_ratchet(repo, keep, args.n, args.repeats, sandbox)
                theirs = time_shell(repo, keep, args.n, args.repeats)
            a, b = statistics.median(ours) * 1000, statistics.median(theirs) * 1000
            path = f"{'keep' if keep else 'discard'}{' +bwrap' if sandbox == 'auto' else ''}"
            print(f"{path:<14} {a:>15.1f} {b:>13.1f} {a / b:>6.2f}   "
                  f"({min(ours) * 1000:.1f}..{max(ours) * 1000:.1f}; {min(theirs) * 1000:.1f}..{max(theirs) * 1000:.1f})")
    print("\ngoal: ratio <= 1.5 and <= 60 ms per experiment")


if __name__ == "__main__":
    sys.exit(main())
