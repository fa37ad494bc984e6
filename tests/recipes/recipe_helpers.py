"""Running a recipe's example end to end with a scripted proposer: each step is a short Python
program that edits the candidate checkout (a real improvement, a regression, a guard failure, a
cheat), and the real loop judges it."""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess

import tomlkit
from conftest import run_cli, sh, snapshot

from ratchet import Ledger
from ratchet.commands.demo import prepare_demo
from ratchet.experiment import Experiment

# Given to every step: edit(path, old, new) replaces text exactly once (or fails loudly), and
# hypothesis(text) is what the ledger records.
_PREAMBLE = '''\
import os, pathlib, sys

def edit(path, old, new):
    file = pathlib.Path(path)
    text = file.read_text()
    if text.count(old) != 1:
        sys.exit(f"step: {old!r} is in {path} {text.count(old)} times, not once")
    file.write_text(text.replace(old, new))

def hypothesis(text):
    pathlib.Path(os.environ["RATCHET_HYPOTHESIS_FILE"]).write_text(text)

'''

_DISPATCH = '''\
import os, pathlib, runpy, sys
step = pathlib.Path(sys.argv[1]) / f"{os.environ['RATCHET_EXPERIMENT']}.py"
runpy.run_path(str(step), run_name="__main__")
'''


@dataclass
class RecipeRun:
    repo: Path
    result: CompletedProcess[str]
    experiments: list[Experiment]

    @property
    def verdicts(self) -> list[str]:
        return [str(e.verdict) for e in self.experiments]


def prepare(tmp_path: Path, name: str) -> Path:
    """The recipe's example as a fresh git repository (what `ratchet demo --example` makes)."""
    return prepare_demo(tmp_path / name, name)


def scripted_run(tmp_path: Path, name: str, steps: list[str], *, config: dict | None = None, timeout: float = 900) -> RecipeRun:
    """Run the example with ``steps`` as its proposer (experiment i runs steps[i - 1]); the
    user's checkout must come out exactly as it went in. ``config``: keys to set, by section."""
    repo = prepare(tmp_path, name)
    folder = tmp_path / f"{name}-steps"
    folder.mkdir()
    for number, code in enumerate(steps, start=1):
        (folder / f"{number}.py").write_text(_PREAMBLE + textwrap.dedent(code))
    (folder / "dispatch.py").write_text(_DISPATCH)
    document = tomlkit.parse((repo / "ratchet.toml").read_text())
    proposer = tomlkit.table()
    proposer.add("kind", "command")
    proposer.add("command", f"{sys.executable} {folder / 'dispatch.py'} {folder}")
    document["proposer"] = proposer
    document.setdefault("budget", tomlkit.table())["iterations"] = len(steps)  # type: ignore[index]
    for section, values in (config or {}).items():
        table = document.setdefault(section, tomlkit.table())
        for key, value in values.items():
            table[key] = value  # type: ignore[index]
    (repo / "ratchet.toml").write_text(tomlkit.dumps(document))
    sh(repo, "git", "commit", "-qam", "scripted proposer for the test")
    before = snapshot(repo)
    result = run_cli(repo, "run", timeout=timeout)
    assert snapshot(repo) == before, "the run touched the user's checkout"
    ledger = Ledger(repo / ".ratchet" / "ledger.sqlite")
    try:
        experiments = ledger.experiments(ledger.runs()[0].name)
    finally:
        ledger.close()
    return RecipeRun(repo, result, experiments)


def init_recipe(folder: Path, name: str) -> list[str]:
    """`ratchet init --recipe NAME` in a new git repository at ``folder``: the files it wrote."""
    folder.mkdir(parents=True, exist_ok=True)
    sh(folder, "git", "init", "-q")
    result = run_cli(folder, "init", "--recipe", name)
    assert result.returncode == 0, result.stdout + result.stderr
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts)
