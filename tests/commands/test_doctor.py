"""`ratchet doctor`: each finding with a fix, the metric and each guard run on HEAD, the sandbox
named when it is the cause."""

from __future__ import annotations

from conftest import run_cli, sandbox_config, sh

from ratchet.measure.sandbox import probe


def test_doctor_on_a_good_setup(number_repo):
    repo = number_repo(sandbox_config("auto"))
    result = run_cli(repo, "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for line in ("ok   git: git version", "config: ratchet.toml", "ok   scope: 1 file: value.txt", "ok   harness: 1 file committed: bench.py"):
        assert line in out, out
    assert "ok   metric: 10 then 10 on HEAD" in out
    if probe().usable:
        assert "ok   sandbox: bubblewrap" in out
    assert sh(repo, "git", "worktree", "list").count("\n") == 1  # its checkout is gone
    assert sh(repo, "git", "status", "--porcelain") == ""


def test_doctor_names_each_problem_with_a_fix(number_repo):
    config = sandbox_config("auto").replace('mutable = ["value.txt", "src/**"]', 'mutable = ["nothing/**"]')
    repo = number_repo(config)
    (repo / "bench.py").write_text("print('changed')\n")
    result = run_cli(repo, "doctor")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "fail scope: ['nothing/**'] matches no file" in result.stdout
    assert "fail harness: not committed: bench.py" in result.stdout
    assert result.stdout.count("fix: ") >= 2
    assert "2 checks failed" in result.stderr


def test_doctor_reports_a_metric_that_does_not_parse(number_repo):
    repo = number_repo(sandbox_config("auto").replace(r"regex = 'metric: (\S+)'", r"regex = 'loss: (\S+)'"))
    result = run_cli(repo, "doctor")
    assert result.returncode == 1
    assert "fail metric:" in result.stdout and "matched nothing" in result.stdout
    assert "fix: run the [metric] command by hand" in result.stdout


def test_doctor_runs_each_guard(number_repo):
    config = sandbox_config("auto") + '\n[[guards]]\nname = "typo"\ncommand = "pytset -q"\n[[guards]]\nname = "fine"\ncommand = "true"\n'
    result = run_cli(number_repo(config), "doctor")
    assert result.returncode == 1
    assert "fail guard typo: fails on HEAD" in result.stdout and "exit 127" in result.stdout
    assert "pytset: not found" in result.stdout  # the output's tail
    assert "ok   guard fine: passes on HEAD" in result.stdout
    assert "1 check failed" in result.stderr


def test_doctor_says_the_sandbox_hides_a_path(number_repo, tmp_path, sandbox_required):
    data = tmp_path / "data"
    data.mkdir()
    (data / "value").write_text("10\n")
    bench = f"import pathlib\nprint('metric:', float(pathlib.Path({str(data / 'value')!r}).read_text()))\n"
    config = sandbox_config("auto") + '\n[[guards]]\nname = "reads"\ncommand = "{python} bench.py"\n'
    repo = number_repo(config, files={"bench.py": bench})
    result = run_cli(repo, "doctor")
    assert result.returncode == 1
    out = result.stdout
    assert "fail metric: on HEAD" in out and "works outside the sandbox (10) and fails inside it" in out, out
    assert "fail guard reads: on HEAD" in out and "works outside the sandbox and fails inside it" in out, out
    assert out.count(f'the sandbox hides a path the command reads: {data / "value"}') == 2
    assert out.count(f'add "{data}" to [sandbox] readable') == 2
    assert "by hand" not in out and "2 checks failed" in result.stderr
    (repo / "ratchet.toml").write_text((repo / "ratchet.toml").read_text().replace('mode = "auto"', f'mode = "auto"\nreadable = ["{data}"]'))
    result = run_cli(repo, "doctor")
    assert result.returncode == 0 and "ok   metric: 10 then 10" in result.stdout and "ok   guard reads" in result.stdout, result.stdout


def test_doctor_fails_a_guard_that_writes_into_the_harness(number_repo):
    config = sandbox_config("auto") + '\n[[guards]]\nname = "writes"\ncommand = "echo x > bench.log"\n'
    config = config.replace('harness = ["bench.py"]', 'harness = ["bench.*"]')
    result = run_cli(number_repo(config), "doctor")
    assert result.returncode == 1
    assert "fail harness: the metric or a guard writes bench.log into the harness" in result.stdout
