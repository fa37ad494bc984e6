"""ratchet installed in a virtualenv under /tmp, which the sandbox hides behind a /tmp of its
own: the interpreter, PATH and what a command names must be put back in, read-only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ratchet.measure.sandbox import hidden

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_from_a_venv_under_tmp(tmp_path, sandbox_required):
    assert hidden(tmp_path)
    venv = tmp_path / "v"
    # Its own copy of ratchet (built from this checkout), the dependencies from this interpreter.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", str(ROOT)], capture_output=True, text=True
    )
    assert install.returncode == 0, install.stderr
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import ratchet; print(ratchet.__file__)"], capture_output=True, text=True)
    assert where.stdout.startswith(str(venv)), where
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "200"}
    result = subprocess.run(
        [str(venv / "bin" / "ratchet"), "demo", "--dir", str(tmp_path / "demo"), "-n", "1"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "#0   baseline  val_loss=" in result.stdout and "#1   keep" in result.stdout, result.stdout
    assert "no sandbox" not in result.stdout + result.stderr  # bwrap works here: it ran sandboxed
