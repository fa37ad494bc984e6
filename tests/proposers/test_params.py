"""Finding, reading and rewriting tunable parameters: declared (TOML/JSON/YAML) and marked literals."""

from __future__ import annotations

import ast
import json
import math
import tomllib
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ratchet.config import ParamDecl
from ratchet.proposers._params import (
    MAX_SCAN_BYTES,
    current_values,
    discover_params,
    format_number,
    render_edits,
    scan_markers,
)


def write(root: Path, name: str, text: str) -> str:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return name


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    old, new = before.split("\n"), after.split("\n")
    assert len(old) == len(new), "an edit must not add or remove lines"
    return [(a, b) for a, b in zip(old, new) if a != b]


# ---------------------------------------------------------------- TOML

TOML = """\
# model settings, tuned by hand in 2023
title = "run"   # a string
lr = 0.01

[train]  # the training table
epochs = 10   # keep this small
optimizer = 'adam'
nesterov = false
schedule.warmup = 0.1  # dotted key inside a table

[[layers]]
lr = 99.0
"""


def test_toml_declared_params_are_read(tmp_path: Path) -> None:
    write(tmp_path, "cfg.toml", TOML)
    decls = [
        ParamDecl(file="cfg.toml", key="lr", range="log 1e-4..1e-1"),
        ParamDecl(file="cfg.toml", key="train.epochs", range="int 1..50"),
        ParamDecl(file="cfg.toml", key="train.optimizer", range="choice adam, sgd"),
        ParamDecl(file="cfg.toml", key="train.schedule.warmup", range="0..1 step 0.1"),
    ]
    params = discover_params(tmp_path, decls, ["cfg.toml"], markers=False)
    assert current_values(params) == {
        "cfg.toml:lr": 0.01,
        "cfg.toml:train.epochs": 10,
        "cfg.toml:train.optimizer": "adam",
        "cfg.toml:train.schedule.warmup": 0.1,
    }


def test_toml_rewrite_keeps_comments_layout_and_quote_style(tmp_path: Path) -> None:
    write(tmp_path, "cfg.toml", TOML)
    decls = [
        ParamDecl(file="cfg.toml", key="lr", range="log 1e-6..1e-1"),
        ParamDecl(file="cfg.toml", key="train.epochs", range="int 1..50"),
        ParamDecl(file="cfg.toml", key="train.optimizer", range="choice adam, sgd"),
        ParamDecl(file="cfg.toml", key="train.nesterov", range="choice true, false"),
        ParamDecl(file="cfg.toml", key="train.schedule.warmup", range="0..1 step 0.1"),
    ]
    params = discover_params(tmp_path, decls, ["cfg.toml"], markers=False)
    values = {
        "cfg.toml:lr": 0.0000123456789,
        "cfg.toml:train.epochs": 37,
        "cfg.toml:train.optimizer": "sgd",
        "cfg.toml:train.nesterov": True,
        "cfg.toml:train.schedule.warmup": 0.30000000000000004,
    }
    text = render_edits(tmp_path, params, values)["cfg.toml"]
    assert changed_lines(TOML, text) == [
        ("lr = 0.01", "lr = 1.23457e-05"),
        ("epochs = 10   # keep this small", "epochs = 37   # keep this small"),
        ("optimizer = 'adam'", "optimizer = 'sgd'"),
        ("nesterov = false", "nesterov = true"),
        ("schedule.warmup = 0.1  # dotted key inside a table", "schedule.warmup = 0.3  # dotted key inside a table"),
    ]
    data = tomllib.loads(text)
    assert data["lr"] == pytest.approx(1.23457e-05)
    assert data["train"]["epochs"] == 37
    assert data["layers"][0]["lr"] == 99.0  # the [[layers]] lr is a different key


def test_toml_missing_or_unsupported_key_is_a_clear_error(tmp_path: Path) -> None:
    write(tmp_path, "cfg.toml", 'shape = [1, 2]\n[a]\nb = 1\n')
    with pytest.raises(ValueError, match="no such key"):
        discover_params(tmp_path, [ParamDecl(file="cfg.toml", key="a.c", range="int 1..3")], ["cfg.toml"], False)
    with pytest.raises(ValueError, match="only numbers, strings and booleans"):
        discover_params(tmp_path, [ParamDecl(file="cfg.toml", key="shape", range="int 1..3")], ["cfg.toml"], False)


