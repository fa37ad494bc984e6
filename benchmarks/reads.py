"""Reads that do not grow: `ratchet log --json` and one dashboard poll on a run of N experiments.

The run is generated with the real Ledger API (no loop: the ledger's rows are what is read): a
baseline, then keeps (1 in 10), discards and crashes, each with a hypothesis, a reason, an output
tail of 2 KB, one guard and the verdict's samples in ``extra``, like a long command-proposer run.

Figures, each the median of --repeats, whole-process CPU time (user + system, `os.wait4` of the
child) so that other work on the machine counts as little as it can:

- ``log --json``: the whole run written as JSON; ``log --json --last 20``;
- the dashboard's run endpoint, driven in a child process through the Starlette app itself (ASGI,
  no server, no HTTP client): the first poll (the page opening), a poll when nothing changed (what
  an open tab asks every second), a poll after one new experiment. A poll asks the way the page
  asks: with the cursor of the answer before (an older tree ignores it and answers everything).

--before DIR compares another source tree (e.g. ``git archive <commit> src | tar -x -C DIR``) with
this one, side by side: each repeat runs both, in alternating order. Run:

    python benchmarks/reads.py --experiments 10000 [--repeats 5] [--before /tmp/ratchet-before]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from _common import GIT_ENV, SRC, trees as source_trees


CONFIG = """\
[run]
name = "main"
[scope]
mutable = ["value.txt"]
harness = ["bench.py"]
[metric]
name = "number"
command = "python3 bench.py"
regex = 'metric: (\\S+)'
direction = "minimize"
[budget]
iterations = {n}
[proposer]
kind = "command"
command = "true"
[sandbox]
mode = "off"
"""


def build_project(root: Path, n: int) -> Path:
    """A git repository with ratchet.toml and a ledger holding a run of ``n`` experiments (and a baseline)."""
    sys.path.insert(0, str(SRC))
    from ratchet.experiment import Experiment, GuardResult, Verdict
    from ratchet.ledger import LEDGER_FILE, Ledger, RunInfo
    from ratchet.state import STATE_DIR

    root.mkdir(parents=True)
    (root / "ratchet.toml").write_text(CONFIG.format(n=n))
    (root / "value.txt").write_text("1000\n")
    (root / "bench.py").write_text("print('metric:', open('value.txt').read())\n")
    (root / "program.md").write_text("Make the number small.\n")
    (root / ".gitignore").write_text(".ratchet/\n")
    for args in (["init", "-q", "--initial-branch=main"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=root, check=True, env=GIT_ENV)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, check=True, capture_output=True, text=True).stdout.strip()
    ledger = Ledger(root / STATE_DIR / LEDGER_FILE)
    ledger.create_run(RunInfo("main", time.time() - n, head, "ratchet/main", "number", "minimize", {"budget": {"iterations": n}}))
    session = ledger.start_session("main")
    ledger._db.execute("BEGIN")  # one transaction: generating 10,000 rows takes seconds, not minutes
    champion, tail = 1000.0, ("step output line\n" * 128)[:2000]
    for i in range(n + 1):
        kind = "baseline" if i == 0 else "keep" if i % 10 == 1 else "crash" if i % 10 == 5 else "discard"
        metric = None if kind == "crash" else champion - 1 if kind == "keep" else champion + (i % 7) + 1
        e = Experiment(run="main", id=i, parent_commit=head, proposer="command", started=time.time() - n + i)
        ledger.begin(e)
        e.hypothesis = f"experiment {i}: try a {kind} of the number"
        e.verdict, e.metric, e.state, e.ended = Verdict(kind), metric, "done", e.started + 0.5
        e.reason = f"{kind}: {metric} against the champion {champion}"
        e.commit = f"{i:040x}" if kind in ("keep", "baseline") else None
        e.output_tail, e.hardware, e.log_dir = tail, "fp0", str(root / STATE_DIR / "logs" / f"{i:05d}")
        e.guards = [GuardResult("tests", True, 0, reason="passed")]
        e.extra = {"candidate_samples": [metric or 0.0] * 3, "p_value": 0.01}
        ledger.update(e)
        if kind in ("keep", "baseline") and metric is not None:
            champion = metric
    ledger._db.execute("COMMIT")
    ledger.record_hardware("fp0", {"cpu": "benchmark"})
    ledger.touch_session(session)
    ledger.close()
    return root


# What one child does to time the dashboard: the app over ASGI, the page's own cursor.
POLL = r"""
import asyncio, json, sys, time
from pathlib import Path
root, repeats = Path(sys.argv[1]), int(sys.argv[2])
from ratchet.report.dashboard import create_app
from ratchet.ledger import Ledger
from ratchet.experiment import Experiment, Verdict
app = create_app(root)

