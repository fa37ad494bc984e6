"""Build kernel.c with the benchmark and run it: the metric (default) or the correctness guard.

    python3 bench/run.py            check C = A * B at SIZE against the reference, then time it
                                    and print "gflops: <number>"; a wrong result exits 1, untimed
    python3 bench/run.py --check    check the sizes in CHECK_SIZES (odd ones, tails of every tile
                                    and unroll width); exit 1 on the first wrong result

The build goes to build/ inside the checkout (git-ignored: not part of any candidate, removed by
ratchet after each measurement) and is redone on every call, so a result always belongs to the
source as it is. bench/bench.c, the timing and the reference, is compiled with fixed flags;
only kernel.c gets the candidate's flags from flags.toml, and only the flags this script knows
how to spell: a candidate chooses values, never raw compiler arguments (an "-o bench/..." there
would let it overwrite the harness, a "-D" would let it redefine the timer).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
SIZE = 256  # 3 matrices of 512 KiB: past L1 and L2 on most machines, a few ms per multiply
CHECK_SIZES = [1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 100, 127, 129]
HARNESS_FLAGS = ["-O2", "-std=c11"]


def fail(message: str) -> NoReturn:
    print(f"bench: {message}", file=sys.stderr)
    raise SystemExit(1)


def kernel_flags() -> list[str]:
    try:
        settings = tomllib.loads((ROOT / "flags.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        fail(f"flags.toml: {exc}")
    opt_level = settings.get("opt_level", 2)
    if opt_level not in (0, 1, 2, 3):
        fail(f"flags.toml: opt_level must be 0, 1, 2 or 3, not {opt_level!r}")
    flags = [f"-O{opt_level}", "-std=c11"]
    for key, flag in (("native", "-march=native"), ("unroll_loops", "-funroll-loops")):
        value = settings.get(key, False)
        if not isinstance(value, bool):
            fail(f"flags.toml: {key} must be true or false, not {value!r}")
        if value:
            flags.append(flag)
    unknown = sorted(set(settings) - {"opt_level", "native", "unroll_loops"})
    if unknown:
        fail(f"flags.toml: unknown setting {', '.join(unknown)} (opt_level, native, unroll_loops)")
    return flags


def build() -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        fail("no C compiler (cc, gcc or clang) on PATH; on Debian: apt install gcc")
    BUILD.mkdir(exist_ok=True)
    binary = BUILD / "bench"
    steps = [  # the benchmark with its own flags, then the kernel with the candidate's, linked to it
        [compiler, *HARNESS_FLAGS, "-c", str(ROOT / "bench" / "bench.c"), "-o", str(BUILD / "bench.o")],
        [compiler, *kernel_flags(), str(ROOT / "kernel.c"), str(BUILD / "bench.o"), "-lm", "-o", str(binary)],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            fail(f"the build failed: {' '.join(step)}")
    return binary


def main() -> None:
    binary = build()
    command = [str(binary), "check", *map(str, CHECK_SIZES)] if "--check" in sys.argv[1:] else [str(binary), "time", str(SIZE)]
    done = subprocess.run(command, cwd=ROOT)
    if done.returncode != 0:
        fail("the kernel's result is wrong (see above)" if done.returncode == 1 else f"{command[0]} exited {done.returncode}")


if __name__ == "__main__":
    main()