NESTED_TOML = """\
# experiment config -- hand-tuned, keep these comments
name = "baseline run"  # a quoted string with spaces

[model]
kind = 'transformer'   # a literal string
[model.attention]      # a nested table
heads = 8              # aligned inline comments
dropout = 0.1          # the one this trial tunes

[optim]
opt = { name = "adamw", lr = 3.0e-4 }  # an inline table

[[layers]]
width = 64
[[layers]]
width = 128
"""


@pytest.mark.parametrize(
    ("key", "range_", "value", "old", "new"),
    [
        ("model.attention.dropout", "0..0.5", 0.25, "dropout = 0.1          #", "dropout = 0.25          #"),
        ("model.kind", "choice transformer, rnn", "rnn", "kind = 'transformer'   #", "kind = 'rnn'   #"),
        ("name", "choice baseline run, it's wider", "it's wider", 'name = "baseline run"', 'name = "it\'s wider"'),
        ("optim.opt.lr", "log 1e-5..1e-2", 0.001, "lr = 3.0e-4 }", "lr = 0.001 }"),
        ("layers.1.width", "int 32..256", 96, "width = 128", "width = 96"),
    ],
)
def test_a_toml_trial_changes_only_the_value(tmp_path: Path, key: str, range_: str, value: object, old: str, new: str) -> None:
    write(tmp_path, "cfg.toml", NESTED_TOML)
    params = discover_params(tmp_path, [ParamDecl(file="cfg.toml", key=key, range=range_)], ["cfg.toml"], False)
    text = render_edits(tmp_path, params, {f"cfg.toml:{key}": value})["cfg.toml"]
    assert NESTED_TOML.count(old) == 1
    assert text == NESTED_TOML.replace(old, new)  # one line of diff, every other byte kept


# ---------------------------------------------------------------- JSON and YAML


def test_json_round_trip_keeps_indent_and_order(tmp_path: Path) -> None:
    original = '{\n    "model": {"depth": 3, "act": "relu"},\n    "lr": 0.1,\n    "layers": [8, 16]\n}\n'
    write(tmp_path, "cfg.json", original)
    decls = [
        ParamDecl(file="cfg.json", key="model.depth", range="int 1..8"),
        ParamDecl(file="cfg.json", key="lr", range="log 1e-4..1"),
        ParamDecl(file="cfg.json", key="layers.1", range="choice 16, 32"),
    ]
    params = discover_params(tmp_path, decls, ["cfg.json"], markers=False)
    assert current_values(params)["cfg.json:layers.1"] == 16
    text = render_edits(tmp_path, params, {"cfg.json:model.depth": 5, "cfg.json:lr": 0.00314159265, "cfg.json:layers.1": 32})[
        "cfg.json"
    ]
    # Indentation, the inline object and the key order are the file's own: only values change.
    assert text == '{\n    "model": {"depth": 5, "act": "relu"},\n    "lr": 0.00314159,\n    "layers": [8, 32]\n}\n'


def test_json_trial_keeps_tabs_duplicates_and_escapes(tmp_path: Path) -> None:
    original = '{\n\t"name": "caf\\u00e9 \\"x\\"",\n\t"lr": 0.5,\n\t"opt": {"lr": 1, "lr": 0.1}\n}'
    write(tmp_path, "cfg.json", original)
    decls = [ParamDecl(file="cfg.json", key="opt.lr", range="0..1"), ParamDecl(file="cfg.json", key="name", range="choice a, b")]
    params = discover_params(tmp_path, decls, ["cfg.json"], markers=False)
    assert current_values(params) == {"cfg.json:opt.lr": 0.1, "cfg.json:name": 'café "x"'}  # the last duplicate wins
    text = render_edits(tmp_path, params, {"cfg.json:opt.lr": 0.75, "cfg.json:name": "b"})["cfg.json"]
    assert text == '{\n\t"name": "b",\n\t"lr": 0.5,\n\t"opt": {"lr": 1, "lr": 0.75}\n}'