async def get(path, query=""):
    sent = []
    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
             "headers": [], "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1), "root_path": "",
             "http_version": "1.1", "asgi": {"version": "3.0"}}
    async def receive(): return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message): sent.append(message)
    await app(scope, receive, send)
    return json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))

def cursor(answer):
    c = answer.get("cursor")  # an older tree has none: it answers everything every time
    return "" if not c else f"after={c['last_id']}&revision={c['revision']}&token={c['token']}"

def timed(query=""):
    start = time.process_time()
    answer = asyncio.run(get("/api/runs/main", query))
    return time.process_time() - start, answer

first, answer = timed()
quiet = []
for _ in range(repeats):
    spent, answer = timed(cursor(answer))
    quiet.append(spent)
ledger = Ledger(root / ".ratchet" / "ledger.sqlite")
new = Experiment(run="main", id=ledger.next_id("main"), parent_commit="0" * 40, proposer="command", started=time.time())
ledger.begin(new); new.verdict, new.metric, new.state = Verdict.DISCARD, 5000.0, "done"; ledger.update(new)
ledger.close()
grown, answer = timed(cursor(answer))
print(json.dumps({"first": first, "quiet": sorted(quiet)[len(quiet) // 2], "grown": grown}))
"""


def cpu_of(args: list[str], *, cwd: Path, src: Path) -> tuple[float, bytes]:
    """Whole-process CPU seconds (user + system) of one child, and its stdout."""
    env = {**os.environ, "PYTHONPATH": str(src), "COLUMNS": "200"}
    with tempfile.TemporaryFile() as out:
        child = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        out.seek(0)
        if status != 0:
            raise SystemExit(f"{args} failed in {cwd} (src {src})")
        return usage.ru_utime + usage.ru_stime, out.read()


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--before", type=Path, help="another source tree's root (holding src/ratchet), compared side by side")
    args = parser.parse_args()
    trees = source_trees(args.before)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"generating a run of {args.experiments} experiments…", file=sys.stderr)
        template = build_project(Path(tmp) / "template", args.experiments)
        figures: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
        print(load(), file=sys.stderr)
        for repeat in range(args.repeats):
            order = list(trees) if repeat % 2 == 0 else list(reversed(trees))
            for name in order:
                # A fresh copy per tree and repeat: a poll appends an experiment, a newer tree adds columns.
                root = Path(shutil.copytree(template, Path(tmp) / f"{name}-{repeat}", symlinks=True))
                src = trees[name]
                py = [sys.executable, "-m", "ratchet"]
                spent, data = cpu_of([*py, "log", "--json"], cwd=root, src=src)
                assert len(json.loads(data)) == args.experiments + 1
                figures[name].setdefault("log --json", []).append(spent)
                if name == "after" or args.before is None:
                    figures[name].setdefault("log --json --last 20", []).append(cpu_of([*py, "log", "--json", "--last", "20"], cwd=root, src=src)[0])
                spent, data = cpu_of([sys.executable, "-c", POLL, str(root), "5"], cwd=root, src=src)
                polls = json.loads(data.decode().strip().splitlines()[-1])
                for key, label in (("first", "dashboard: first poll"), ("quiet", "dashboard: poll, nothing new"), ("grown", "dashboard: poll, one new experiment")):
                    figures[name].setdefault(label, []).append(polls[key])
        print(load(), file=sys.stderr)
    labels = list(dict.fromkeys(label for name in trees for label in figures[name]))
    print(f"\n{args.experiments} experiments, CPU seconds, median of {args.repeats} (alternated)")
    print(f"{'':38}" + "".join(f"{name:>10}" for name in trees) + ("     ratio" if len(trees) == 2 else ""))
    for label in labels:
        values = [statistics.median(figures[name][label]) if label in figures[name] else None for name in trees]
        cells = "".join(f"{v:>10.4f}" if v is not None else f"{'-':>10}" for v in values)
        ratio = f"{values[0] / values[1]:>9.0f}×" if len(values) == 2 and values[0] and values[1] else ""
        print(f"{label:38}{cells}{ratio}")


if __name__ == "__main__":
    main()
