"""Fuzzing the two places where outside text enters ratchet: the config file and the metric output.

No input may end in anything but the one-line error of each (ConfigError, MetricParseError):
never a traceback.
"""

from __future__ import annotations

import json
import math
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratchet.config import ConfigError, Parser, parse_config
from ratchet.measure.parse import MetricParseError, parse_number

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------- config

SECTIONS = {
    "run": ["name", "brief"],
    "scope": ["mutable", "harness"],
    "metric": ["name", "command", "run", "score", "regex", "json", "last_number", "stream", "direction", "timeout"],
    "verdict": ["mode", "min_effect", "alpha", "max_pairs", "repeats", "scale", "deterministic", "calibrate_pairs", "confirm_pairs", "seed"],
    "budget": ["iterations", "wall", "experiment_timeout", "target", "max_consecutive_crashes", "tokens", "cost_usd"],
    "proposer": ["kind", "command", "timeout", "network", "env", "writable", "params", "markers", "seed", "model", "preset", "provider"],
    "sandbox": ["mode", "network", "env", "writable", "memory", "cpu_time", "processes", "file_size", "output"],
    "holdout": ["command", "direction", "regex", "max_regression", "action"],
}
GUARD_KEYS = ["name", "command", "timeout", "min", "max", "max_regression", "direction", "regex", "last_number"]

# Strings that mean something to some validator, and some that mean nothing.
MEANINGFUL = [
    "", " ", "main", "a b", "../x", "/abs", "**", "src/**", "5m", "90s", "0s", "-1s", "1e400s", "2h", "250ms", "soon",
    "1%", "-1%", "nan%", "inf", "nan", "1MB", "0KB", "2GiB", "9999999TB", "1.5k", "x", "minimize", "maximize",
    "optuna", "command", "llm", "agent", "hybrid", "single", "repeat", "sequential", "auto", "required", "off",
    "stdout", "stderr", "both", "([0-9.]+)", "(", "no group", "a.b.c", "CUDA_*", "*", "1 2", "log 1e-4..1e-1",
    "int 1..8", "choice a, b", "1..0", "claude", "generic", "openai",
]

scalars = st.one_of(
    st.sampled_from(MEANINGFUL),
    st.text(max_size=12),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-(10**400), max_value=10**400),  # TOML integers have no bound in tomllib
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3))


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)  # a TOML basic string is a JSON string, for these characters


@st.composite
def configs(draw: st.DrawFn) -> str:
    lines = []
    for section, keys in SECTIONS.items():
        if not draw(st.booleans()):
            continue
        lines.append(f"[{section}]")
        chosen = draw(st.lists(st.sampled_from(keys + ["typo"]), unique=True, max_size=len(keys)))
        for key in chosen:
            lines.append(f"{key} = {toml_value(draw(values))}")
    for _ in range(draw(st.integers(0, 2))):
        lines.append("[[guards]]")
        for key in draw(st.lists(st.sampled_from(GUARD_KEYS), unique=True, max_size=5)):
            lines.append(f"{key} = {toml_value(draw(values))}")
    return "\n".join(lines) + "\n"


def check_config(text: str) -> None:
    try:
        parse_config(text)
    except ConfigError as exc:
        message = str(exc)
        assert message and "\n" not in message.strip() or "invalid TOML" in message
        assert "Traceback" not in message


@FUZZ
@given(configs())
def test_structured_configs_give_a_config_or_one_line_error(text):
    check_config(text)


@FUZZ
@given(st.text(max_size=300))
def test_any_text_gives_a_config_or_one_line_error(text):
    check_config(text)


VALID = """
[scope]
mutable = ["a.py"]
[metric]
command = "true"
direction = "minimize"
[proposer]
kind = "command"
command = "true"
"""


@FUZZ
@given(st.sampled_from(list(SECTIONS)), st.sampled_from(sorted({k for keys in SECTIONS.values() for k in keys})), values)
def test_one_odd_setting_in_a_valid_config(section, key, value):
    text = VALID.replace(f"[{section}]", f"[{section}]\n{key} = {toml_value(value)}", 1)
    if f"[{section}]" not in VALID:
        text += f"\n[{section}]\n{key} = {toml_value(value)}\n"
    check_config(text)


# ---------------------------------------------------------------- metric output

REGEXES = [r"metric: (\S+)", r"loss=([-+0-9.eE]+)", r"(\d+)", r"(.*)", r"(x)?", r"score: (.+?) ", r"^(.*)$"]
outputs = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=string.digits + ".-+eEinfaINFAN \n{}[]\":,", max_size=200),
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=8)),
        lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
        max_leaves=8,
    ).map(lambda data: json.dumps(data, allow_nan=True)),
)
parsers = st.one_of(
    st.sampled_from(REGEXES).map(lambda regex: Parser(regex=regex)),
    st.one_of(st.sampled_from(["a", "a.b", "0", "a.0", "loss", ""]), st.text(max_size=6)).map(lambda key: Parser(json=key)),
    st.just(Parser(last_number=True)),
)


@FUZZ
@given(outputs, parsers)
def test_metric_parsers_give_a_finite_number_or_a_parse_error(output, parser):
    try:
        value = parse_number(output, parser)
    except MetricParseError as exc:
        assert str(exc)
    else:
        assert isinstance(value, float) and math.isfinite(value)