def test_json_compact_stays_compact(tmp_path: Path) -> None:
    write(tmp_path, "cfg.json", '{"lr": 0.1}')
    params = discover_params(tmp_path, [ParamDecl(file="cfg.json", key="lr", range="0..1")], ["cfg.json"], False)
    assert render_edits(tmp_path, params, {"cfg.json:lr": 0.5}) == {"cfg.json": '{"lr": 0.5}'}


def test_yaml_round_trip_keeps_key_order_and_float_type(tmp_path: Path) -> None:
    write(tmp_path, "cfg.yaml", "train:\n  lr: 0.01\n  epochs: 5\nmodel:\n  act: relu\n")
    decls = [
        ParamDecl(file="cfg.yaml", key="train.lr", range="log 1e-6..1e-1"),
        ParamDecl(file="cfg.yaml", key="model.act", range="choice relu, gelu"),
    ]
    params = discover_params(tmp_path, decls, ["cfg.yaml"], markers=False)
    text = render_edits(tmp_path, params, {"cfg.yaml:train.lr": 0.00001, "cfg.yaml:model.act": "gelu"})["cfg.yaml"]
    data = yaml.safe_load(text)
    assert data == {"train": {"lr": 1e-05, "epochs": 5}, "model": {"act": "gelu"}}
    assert isinstance(data["train"]["lr"], float)
    assert list(data) == ["train", "model"]


def test_declared_file_outside_scope_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "cfg.yaml", "lr: 0.1\n")
    with pytest.raises(ValueError, match="not in the scope"):
        discover_params(tmp_path, [ParamDecl(file="cfg.yaml", key="lr", range="0..1")], ["train.py"], False)


def test_declared_file_must_be_toml_json_or_yaml(tmp_path: Path) -> None:
    write(tmp_path, "cfg.ini", "lr = 0.1\n")
    with pytest.raises(ValueError, match=r"\.toml, \.json, \.yaml"):
        discover_params(tmp_path, [ParamDecl(file="cfg.ini", key="lr", range="0..1")], ["cfg.ini"], False)


NESTED_YAML = """\
# training config (hand-tuned; keep these comments)
model:
    name: "gpt-small"      # double-quoted on purpose
    act: 'gelu'
    depth: 3
train:
  lr: 0.01   # the one this trial tunes
  schedule: {warmup: 100, kind: cosine}
  layers:
  - 8
  - 16
  note: this plain scalar runs well past eighty characters, which a YAML dumper would wrap
  mode: fast
zeta: last
alpha: &shared 0.5
beta: *shared
"""


@pytest.mark.parametrize(
    ("key", "range_", "value", "old", "new"),
    [
        ("train.lr", "log 1e-5..1e-1", 0.002, "lr: 0.01   #", "lr: 0.002   #"),
        ("model.name", "choice gpt-small, gpt-tiny", "gpt-tiny", 'name: "gpt-small"', 'name: "gpt-tiny"'),
        ("model.act", "choice gelu, it's relu", "it's relu", "act: 'gelu'", 'act: "it\'s relu"'),
        ("model.depth", "int 1..8", 6, "depth: 3", "depth: 6"),
        ("train.schedule.warmup", "int 0..1000", 250, "{warmup: 100,", "{warmup: 250,"),
        ("train.layers.1", "choice 16, 32", 32, "- 16", "- 32"),
        ("train.mode", "choice fast, on", "on", "mode: fast", 'mode: "on"'),  # plain `on` would read as true
        ("alpha", "0..1", 0.75, "&shared 0.5", "&shared 0.75"),  # the anchor stays; beta follows it
    ],
)
def test_a_yaml_trial_changes_only_the_value(tmp_path: Path, key: str, range_: str, value: object, old: str, new: str) -> None:
    write(tmp_path, "cfg.yaml", NESTED_YAML)
    params = discover_params(tmp_path, [ParamDecl(file="cfg.yaml", key=key, range=range_)], ["cfg.yaml"], False)
    text = render_edits(tmp_path, params, {f"cfg.yaml:{key}": value})["cfg.yaml"]
    assert NESTED_YAML.count(old) == 1
    assert text == NESTED_YAML.replace(old, new)  # one line of diff: comments, quotes, order, wrapping kept
    parts = key.split(".")
    data = yaml.safe_load(text)
    for part in parts:
        data = data[int(part)] if isinstance(data, list) else data[part]
    assert data == value


