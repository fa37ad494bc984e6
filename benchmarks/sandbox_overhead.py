"""Sandbox overhead per measurement: `/bin/true` as the metric command, bwrap on against off.

`/bin/true` has no shell syntax, so containment execs it with no shell (in the sandbox: bwrap, the
wrapper that names leftovers, the program); `+shell` times a line that needs /bin/sh -c.

Ways of running one measurement command, timed end to end (spawn, wait, logs, cleanup):

- plain:      measure.run_command, as a trusted step runs (no limits, no allowlist, no pipes);
- contained:  the sandbox off, everything else on (limits, process cgroup, output pump,
              environment allowlist, leftover scan);
- sandboxed:  bubblewrap around it as well (read-only root, private /tmp, new PID, network,
              IPC and UTS namespaces);
- +binds:     sandboxed, with what the private /tmp hides bound back in: ratchet's interpreter,
              a virtualenv under /tmp first on PATH, a folder under /tmp the command names.

Blocks of the ways alternate so that drifts in the machine's load hit all of them alike.

    python benchmarks/sandbox_overhead.py [--runs 200] [--blocks 5] [--processes 512]

(--processes adds a way: contained, with the process limit's pids cgroup.)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from ratchet.config import SandboxSection
from ratchet.measure.containment import Containment
from ratchet.measure.limits import Limits, cgroup_support
from ratchet.measure.runner import run_command
from ratchet.measure.sandbox import Sandbox, interpreter_paths, probe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200, help="measurements per block")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--processes", type=int, default=None, help="also time [sandbox] processes = N (a pids cgroup)")
    args = parser.parse_args()
    found = probe()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        subprocess.run(["git", "init", "-q", str(root / "repo")], check=True)
        workdir = root / "repo"
        limits = Limits.from_config(SandboxSection())
        ways = {
            "plain": lambda prefix: run_command("true", cwd=workdir, timeout=30, log_prefix=prefix),
            "contained": Containment(None, limits).run,
        }
        command = {name: "/bin/true" for name in ways}
        env: dict[str, dict[str, str] | None] = {name: None for name in ways}
        if found.usable:
            assert found.bwrap is not None
            ways["sandboxed"] = Containment(Sandbox(found.bwrap, repository=(workdir,)), limits).run
            command["sandboxed"], env["sandboxed"] = "/bin/true", None
            ways["+shell"] = Containment(Sandbox(found.bwrap, repository=(workdir,)), limits).run
            command["+shell"], env["+shell"] = "/bin/true && /bin/true", None
            venv, tools = root / "venv", root / "tools"
            (venv / "bin").mkdir(parents=True)
            (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
            tools.mkdir()
            (tools / "data").write_text("1\n")
            box = Sandbox(found.bwrap, repository=(workdir,), readable=interpreter_paths())
            ways["+binds"] = Containment(box, limits).run
            command["+binds"] = f"/bin/true {tools}/data"
            env["+binds"] = {"PATH": f"{venv}/bin:/usr/bin:/bin"}
        else:
            print(f"no sandbox here ({found.reason}): timing the other two only")
        if args.processes:
            ways["+processes"] = Containment(None, Limits(processes=args.processes)).run
            command["+processes"], env["+processes"] = "/bin/true", None
        times: dict[str, list[float]] = {name: [] for name in ways}
        for block in range(args.blocks):
            for name, way in ways.items():
                for i in range(args.runs):
                    prefix = root / "logs" / name / str(i)
                    started = time.perf_counter()
                    if name == "plain":
                        result = way(prefix)
                    else:
                        result = way(command[name], cwd=workdir, timeout=30, log_prefix=prefix, env=env[name])
                    times[name].append(time.perf_counter() - started)
                    assert result.ok, (name, result.read("stderr"))
    print(f"{platform.node()}: {platform.processor() or platform.machine()}, Python {platform.python_version()}, {found.version or 'no bwrap'}")
    one, five, _ = os.getloadavg()
    print(f"process limit: {cgroup_support() or 'none'}; {args.blocks} blocks x {args.runs} runs of `/bin/true`; "
          f"load average {one:.2f} (1 min), {five:.2f} (5 min)\n")
    print(f"{'way':<10} {'median':>9} {'p10':>9} {'p90':>9}")
    for name, values in times.items():
        q = statistics.quantiles(values, n=10)
        print(f"{name:<10} {statistics.median(values) * 1000:>7.2f}ms {q[0] * 1000:>7.2f}ms {q[-1] * 1000:>7.2f}ms")
    if "sandboxed" in times:
        extra = statistics.median(times["sandboxed"]) - statistics.median(times["contained"])
        print(f"\nbwrap adds {extra * 1000:.2f} ms per measurement (median sandboxed - median contained)")
        extra = statistics.median(times["+shell"]) - statistics.median(times["sandboxed"])
        print(f"a line that needs a shell adds {extra * 1000:.2f} ms in the sandbox (median +shell - median sandboxed)")
        extra = statistics.median(times["+binds"]) - statistics.median(times["sandboxed"])
        print(f"binding back what /tmp hides adds {extra * 1000:.2f} ms (median +binds - median sandboxed)")
    extra = statistics.median(times["contained"]) - statistics.median(times["plain"])
    print(f"containment without bwrap adds {extra * 1000:.2f} ms (median contained - median plain)")


if __name__ == "__main__":
    main()
