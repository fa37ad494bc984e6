"""ratchet.toml: parsing, defaults, and one-line errors for every kind of mistake (config/loader.py)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from conftest import make_repo, run_cli

from ratchet.config import ConfigError, Effect, ParamSpec, parse_config

MINIMAL = """
[scope]
mutable = ["src/**"]
[metric]
command = "python3 bench.py"
direction = "minimize"
[proposer]
kind = "command"
command = "true"
"""


def test_minimal_config_defaults():
    config = parse_config(MINIMAL)
    assert config.run.name == "main"
    assert config.metric.parser_kind == "last_number"
    assert config.verdict.min_effect == Effect(value=0.0, relative=False)
    assert config.budget.experiment_timeout == 600
    assert config.metric_timeout() == 600
    assert config.budget.max_consecutive_crashes == 5


def test_effects_and_param_specs():
    config = parse_config(MINIMAL + '[verdict]\nmin_effect = "2.5%"\n')
    assert config.verdict.min_effect.amount(200.0) == 5.0
    assert parse_config(MINIMAL + "[verdict]\nmin_effect = 0.1\n").verdict.min_effect.amount(200.0) == 0.1
    assert ParamSpec.parse("log 1e-4..1e-1") == ParamSpec(kind="float", low=1e-4, high=0.1, log=True)
    assert ParamSpec.parse("int 1..8").kind == "int"
    assert ParamSpec.parse("0..1 step 0.1").step == 0.1
    assert ParamSpec.parse("choice relu, gelu, 3").choices == ("relu", "gelu", 3)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.replace('direction = "minimize"', 'direction = "down"'), "metric.direction: input should be 'minimize' or 'maximize'"),
        (lambda t: t.replace('command = "python3 bench.py"\n', ""), "metric: needs a command (or both run and score"),
        (lambda t: t + "[budget]\nwall = \"5 minutes\"\n", "budget.wall: expected a duration"),
        (lambda t: t + "[budget]\niterations = -3\n", "budget.iterations: input should be greater than or equal to 0"),
        (lambda t: t + "[budget]\niteration = 3\n", "budget.iteration is not a known setting (did you mean iterations?)"),
        (lambda t: t.replace('kind = "command"', 'kind = "magic"'), "proposer: unknown kind 'magic'"),
        (lambda t: t.replace('mutable = ["src/**"]', 'mutable = ["../x"]'), "scope.mutable: '../x' must be relative"),
        (lambda t: t.replace('mutable = ["src/**"]', "mutable = []"), "scope.mutable: list should have at least 1 item"),
        (lambda t: t + "[verdict]\nmin_effect = \"lots\"\n", "verdict.min_effect: expected a number or a percentage"),
        (lambda t: t.replace("[metric]", "[metric]\nregex = 'no group'"), "metric.regex: the regex needs a group"),
        (lambda t: t.replace("[metric]", "[metric]\nregex = '(x'"), "metric.regex: invalid regular expression"),
        (lambda t: t.replace("[metric]", "[metric]\nregex = '(x)'\njson = \"k\""), "metric: choose one of regex, json and last_number"),
        (lambda t: t + '[[guards]]\nname = "a"\n', "guards[0].command: is required"),
        (lambda t: t.replace("[scope]", '[run]\nname = "bad name"\n[scope]'), "run.name: 'bad name' is not a usable run name"),
        (lambda t: t.replace('command = "true"', 'command = "true"\ntimeout = "soon"'), "proposer.timeout: expected a duration"),
        (lambda t: t + "[proposer.x", "invalid TOML"),
        (lambda t: t.replace('kind = "command"\ncommand = "true"', 'kind = "optuna"\n[[proposer.params]]\nfile = "p.toml"\nkey = "lr"\nrange = "1..0"'),
         "proposer.params[0].range: '1..0': the low bound must be below the high bound"),
    ],
)
def test_bad_configs_give_one_line(change, message):
    with pytest.raises(ConfigError) as info:
        parse_config(change(MINIMAL), "ratchet.toml")
    text = str(info.value)
    assert text.startswith("ratchet.toml: ")
    assert message in text
    assert "\n" not in text


def test_a_typo_is_named_first_and_every_problem_is_listed():
    # `mutabel` leaves `mutable` missing: the typo explains it, so it comes first, with the fix.
    text = MINIMAL.replace("mutable =", "mutabel =").replace('"minimize"', '"down"') + "[budget]\nwal = 5\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, "ratchet.toml")
    problems = str(info.value).removeprefix("ratchet.toml: ").split("; ")
    assert problems[0] == "scope.mutabel is not a known setting (did you mean mutable?)"
    assert "budget.wal is not a known setting (did you mean wall?)" in problems
    assert "scope.mutable: is required" in problems
    assert any(p.startswith("metric.direction: input should be") for p in problems)
    assert len(problems) == 4 and "more problem" not in str(info.value)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.replace("[scope]", "[scpe]"), "scpe is not a known setting (did you mean scope?)"),
        (lambda t: t.replace('command = "true"', 'comand = "true"'), "proposer.comand is not a known setting (did you mean command?)"),
        (lambda t: t.replace("[metric]", '[metric]\njsn = "loss"'), "metric.jsn is not a known setting (did you mean json?)"),
        (lambda t: t + '[[guards]]\nname = "a"\ncommand = "true"\nmax_regresion = 1\n', "guards[0].max_regresion is not a known setting (did you mean max_regression?)"),
        (lambda t: t.replace('kind = "command"\ncommand = "true"', 'kind = "llm"\nmodel = "m"\n[proposer.prices.m]\ninput = 1\noutpt = 2'),
         "proposer.prices.m.outpt is not a known setting (did you mean output?)"),
        (lambda t: t + "[budget]\nzzz = 1\n", "budget.zzz is not a known setting"),
    ],
)
def test_unknown_keys_suggest_the_nearest_setting(change, message):
    with pytest.raises(ConfigError) as info:
        parse_config(change(MINIMAL), "ratchet.toml")
    assert str(info.value).startswith(f"ratchet.toml: {message}")
    if "did you mean" not in message:
        assert "did you mean" not in str(info.value)


def test_bad_config_from_cli_exit_2_without_traceback(tmp_path: Path):
    repo = make_repo(tmp_path / "r", {"src/a.py": "x = 1\n"}, MINIMAL.replace('"minimize"', '"sideways"'))
    result = run_cli(repo, "run")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "ratchet.toml: metric.direction:" in lines[0]


def test_missing_config_and_not_a_repository(tmp_path: Path):
    repo = make_repo(tmp_path / "r", {"a.txt": "1\n"})
    result = run_cli(repo, "run")
    assert result.returncode == 2 and "not found; run `ratchet init`" in result.stderr
    outside = tmp_path / "plain"
    outside.mkdir()
    result = run_cli(outside, "run")
    assert result.returncode == 1 and "not inside a git repository" in result.stderr
    assert "Traceback" not in result.stderr


def test_init_template_parses_and_explains_every_field(tmp_path: Path):
    text = (resources.files("ratchet") / "templates" / "ratchet.toml").read_text().replace("{run_name}", "x")
    config = parse_config(text)
    assert config.proposer.kind == "optuna"
    for field in ("mutable", "harness", "command", "direction", "regex", "json", "last_number", "timeout", "min_effect",
                  "iterations", "wall", "experiment_timeout", "target", "max_consecutive_crashes", "max_regression", "kind"):
        assert f"{field}" in text


def test_the_package_re_exports_every_name_the_code_imports():
    # config/ is a package now: `from ratchet.config import X` must keep working for each X in use.
    import ast

    import ratchet.config

    used = set()
    root = Path(__file__).resolve().parents[2]
    for folder in ("src", "tests", "benchmarks"):
        for path in (root / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module == "ratchet.config":
                    used |= {alias.name for alias in node.names}
    assert "load_config" in used and "Config" in used
    assert sorted(used - set(ratchet.config.__all__)) == []
    assert all(hasattr(ratchet.config, name) for name in ratchet.config.__all__)