def test_yaml_values_that_cannot_be_rewritten_in_place_are_refused_up_front(tmp_path: Path) -> None:
    write(tmp_path, "cfg.yaml", "base: &b\n  lr: 0.1\nrun:\n  <<: *b\nnote: |\n  fast\n")
    with pytest.raises(ValueError, match=r"cfg\.yaml \(key 'run.lr' .*comes from a merge"):
        discover_params(tmp_path, [ParamDecl(file="cfg.yaml", key="run.lr", range="0..1")], ["cfg.yaml"], False)
    with pytest.raises(ValueError, match=r"cfg\.yaml \(key 'note' .*block scalars"):
        discover_params(tmp_path, [ParamDecl(file="cfg.yaml", key="note", range="choice fast, slow")], ["cfg.yaml"], False)


def test_crlf_files_keep_their_line_ends(tmp_path: Path) -> None:
    files = {"a.yaml": "# c\r\nx: 1  # n\r\ny: 2\r\n", "b.toml": "# c\r\nx = 1  # n\r\ny = 2\r\n", "c.json": '{\r\n  "x": 1,\r\n  "y": 2\r\n}\r\n'}
    for name, text in files.items():
        (tmp_path / name).write_bytes(text.encode())
    decls = [ParamDecl(file=name, key="x", range="int 1..9") for name in files]
    params = discover_params(tmp_path, decls, list(files), markers=False)
    edits = render_edits(tmp_path, params, {f"{name}:x": 7 for name in files})
    assert edits == {
        "a.yaml": "# c\r\nx: 7  # n\r\ny: 2\r\n",
        "b.toml": "# c\r\nx = 7  # n\r\ny = 2\r\n",
        "c.json": '{\r\n  "x": 7,\r\n  "y": 2\r\n}\r\n',
    }


def test_yaml_file_with_both_marker_and_declared_param(tmp_path: Path) -> None:
    # Edits are in place, so a marker in a declared file survives every trial.
    write(tmp_path, "cfg.yaml", "lr: 0.1\ndepth: 3  # ratchet: int 1..8\n")
    params = discover_params(tmp_path, [ParamDecl(file="cfg.yaml", key="lr", range="0..1")], ["cfg.yaml"], True)
    assert [p.name for p in params] == ["cfg.yaml:lr", "cfg.yaml:depth"]
    text = render_edits(tmp_path, params, {"cfg.yaml:lr": 0.5, "cfg.yaml:depth": 4})["cfg.yaml"]
    assert text == "lr: 0.5\ndepth: 4  # ratchet: int 1..8\n"
    # One literal both marked and declared would have two params, each overwriting the other.
    write(tmp_path, "cfg.yaml", "train:\n  lr: 0.1  # ratchet: 0..1\n")
    with pytest.raises(ValueError, match=r"cfg\.yaml:2: 'train.lr' is both marked and declared"):
        discover_params(tmp_path, [ParamDecl(file="cfg.yaml", key="train.lr", range="0..1")], ["cfg.yaml"], True)


# ---------------------------------------------------------------- markers

PYTHON = """\
# Mark a literal like `lr = 0.01  # ratchet: log 1e-4..1e-1` to tune it.   <- prose, not a marker
lr = 0.01  # ratchet: log 1e-4..1e-1
depth: int = 3  # ratchet: int 1..8
act = "relu"  # ratchet: choice relu, gelu
CONFIG = {
    "dropout": 0.1,  # ratchet: 0..0.5 step 0.05
}
model = build(width=64)  # ratchet: choice 32, 64, 128
use_bias = True  # ratchet: choice True, False
"""


def test_python_markers_are_discovered(tmp_path: Path) -> None:
    write(tmp_path, "train.py", PYTHON)
    params = discover_params(tmp_path, [], ["train.py"], markers=True)
    assert current_values(params) == {
        "train.py:lr": 0.01,
        "train.py:depth": 3,
        "train.py:act": "relu",
        "train.py:dropout": 0.1,
        "train.py:width": 64,
        "train.py:use_bias": "True",
    }
    assert [p.line for p in params] == [2, 3, 4, 6, 8, 9]
    assert params[1].spec.kind == "int" and params[1].spec.high == 8


