"""Harness overhead per experiment: ratchet's loop against a bare shell loop doing the same git work.

A repository of ``--files`` files (1,000 by default); a no-op proposer (it rewrites one line of one
file in the scope, as the optuna proposer does: edits); the metric command is as cheap as `true`.
`true` itself prints no number, and a baseline needs one, so the discard path uses `echo 1`. Two paths:

- discard: the metric is `echo 1`, never better than the champion's 1, so every experiment is
  discarded and the worktree put back; the shell loop does
  `echo changed > target.txt; sh -c 'echo 1'; git reset --hard; git clean -fdxq`.
- keep: the metric is `cat value.txt` and every proposal lowers the value, so every experiment
  is committed; the shell loop does `echo N > value.txt; sh -c 'cat value.txt'; git add -A; git commit`.

Both with the sandbox off (`[sandbox] mode = "off"`: the harness's own work) and with the default
sandbox (bubblewrap, where it works: "+bwrap" rows), where the shell loop runs its metric in
bubblewrap too, with the namespaces ratchet asks for (the sandbox's own cost, the same on both
sides, is `benchmarks/sandbox_overhead.py`'s figure); a "vs no bwrap" line under each of them
sets ratchet's +bwrap figure against the shell loop without bwrap, timed in the same rotation
(ratchet's whole cost with its sandbox, against the bare git work).

Blocks of N experiments alternate pair by pair, ratchet then the shell loop, after a warm-up block
of each; each pair gives a ratio, and a row shows the medians. ratchet's figure is its time per
experiment inside the loop (from the first to the last budget check of a block): the run's start,
the noise calibrations and the closing confirmation race are per run, not per experiment, and are
reported below the table.

``--profile`` instead counts the processes one experiment starts (git, bwrap, shells, other),
for the edits, optuna, command and patch proposers, keep and discard, with and without the
sandbox: it traces the loop's process tree with strace (execve only) and attributes each exec to
the experiment it happened in.

    python benchmarks/overhead.py [--files 1000] [--n 50] [--pairs 5] [--profile]
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from rich.console import Console

import ratchet.loop.run as loop_run
from ratchet import Loop, Proposal, ProposalContext, Proposer
from ratchet.config import parse_config
from ratchet.experiment import Verdict
from ratchet.report.terminal import Display
from _common import GIT_ENV, commit_all, load


# The command proposer's program (profile only): in place, as an agent edits the worktree.
PROPOSE_SH = """\
if [ "$1" = keep ]; then v=$(cat value.txt); echo $((v - 1)) > value.txt; else echo "changed $RATCHET_EXPERIMENT" > target.txt; fi
if [ "$2" = new ]; then mkdir -p new; echo "$RATCHET_EXPERIMENT" > "new/$RATCHET_EXPERIMENT.txt"; fi
"""


def make_repo(root: Path, files: int) -> Path:
    root.mkdir()
    for i in range(files):
        folder = root / f"pkg{i // 100}"
        if i % 100 == 0:
            folder.mkdir()
        (folder / f"module{i % 100}.py").write_text(f"# file {i}\nVALUE = {i}\n")
    (root / "target.txt").write_text("original\n")
    (root / "value.txt").write_text("1000000\n")
    (root / "tune.py").write_text("X = 500  # ratchet: int 1..1000\n")
    (root / "bench").mkdir()
    (root / "bench" / "propose.sh").write_text(PROPOSE_SH)
    return commit_all(root)


class NoOp(Proposer):
    """Edits (the optuna proposer's path), or a patch; with ``new``, each also adds a file."""

    kind = "noop"

    def __init__(self, keep: bool, patch: bool = False, new: bool = False) -> None:
        self.keep, self.patch, self.new = keep, patch, new
        self.value = 1_000_000
        self.count = 0

    def propose(self, context: ProposalContext) -> Proposal:
        self.count += 1
        added = f"new/{os.getpid()}-{self.count}.txt"
        if self.patch:
            if self.keep:
                old, self.value = self.value, self.value - 1
                diff = f"--- a/value.txt\n+++ b/value.txt\n@@ -1 +1 @@\n-{old}\n+{self.value}\n"
            else:
                diff = "--- a/target.txt\n+++ b/target.txt\n@@ -1 +1 @@\n-original\n+changed\n"
            if self.new:
                diff += f"--- /dev/null\n+++ b/{added}\n@@ -0,0 +1 @@\n+{self.count}\n"
            return Proposal(hypothesis=f"value {self.value}", patch=diff)
        if self.keep:
            self.value -= 1
            edits = {"value.txt": f"{self.value}\n"}
        else:
            edits = {"target.txt": "changed\n"}
        return Proposal(hypothesis=f"value {self.value}", edits=edits | ({added: f"{self.count}\n"} if self.new else {}))


def config_text(keep: bool, name: str, sandbox: str = "off", proposer: str = "noop", new: bool = False) -> str:
    command = "cat value.txt" if keep else "echo 1"
    section = 'kind = "command"\ncommand = "true"'
    metric_extra = ""
    if proposer == "command":
        section = f'kind = "command"\ncommand = "sh bench/propose.sh {"keep" if keep else "discard"}{" new" if new else ""}"'
    elif proposer == "optuna":
        section = 'kind = "optuna"'
        command, metric_extra = "cat tune.py", "regex = 'X = (\\d+)'"
    return f"""
[run]
name = "{name}"
[scope]
mutable = ["target.txt", "value.txt", "tune.py", "new/**"]
harness = ["pkg0/**", "bench/**"]
[metric]
command = "{command}"
direction = "minimize"
{metric_extra}
[budget]
max_consecutive_crashes = 1000000
[proposer]
{section}
[sandbox]
mode = "{sandbox}"
"""


class Clock(Display):
    """The terminal display (to /dev/null), noting when each budget check happens."""

    def __init__(self) -> None:
        super().__init__(Console(file=open(os.devnull, "w")))
        self.checks: list[float] = []

    def progress(self, *args: Any, **kwargs: Any) -> None:
        self.checks.append(time.perf_counter())
        super().progress(*args, **kwargs)


class PerRun:
    """Time spent in the per-run steps (calibration, confirmation race), by wrapping them."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = collections.defaultdict(list)
        self.when: dict[str, list[float]] = collections.defaultdict(list)
        for name in ("calibrate", "confirm"):
            setattr(loop_run, name, self._timed(name, getattr(loop_run, name)))

    def _timed(self, name: str, step: Callable[..., None]) -> Callable[..., None]:
        def timed(*args: Any, **kwargs: Any) -> None:
            started = time.perf_counter()
            try:
                step(*args, **kwargs)
            finally:
                self.when[name].append(started)
                self.seconds[name].append(time.perf_counter() - started)

        return timed


PER_RUN = PerRun()


class RatchetBlocks:
    """Blocks of one path: each a ``Loop.run`` of ``n`` more experiments on the same run."""

    def __init__(self, repo: Path, keep: bool, sandbox: str, n: int) -> None:
        self.repo, self.n = repo, n
        self.config = parse_config(config_text(keep, f"bench-{'keep' if keep else 'discard'}-{sandbox}", sandbox))
        self.proposer = NoOp(keep)
        self.done = 0
        self.starts: list[float] = []

    def block(self) -> float:
        """Seconds per experiment inside the loop, calibrations taken out."""
        self.done += self.n
        clock = Clock()
        started = time.perf_counter()
        Loop(self.repo, self.config, proposer=self.proposer, iterations=self.done, observer=clock).run()
        first, last = clock.checks[0], clock.checks[-1]
        self.starts.append(first - started)
        # A calibration before the first check belongs to the run's start; those inside the loop are taken out.
        timed = zip(PER_RUN.when["calibrate"], PER_RUN.seconds["calibrate"])
        inside = [seconds for when, seconds in timed if first < when < last]
        return (last - first - sum(inside)) / self.n


# The shell loop's sandbox: what ratchet's bwrap line does (sandbox.py), without its binds back.
BWRAP = ("bwrap --ro-bind / / --dev /dev --proc /proc --unshare-pid --unshare-ipc --unshare-uts --unshare-net "
         "--die-with-parent --new-session --tmpfs /tmp --bind \"$PWD\" \"$PWD\" --chdir \"$PWD\" -- ")


class ShellBlocks:
    def __init__(self, repo: Path, keep: bool, n: int, sandbox: str = "off") -> None:
        self.work = Path(tempfile.mkdtemp()) / "wt"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(self.work)], cwd=repo, check=True)
        box = BWRAP if sandbox != "off" and shutil.which("bwrap") else ""
        if keep:
            body = f'v=$((v-1)); echo $v > value.txt; {box}sh -c "cat value.txt" > /dev/null; git add -A; git commit -qm "value $v"'
        else:
            body = f'echo changed > target.txt; {box}sh -c "echo 1" > /dev/null; git reset -q --hard; git clean -fdxq'
        self.n = n
        self.v = 1_000_000
        self.body = body

    def block(self) -> float:
        script = f"v={self.v}; for i in $(seq {self.n}); do {self.body}; done"
        self.v -= self.n
        started = time.perf_counter()
        subprocess.run(["bash", "-c", script], cwd=self.work, check=True, env=GIT_ENV)
        return (time.perf_counter() - started) / self.n


def _median_ms(seconds: list[float]) -> str:
    # A run whose calibration found the metric deterministic may time none at all.
    return f"{statistics.median(seconds) * 1000:.1f} ms" if seconds else "-"


def timing(args: argparse.Namespace) -> None:
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{subprocess.run(['git', '--version'], capture_output=True, text=True).stdout.strip()}")
    print(f"repository: {args.files:,} files; {args.n} experiments per block, {args.pairs} alternated pairs (ratchet, shell)")
    print(f"before: {load()}\n")
    print(f"{'path':<16} {'ratchet ms/exp':>15} {'shell ms/exp':>13} {'ratio':>6}   (ratio per pair)"
          f"   [+bwrap rows: against the bare shell loop too]")
    for sandbox in ("off", "auto"):
        for keep in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                repo = make_repo(Path(tmp) / "repo", args.files)
                ours, theirs = RatchetBlocks(repo, keep, sandbox, args.n), ShellBlocks(repo, keep, args.n, sandbox)
                # The +bwrap rows also time the shell loop without bwrap, in the same rotation: the
                # sandbox's whole cost shows as the ratio against it.
                bare = ShellBlocks(repo, keep, args.n) if sandbox != "off" else None
                ours.block(), theirs.block(), bare and bare.block()  # warm-up: the baseline, the first calibration, caches
                pairs = [(ours.block(), theirs.block(), bare.block() if bare else 0.0) for _ in range(args.pairs)]
            a = statistics.median(p[0] for p in pairs) * 1000
            b = statistics.median(p[1] for p in pairs) * 1000
            ratios = [p[0] / p[1] for p in pairs]
            path = f"{'keep' if keep else 'discard'}{' +bwrap' if sandbox == 'auto' else ''}"
            print(f"{path:<16} {a:>15.1f} {b:>13.1f} {statistics.median(ratios):>6.2f}   ({' '.join(f'{r:.2f}' for r in ratios)})",
                  flush=True)
            if bare is not None:
                c = statistics.median(p[2] for p in pairs) * 1000
                against = [p[0] / p[2] for p in pairs]
                print(f"{'  vs no bwrap':<16} {a:>15.1f} {c:>13.1f} {statistics.median(against):>6.2f}   "
                      f"({' '.join(f'{r:.2f}' for r in against)})", flush=True)
            starts = ours.starts[1:]
            print(f"{'':<16} (per run, left out: the run's start {statistics.median(starts) * 1000:.0f} ms)", flush=True)
    calibrations = PER_RUN.seconds["calibrate"]
    confirmations = PER_RUN.seconds["confirm"]
    print(f"\nper run, left out above: {len(calibrations)} calibrations, median {_median_ms(calibrations)}; "
          f"{len(confirmations)} confirmation races, median {_median_ms(confirmations)}")
    print(f"after: {load()}")
    print("goal: ratio <= 1.5 on every row")


# ---------------------------------------------------------------- --profile

_EXEC = re.compile(r'^(\d+)\s+execve\("([^"]*)", \[(.*?)\], ')
_MARK = re.compile(r'"[^"]*/ratchet-profile-marks/(start|done)-?([\w-]*)"')
MARKS = Path(tempfile.mkdtemp()) / "ratchet-profile-marks"


class Marks(Display):
    """Marks each experiment's start and end in the trace: an access() of a marker file (strace -z
    shows successful calls only, so the files exist)."""

    def __init__(self) -> None:
        super().__init__(Console(file=open(os.devnull, "w")))
        MARKS.mkdir(exist_ok=True)
        for name in ["start", *(f"done-{verdict.value}" for verdict in Verdict)]:
            (MARKS / name).touch()

    def experiment_started(self, experiment: Any) -> None:
        os.access(MARKS / "start", os.F_OK)
        super().experiment_started(experiment)

    def experiment_done(self, experiment: Any) -> None:
        os.access(MARKS / f"done-{experiment.verdict.value}", os.F_OK)
        super().experiment_done(experiment)


def traced(log: Path, run: Callable[[], None]) -> None:
    tracer = subprocess.Popen(["strace", "-f", "-qq", "-z", "-s", "200", "-e", "trace=execve,access,faccessat,faccessat2",
                               "-e", "signal=none", "-o", str(log), "-p", str(os.getpid())])
    deadline = time.monotonic() + 10
    while "TracerPid:\t0" in Path("/proc/self/status").read_text():
        if time.monotonic() > deadline:
            raise SystemExit("strace did not attach")
        time.sleep(0.01)
    try:
        run()
    finally:
        tracer.terminate()
        tracer.wait()


def kind_of(path: str, argv: str) -> str:
    name = os.path.basename(path)
    if name in ("sh", "dash", "bash"):
        return "shell"
    if name.startswith("git"):
        words = [w.strip('"') for w in argv.split(", ")]
        sub = next((w for i, w in enumerate(words[1:], 1) if not w.startswith("-") and words[i - 1] != "-c"), "?")
        return f"git {sub}"
    return name if name == "bwrap" else "other"


def count(log: Path) -> dict[str, list[collections.Counter[str]]]:
    """Per verdict, one counter of execs for each experiment."""
    out: dict[str, list[collections.Counter[str]]] = collections.defaultdict(list)
    current: collections.Counter[str] | None = None
    for line in log.read_text(errors="replace").splitlines():
        if mark := _MARK.search(line):
            if mark.group(1) == "start":
                current = collections.Counter()
            elif current is not None:
                out[mark.group(2)].append(current)
                current = None
        elif current is not None and (found := _EXEC.match(line)):
            current[kind_of(found.group(2), found.group(3))] += 1
    return out


def profile(args: argparse.Namespace) -> None:
    if shutil.which("strace") is None:
        raise SystemExit("--profile needs strace")
    print(f"processes per experiment ({args.files:,} files; {args.n} experiments each; traced with strace: execve)\n")
    print(f"{'proposer':<11} {'sandbox':<8} {'verdict':<8} {'n':>3} {'git':>5} {'bwrap':>6} {'shells':>7} {'other':>6}   git calls")
    for sandbox in ("off", "auto"):
        for proposer in ("edits", "optuna", "command", "patch", "edits+new", "command+new", "patch+new"):
            base, new = proposer.removesuffix("+new"), proposer.endswith("+new")
            for keep in ((False, True) if proposer != "optuna" else (True,)):
                with tempfile.TemporaryDirectory() as tmp:
                    repo = make_repo(Path(tmp) / "repo", args.files)
                    kind = "noop" if base in ("edits", "patch") else base
                    config = parse_config(config_text(keep, "profile", sandbox, kind, new))
                    given = NoOp(keep, patch=base == "patch", new=new) if kind == "noop" else None
                    Loop(repo, config, proposer=given, iterations=2, observer=Marks()).run()  # baseline, calibration
                    log = Path(tmp) / "trace"
                    traced(log, lambda: Loop(repo, config, proposer=given, iterations=2 + args.n, observer=Marks()).run())
                    for verdict, counters in sorted(count(log).items()):
                        total: collections.Counter[str] = sum(counters, collections.Counter())
                        per = {k: v / len(counters) for k, v in total.items()}
                        git = sum(v for k, v in per.items() if k.startswith("git"))
                        calls = ", ".join(f"{k[4:]} {v:g}" for k, v in sorted(per.items()) if k.startswith("git"))
                        print(f"{proposer:<11} {sandbox:<8} {verdict:<8} {len(counters):>3} {git:>5.2g} {per.get('bwrap', 0):>6.2g} "
                              f"{per.get('shell', 0):>7.2g} {per.get('other', 0):>6.2g}   {calls}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000, help="files in the repository")
    parser.add_argument("--n", type=int, default=50, help="experiments per timed block")
    parser.add_argument("--pairs", type=int, default=5, help="alternated pairs of blocks per row")
    parser.add_argument("--profile", action="store_true", help="count processes per experiment instead of timing")
    args = parser.parse_args()
    if args.profile:
        profile(args)
    else:
        timing(args)


if __name__ == "__main__":
    sys.exit(main())
