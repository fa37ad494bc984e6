"""The command line, as a user runs it: real subprocesses in real repositories."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import NUMBER_CONFIG, make_repo, run_cli, sh, snapshot

LOG_FIELDS = {"id", "verdict", "metric", "commit", "hypothesis"}


def test_demo_must_show(tmp_path: Path):
    """`ratchet demo --dir D --iterations 12`: a keep on ratchet/*, D's branch unchanged, a full log."""
    target = tmp_path / "D"
    result = run_cli(tmp_path, "demo", "--dir", str(target), "--iterations", "12", timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Results:" in result.stdout
    assert sh(target, "git", "symbolic-ref", "--short", "HEAD").strip() == "main"
    assert sh(target, "git", "status", "--porcelain") == ""
    assert sh(target, "git", "rev-list", "--count", "main").strip() == "1"
    branches = sh(target, "git", "branch", "--list", "ratchet/*").split()
    assert "ratchet/demo" in branches

    log = run_cli(target, "log", "--json")
    assert log.returncode == 0
    entries = json.loads(log.stdout)
    assert [e["id"] for e in entries] == list(range(13))
    assert all(LOG_FIELDS <= set(e) for e in entries)
    keeps = [e for e in entries if e["verdict"] == "keep"]
    assert keeps, "the demo should keep at least one experiment"
    tip = sh(target, "git", "rev-parse", "ratchet/demo").strip()
    assert keeps[-1]["commit"] == tip
    for keep in keeps:
        assert sh(target, "git", "merge-base", "--is-ancestor", keep["commit"], "ratchet/demo") == ""

    again = run_cli(tmp_path, "demo", "--dir", str(target))
    assert again.returncode == 1 and "already exists" in again.stderr


def test_init_then_run_status_show_export(tmp_path: Path):
    repo = make_repo(tmp_path / "r", {"value.txt": "10\n", "bench.py": "print('metric:', float(open('value.txt').read()))\n"})
    result = run_cli(repo, "init")
    assert result.returncode == 0, result.stderr
    assert (repo / "ratchet.toml").exists() and (repo / "program.md").exists()
    assert "/.ratchet/" in (repo / ".git" / "info" / "exclude").read_text()
    again = run_cli(repo, "init")
    assert again.returncode == 1 and "--force" in again.stderr

    config = NUMBER_CONFIG.replace("{python}", sys.executable).replace(
        'command = "true"', f"command = \"{sys.executable} -c \\\"open('value.txt','w').write('4')\\\"; echo halve it\""
    )
    (repo / "ratchet.toml").write_text(config)
    before = snapshot(repo)
    run = run_cli(repo, "run", "--iterations", "2")
    assert run.returncode == 0, run.stderr
    assert "Stopped: iteration budget spent (2/2)" in run.stdout
    assert snapshot(repo) == before

    status = json.loads(run_cli(repo, "status", "--json").stdout)
    assert status["run"] == "t" and status["baseline"] == 10.0 and status["champion"] == 4.0
    assert status["counts"] == {"baseline": 1, "keep": 1, "invalid": 1}  # the second proposal changes nothing
    assert status["active"] is False
    plain = run_cli(repo, "status")
    assert "champion 4" in plain.stdout and "-60.00%" in plain.stdout

    show = run_cli(repo, "show", "1")
    assert show.returncode == 0
    assert "halve it" in show.stdout and "-10" in show.stdout and "+4" in show.stdout
    shown = json.loads(run_cli(repo, "show", "2", "--json").stdout)
    assert shown["verdict"] == "invalid" and "changes nothing" in shown["reason"]
    missing = run_cli(repo, "show", "99")
    assert missing.returncode == 1 and "no experiment 99" in missing.stderr

    export = run_cli(repo, "export", "-o", "out.tsv")
    assert export.returncode == 0
    rows = list(csv.reader(io.StringIO((repo / "out.tsv").read_text()), delimiter="\t"))
    assert rows[0][:4] == ["id", "verdict", "number", "commit"]
    assert [row[1] for row in rows[1:]] == ["baseline", "keep", "invalid"]
    assert rows[2][3] == status["champion_commit"]
    autoresearch = run_cli(repo, "export", "--format", "autoresearch", "-o", "-").stdout.splitlines()
    assert [line.split("\t")[:2] + line.split("\t")[3:] for line in autoresearch] == [
        ["commit", "val_bpb", "status", "description"],
        [status["base_commit"][:7], "10.000000", "keep", "baseline"],
        [status["champion_commit"][:7], "4.000000", "keep", "halve it"],
        ["", "0.000000", "crash", "halve it (invalid)"],
    ]

    table = run_cli(repo, "log")
    assert "halve it" in table.stdout and "baseline" in table.stdout


def test_commands_without_a_run(tmp_path: Path):
    repo = make_repo(tmp_path / "r", {"a.txt": "1\n"})
    for command in (["status"], ["log"], ["show", "0"], ["export"]):
        result = run_cli(repo, *command)
        assert result.returncode == 1
        assert "no run has started here yet" in result.stderr
        assert "Traceback" not in result.stderr


def _run_until_measuring(number_repo, sleep: float, config: str) -> tuple[Path, subprocess.Popen[str]]:
    """Start `ratchet run` whose first candidate's measurement sleeps; return once it is measuring."""
    bench = f"""\
        import pathlib, time
        if pathlib.Path("value.txt").read_text().strip() != "10":
            pathlib.Path("measuring").write_text("x")
            time.sleep({sleep})
        print("metric:", float(pathlib.Path("value.txt").read_text()))
    """
    config = config.replace('command = "true"', f"command = \"{sys.executable} -c \\\"open('value.txt','w').write('5')\\\"\"")
    repo = number_repo(config, files={"bench.py": bench})
    # Written in the candidate's checkout: the only place a sandboxed measurement may write.
    marker = repo / ".ratchet" / "worktrees" / "t" / "measuring"
    proc = subprocess.Popen([sys.executable, "-m", "ratchet", "run"], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists()
    return repo, proc


def test_ctrl_c_finishes_experiment_in_flight(number_repo):
    repo, proc = _run_until_measuring(number_repo, 1.5, NUMBER_CONFIG.replace("iterations = 5", "iterations = 100"))
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err  # interrupted: not "the budget ended"
    assert "Stopping after the experiment in flight" in out
    assert "Stopped: interrupted" in out
    entries = json.loads(run_cli(repo, "log", "--json").stdout)
    assert [e["verdict"] for e in entries] == ["baseline", "keep"]  # finished and recorded, then stopped


def test_second_ctrl_c_abandons_experiment_in_flight(number_repo):
    repo, proc = _run_until_measuring(number_repo, 120, NUMBER_CONFIG.replace('timeout = "20s"', 'timeout = "5m"'))
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Abandoning the experiment in flight" in out
    entries = json.loads(run_cli(repo, "log", "--json").stdout)
    assert [e["verdict"] for e in entries] == ["baseline", "abandoned"]
    assert sh(repo / ".ratchet" / "worktrees" / "t", "git", "status", "--porcelain") == ""


def test_help_of_every_command_reads_as_written():
    """No Rich markup eating "[run]", no flag labelled as taking a value, no "{experiment_id}"."""
    import typer.main
    from typer.testing import CliRunner

    from ratchet.cli import app

    runner = CliRunner()
    commands = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert {"run", "show", "try", "export", "mcp"} <= set(commands)
    for command in [None, *commands]:
        result = runner.invoke(app, [command, "--help"] if command else ["--help"], prog_name="ratchet", env={"COLUMNS": "200"})
        assert result.exit_code == 0, (command, result.output)
        assert "<bool>" not in result.output and "{" not in result.output.splitlines()[0], (command, result.output)
        assert "{experiment_id}" not in result.output, command
    run_help = run_cli(Path.cwd(), "run", "--help").stdout
    assert "Run name (overrides [run] name)." in run_help
    assert "Usage: python -m ratchet show [OPTIONS] EXPERIMENT\n" in run_cli(Path.cwd(), "show", "--help").stdout


def test_version():
    from importlib.metadata import version

    result = run_cli(Path.cwd(), "--version")
    assert result.returncode == 0 and result.stdout == f"ratchet {version('ratchet')}\n"


def test_try_refuses_a_garbage_patch_without_a_ledger_row(number_repo, tmp_path: Path):
    repo = number_repo()
    garbage = tmp_path / "garbage.diff"
    garbage.write_text("not a diff at all\n")
    result = run_cli(repo, "try", "-m", "garbage", "--patch", str(garbage))
    assert result.returncode == 2, result.stderr
    head = sh(repo, "git", "rev-parse", "--short=7", "HEAD").strip()
    assert result.stderr == f'ratchet: error: the patch does not apply to the champion ({head}): No valid patches in input (allow with "--allow-empty")\n'
    assert "no run has started here yet" in run_cli(repo, "log").stderr  # not even a baseline


def test_the_command_line_loads_only_what_a_command_uses():
    """`import ratchet.cli` (what `ratchet --help`, `status` and `log` start with) loads neither
    numpy, scipy nor optuna, nor the loop, nor the config's models, nor Rich's syntax highlighter."""
    code = (
        "import ratchet.cli, sys; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'numpy', 'scipy', 'optuna', 'ratchet', 'pydantic', 'rich'}))"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.replace("'", '"'))
    assert "ratchet.cli" in loaded
    assert not [m for m in loaded if m.split(".")[0] in {"numpy", "scipy", "optuna"}], loaded
    assert not [m for m in loaded if m.startswith(("ratchet.loop", "ratchet.verdict", "ratchet.config.", "rich.syntax"))], loaded
    # `from ratchet import Loop` still works: the package loads its names on first use.
    code = "import ratchet; from ratchet import Loop, __version__; print(Loop.__module__, set(ratchet.__all__) <= set(dir(ratchet)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("ratchet.loop") and out.split()[-1] == "True"


def test_log_reads_a_part_of_the_run_and_streams_json(tmp_path: Path):
    from ratchet.experiment import Experiment, Verdict
    from ratchet.ledger import Ledger, RunInfo

    repo = make_repo(tmp_path / "r", {"value.txt": "10\n"}, NUMBER_CONFIG.replace("{python}", sys.executable))
    base = sh(repo, "git", "rev-parse", "HEAD").strip()
    ledger = Ledger(repo / ".ratchet" / "ledger.sqlite")
    ledger.create_run(RunInfo("t", 1.0, base, "ratchet/t", "number", "minimize", {}))
    ledger.begin(Experiment("t", 0, base, "baseline", 1.0, "done", Verdict.BASELINE, "", "baseline", 10.0))
    for i in range(1, 6):
        ledger.begin(Experiment("t", i, base, "command", 1.0 + i, "done", Verdict.DISCARD, "no", f"try [{i}]", 10.0 + i))
    ledger.close()

    whole = run_cli(repo, "log", "--json")
    assert whole.returncode == 0, whole.stderr
    assert [e["id"] for e in json.loads(whole.stdout)] == [0, 1, 2, 3, 4, 5]
    assert len(whole.stdout.splitlines()) == 6 + 2  # "[", one experiment a line, "]"
    assert "\x1b[" not in whole.stdout  # no colours in machine output
    assert [e["id"] for e in json.loads(run_cli(repo, "log", "--json", "--last", "2").stdout)] == [4, 5]
    assert [e["id"] for e in json.loads(run_cli(repo, "log", "--json", "--since", "3").stdout)] == [4, 5]
    assert json.loads(run_cli(repo, "log", "--json", "--since", "5").stdout) == []
    assert json.loads(run_cli(repo, "log", "--json", "--since", "2", "--last", "1").stdout)[0]["hypothesis"] == "try [5]"
    # The table of a part still compares each row with the baseline it lacks.
    table = run_cli(repo, "log", "--last", "1")
    assert table.returncode == 0 and "+50.00%" in table.stdout and "try [5]" in table.stdout and "try [4]" not in table.stdout
    bad = run_cli(repo, "log", "--last", "-1")
    assert bad.returncode == 2
    # `status` and `log` print with neither the live display nor its Rich widgets loaded.
    code = (
        "import sys; from ratchet.cli import main\n"
        "for argv in (['ratchet', 'status'], ['ratchet', 'log']):\n"
        "    sys.argv = argv\n"
        "    try: main()\n"
        "    except SystemExit as exit: assert not exit.code, exit\n"
        "print(sorted(m for m in sys.modules if m.startswith(('ratchet.report.terminal', 'rich.live', 'rich.panel'))))"
    )
    printed = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True).stdout
    assert "number (minimize): champion 10" in printed and printed.splitlines()[-1] == "[]", printed