def test_python_markers_are_rewritten_in_place(tmp_path: Path) -> None:
    write(tmp_path, "train.py", PYTHON)
    params = discover_params(tmp_path, [], ["train.py"], markers=True)
    values = {
        "train.py:lr": 0.002,
        "train.py:depth": 7,
        "train.py:act": "gelu",
        "train.py:dropout": 0.35000000000000003,
        "train.py:width": 128,
        "train.py:use_bias": "False",
    }
    text = render_edits(tmp_path, params, values)["train.py"]
    assert changed_lines(PYTHON, text) == [
        ("lr = 0.01  # ratchet: log 1e-4..1e-1", "lr = 0.002  # ratchet: log 1e-4..1e-1"),
        ("depth: int = 3  # ratchet: int 1..8", "depth: int = 7  # ratchet: int 1..8"),
        ('act = "relu"  # ratchet: choice relu, gelu', 'act = "gelu"  # ratchet: choice relu, gelu'),
        ('    "dropout": 0.1,  # ratchet: 0..0.5 step 0.05', '    "dropout": 0.35,  # ratchet: 0..0.5 step 0.05'),
        ("model = build(width=64)  # ratchet: choice 32, 64, 128", "model = build(width=128)  # ratchet: choice 32, 64, 128"),
        ("use_bias = True  # ratchet: choice True, False", "use_bias = False  # ratchet: choice True, False"),
    ]
    compile(text, "train.py", "exec")  # still Python
    # Discovery on the edited file reads the new values back: the edit round-trips.
    write(tmp_path, "train.py", text)
    assert current_values(discover_params(tmp_path, [], ["train.py"], True))["train.py:dropout"] == 0.35


def test_c_style_markers(tmp_path: Path) -> None:
    source = (
        "const int tile = 64; // ratchet: choice 32, 64, 128\n"
        "#define UNROLL 4 // ratchet: int 1..8\n"
        "float alpha = 0.5f; // ratchet: 0..1 step 0.1\n"
        "// a comment that says // ratchet: is ignored\n"
    )
    write(tmp_path, "kernel.cu", source)
    params = discover_params(tmp_path, [], ["kernel.cu"], markers=True)
    assert current_values(params) == {"kernel.cu:tile": 64, "kernel.cu:UNROLL": 4, "kernel.cu:alpha": 0.5}
    text = render_edits(tmp_path, params, {"kernel.cu:tile": 128, "kernel.cu:UNROLL": 2, "kernel.cu:alpha": 0.7})["kernel.cu"]
    assert text.split("\n")[:3] == [
        "const int tile = 128; // ratchet: choice 32, 64, 128",
        "#define UNROLL 2 // ratchet: int 1..8",
        "float alpha = 0.7f; // ratchet: 0..1 step 0.1",
    ]


def test_markers_in_yaml_and_toml_files_stay_parsable(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "lr: 0.01  # ratchet: log 1e-6..1e-1\nact: relu  # ratchet: choice relu, gelu\n")
    write(tmp_path, "b.toml", "lr = 0.01  # ratchet: log 1e-6..1e-1\n")
    params = discover_params(tmp_path, [], ["a.yaml", "b.toml"], markers=True)
    edits = render_edits(tmp_path, params, {"a.yaml:lr": 2e-6, "a.yaml:act": "gelu", "b.toml:lr": 2e-6})
    assert yaml.safe_load(edits["a.yaml"]) == {"lr": 2e-06, "act": "gelu"}  # a float, not the string "2e-06"
    assert "# ratchet: choice relu, gelu" in edits["a.yaml"]
    assert tomllib.loads(edits["b.toml"]) == {"lr": 2e-06}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("lr = 0.01  # ratchet: log 1e-1..1e-4", "low bound must be below"),
        ("lr = 0.01  # ratchet: sometimes", "is not a parameter range"),
        ("lr = compute(0.01, 2)  # ratchet: int 1..8", "no literal to tune"),
        ("lr = default_lr  # ratchet: log 1e-4..1e-1", "no literal to tune"),
        ("lr == 3  # ratchet: int 1..8", "no literal to tune"),
    ],
)
def test_bad_markers_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    write(tmp_path, "src/train.py", f"import os\n\n{line}\n")
    with pytest.raises(ValueError, match=rf"^src/train\.py:3: .*{message}"):
        discover_params(tmp_path, [], ["src/train.py"], markers=True)


def test_duplicate_names_are_an_error(tmp_path: Path) -> None:
    write(tmp_path, "train.py", "lr = 0.1  # ratchet: 0..1\n\nlr = 0.2  # ratchet: 0..1\n")
    with pytest.raises(ValueError, match=r"train\.py:3: parameter 'train.py:lr' is defined twice \(also at line 1\)"):
        discover_params(tmp_path, [], ["train.py"], markers=True)


def test_same_identifier_in_two_files_is_two_params(tmp_path: Path) -> None:
    write(tmp_path, "a.py", "lr = 0.1  # ratchet: 0..1\n")
    write(tmp_path, "b.py", "lr = 0.2  # ratchet: 0..1\n")
    assert [p.name for p in discover_params(tmp_path, [], ["a.py", "b.py"], True)] == ["a.py:lr", "b.py:lr"]


def test_binary_large_and_undecodable_files_are_skipped(tmp_path: Path) -> None:
    marker = b"lr = 0.1  # ratchet: 0..1\n"
    (tmp_path / "blob.bin").write_bytes(b"\0\1" + marker)
    (tmp_path / "latin1.py").write_bytes(b"# caf\xe9\n" + marker)
    (tmp_path / "big.py").write_bytes(marker + b"#" * MAX_SCAN_BYTES)
    write(tmp_path, "ok.py", marker.decode())
    files = ["blob.bin", "latin1.py", "big.py", "ok.py", "missing.py"]
    assert [p.name for p in discover_params(tmp_path, [], files, markers=True)] == ["ok.py:lr"]


def test_markers_off_ignores_them(tmp_path: Path) -> None:
    write(tmp_path, "train.py", PYTHON)
    assert discover_params(tmp_path, [], ["train.py"], markers=False) == []


def test_unchanged_values_leave_the_text_alone(tmp_path: Path) -> None:
    original = "lr = 1e-2  # ratchet: log 1e-4..1e-1\r\nepochs = 3  # ratchet: int 1..9\r\n"
    (tmp_path / "train.py").write_bytes(original.encode())
    params = discover_params(tmp_path, [], ["train.py"], markers=True)
    assert render_edits(tmp_path, params, {"train.py:lr": 0.01, "train.py:epochs": 3}) == {"train.py": original}
    edited = render_edits(tmp_path, params, {"train.py:epochs": 4})["train.py"]
    assert edited == original.replace("epochs = 3", "epochs = 4")  # CRLF kept, lr untouched


def test_a_file_changed_since_discovery_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "train.py", "lr = 0.1  # ratchet: 0..1\n")
    params = discover_params(tmp_path, [], ["train.py"], markers=True)
    write(tmp_path, "train.py", "lr = 0.9  # ratchet: 0..1\n")
    with pytest.raises(ValueError, match="changed since"):
        render_edits(tmp_path, params, {"train.py:lr": 0.5})


def test_scan_markers_reports_the_literal_it_found() -> None:
    (param,) = scan_markers("k.c", "  unsigned n = 10u;  // ratchet: int 1..100")
    assert (param.key, param.value, param.literal, param.line) == ("n", 10, "10u", 1)


# ---------------------------------------------------------------- number rendering


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=1e-12, max_value=1e12, allow_nan=False, allow_infinity=False), st.booleans())
def test_rendered_floats_read_back_as_floats_everywhere(value: float, negative: bool) -> None:
    value = -value if negative else value
    text = format_number(value, "float")
    for parsed in (
        float(ast.literal_eval(text)),  # Python
        json.loads(text),
        tomllib.loads(f"x = {text}")["x"],
        yaml.safe_load(f"x: {text}")["x"],
    ):
        assert isinstance(parsed, float), text
        assert math.isclose(parsed, value, rel_tol=1e-5), text


def test_ints_render_as_ints() -> None:
    assert format_number(12, "int") == "12"
    assert format_number(12.0, "int") == "12"
    assert format_number(3.0, "float") == "3.0"
    assert format_number(1e-5, "float") == "1.0e-05"
