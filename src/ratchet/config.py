"""The ``ratchet.toml`` schema, its parsing, and its one-line validation errors."""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

CONFIG_FILE = "ratchet.toml"


class ConfigError(Exception):
    """A config problem, already phrased as one line for the user."""


# ---------------------------------------------------------------- durations

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """``90`` or ``"90s"``, ``"5m"``, ``"2h"``, ``"1.5h"``, ``"250ms"`` -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '90s', '5m' or '2h'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"expected a duration such as '90s', '5m' or '2h' (got {value!r})")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError("expected a duration such as '90s', '5m' or '2h'")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a duration must be positive (got {value!r})")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class Effect(BaseModel):
    """A size of change: absolute (``0.01``) or relative to the champion (``"1%"``)."""

    model_config = ConfigDict(frozen=True)
    value: float
    relative: bool

    def amount(self, reference: float) -> float:
        return abs(reference) * self.value / 100.0 if self.relative else self.value

    def __str__(self) -> str:
        return f"{self.value:g}%" if self.relative else f"{self.value:g}"


def parse_effect(value: object) -> Effect:
    if isinstance(value, Effect):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a number or a percentage such as '1%'")
    if isinstance(value, (int, float)):
        number, relative = float(value), False
    elif isinstance(value, str):
        text = value.strip()
        relative = text.endswith("%")
        try:
            number = float(text.rstrip("%").strip())
        except ValueError:
            raise ValueError(f"expected a number or a percentage such as '1%' (got {value!r})") from None
    elif isinstance(value, dict):
        return Effect(**value)
    else:
        raise ValueError("expected a number or a percentage such as '1%'")
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"must be a non-negative number (got {value!r})")
    return Effect(value=number, relative=relative)


EffectField = Annotated[Effect, BeforeValidator(parse_effect)]


# ---------------------------------------------------------------- sections


class _Section(BaseModel):
    # Unknown keys are errors: a typo in a budget must not silently mean "no budget".
    model_config = ConfigDict(extra="forbid")


class RunSection(_Section):
    name: str = "main"
    brief: str = "program.md"

    @field_validator("name")
    @classmethod
    def _valid_branch_name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name) or ".." in name or name.endswith(".lock"):
            raise ValueError(
                f"{name!r} is not a usable run name (letters, digits, '.', '_', '-'; it becomes the branch ratchet/<name>)"
            )
        return name


class ScopeSection(_Section):
    mutable: list[str] = Field(min_length=1)
    harness: list[str] = []

    @field_validator("mutable", "harness")
    @classmethod
    def _relative_globs(cls, globs: list[str]) -> list[str]:
        for glob in globs:
            if not glob.strip():
                raise ValueError("an empty glob")
            if glob.startswith("/") or ".." in Path(glob).parts:
                raise ValueError(f"{glob!r} must be relative to the repository root, without '..'")
        return globs


class Parser(_Section):
    """How a number is read from a command's output: exactly one of the three ways."""

    regex: str | None = None
    json_key: str | None = Field(default=None, alias="json")
    last_number: bool | None = None
    stream: Literal["stdout", "stderr", "both"] = "stdout"

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, regex: str | None) -> str | None:
        if regex is None:
            return None
        try:
            compiled = re.compile(regex)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        if compiled.groups < 1:
            raise ValueError("the regex needs a group around the number, e.g. 'loss: ([0-9.]+)'")
        return regex

    @property
    def parser_kind(self) -> str:
        if self.regex is not None:
            return "regex"
        if self.json_key is not None:
            return "json"
        return "last_number"

    def _check_one_parser(self) -> None:
        chosen = [self.regex is not None, self.json_key is not None, bool(self.last_number)]
        if sum(chosen) > 1:
            raise ValueError("choose one of regex, json and last_number")


class MetricSection(Parser):
    name: str = "metric"
    command: str
    direction: Literal["minimize", "maximize"]
    timeout: Duration | None = None

    @model_validator(mode="after")
    def _one_parser(self) -> "MetricSection":
        self._check_one_parser()
        return self

    @field_validator("name")
    @classmethod
    def _simple_name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", name):
            raise ValueError(f"{name!r} is not a simple name (letters, digits, '_', '.', '-')")
        return name


class GuardSection(Parser):
    """A check a candidate must pass: exit 0, and optionally a parsed number within bounds."""

    name: str
    command: str
    timeout: Duration | None = None
    min: float | None = None
    max: float | None = None
    # How much worse than the champion's value the number may get; "worse" means larger
    # unless direction = "maximize".
    max_regression: EffectField | None = None
    direction: Literal["minimize", "maximize"] = "minimize"

    @model_validator(mode="after")
    def _one_parser(self) -> "GuardSection":
        self._check_one_parser()
        return self

    @property
    def parses_number(self) -> bool:
        return (
            self.regex is not None
            or self.json_key is not None
            or bool(self.last_number)
            or self.min is not None
            or self.max is not None
            or self.max_regression is not None
        )


class VerdictSection(_Section):
    mode: Literal["single"] = "single"
    min_effect: EffectField = Effect(value=0.0, relative=False)


class BudgetSection(_Section):
    iterations: int | None = Field(default=None, ge=0)
    wall: Duration | None = None
    experiment_timeout: Duration = 600.0
    target: float | None = None
    max_consecutive_crashes: int | None = Field(default=5, ge=1)
    # Proposer spending (LLM tokens in + out, and dollars), summed over the run.
    tokens: int | None = Field(default=None, ge=0)
    cost_usd: float | None = Field(default=None, ge=0)


# ---------------------------------------------------------------- proposers

_RANGE = re.compile(
    r"^\s*(?P<flags>(?:(?:log|int)\s+)*)(?P<low>[-+0-9.eE]+)\s*\.\.\s*(?P<high>[-+0-9.eE]+)\s*(?:step\s+(?P<step>[-+0-9.eE]+))?\s*$"
)


class ParamSpec(BaseModel):
    """A search space for one parameter: a numeric range or a list of choices."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["float", "int", "choice"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    @classmethod
    def parse(cls, text: str) -> "ParamSpec":
        """``"log 1e-4..1e-1"``, ``"int 1..8"``, ``"0..1 step 0.1"``, ``"choice relu, gelu"``."""
        stripped = text.strip()
        if stripped.startswith("choice"):
            items = [item.strip() for item in stripped[len("choice") :].strip(" :").split(",") if item.strip()]
            if len(items) < 2:
                raise ValueError(f"{text!r}: a choice needs at least two values, e.g. 'choice relu, gelu'")
            return cls(kind="choice", choices=tuple(_literal(item) for item in items))
        match = _RANGE.match(stripped)
        if not match:
            raise ValueError(
                f"{text!r} is not a parameter range; write e.g. 'log 1e-4..1e-1', 'int 1..8' or 'choice a, b'"
            )
        flags = match.group("flags").split()
        try:
            low, high = float(match.group("low")), float(match.group("high"))
            step = float(match.group("step")) if match.group("step") else None
        except ValueError:
            raise ValueError(f"{text!r}: the bounds must be numbers") from None
        if not low < high:
            raise ValueError(f"{text!r}: the low bound must be below the high bound")
        log = "log" in flags
        if log and low <= 0:
            raise ValueError(f"{text!r}: a log range needs a positive low bound")
        if log and step is not None:
            raise ValueError(f"{text!r}: a log range cannot have a step")
        kind: Literal["float", "int"] = "int" if "int" in flags else "float"
        if kind == "int" and (low != int(low) or high != int(high) or (step is not None and step != int(step))):
            raise ValueError(f"{text!r}: an int range needs integer bounds and step")
        if step is not None and step <= 0:
            raise ValueError(f"{text!r}: the step must be positive")
        return cls(kind=kind, low=low, high=high, log=log, step=step)

    def __str__(self) -> str:
        if self.kind == "choice":
            return "choice " + ", ".join(str(c) for c in self.choices)
        flags = ("log " if self.log else "") + ("int " if self.kind == "int" else "")
        step = f" step {self.step:g}" if self.step else ""
        return f"{flags}{self.low:g}..{self.high:g}{step}"


def _literal(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    if text in ("true", "false"):
        return text == "true"
    return text.strip("'\"")


class ParamDecl(_Section):
    """A parameter kept in a TOML/JSON/YAML file inside the scope."""

    file: str
    key: str
    range: str

    @field_validator("range")
    @classmethod
    def _parses(cls, text: str) -> str:
        ParamSpec.parse(text)
        return text

    @property
    def spec(self) -> ParamSpec:
        return ParamSpec.parse(self.range)


class OptunaProposerSection(_Section):
    kind: Literal["optuna"]
    params: list[ParamDecl] = []
    # Scan the scope for literals marked like `lr = 0.01  # ratchet: log 1e-4..1e-1`.
    markers: bool = True
    seed: int | None = None
    startup_trials: int = Field(default=5, ge=0)


class CommandProposerSection(_Section):
    kind: Literal["command"]
    command: str
    timeout: Duration = 900.0


ProposerSection = Annotated[
    Union[OptunaProposerSection, CommandProposerSection], Field(discriminator="kind")
]


class Config(_Section):
    run: RunSection = RunSection()
    scope: ScopeSection
    metric: MetricSection
    guards: list[GuardSection] = []
    verdict: VerdictSection = VerdictSection()
    budget: BudgetSection = BudgetSection()
    proposer: ProposerSection

    @model_validator(mode="after")
    def _unique_guard_names(self) -> "Config":
        names = [guard.name for guard in self.guards]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"guard names must be unique (repeated: {', '.join(duplicates)})")
        return self

    def metric_timeout(self) -> float:
        return self.metric.timeout or self.budget.experiment_timeout


# ---------------------------------------------------------------- loading


def _location(loc: tuple[int | str, ...], data: dict[str, Any]) -> str:
    """Turn pydantic's location into the dotted path a user would write, e.g. ``guards[1].command``."""
    parts: list[str] = []
    node: Any = data
    tag_skipped_for: Any = None
    for item in loc:
        if isinstance(item, int):
            if parts:
                parts[-1] += f"[{item}]"
            else:
                parts.append(f"[{item}]")
            node = node[item] if isinstance(node, list) and item < len(node) else None
            continue
        key = str(item)
        # Discriminated unions add the tag ("optuna") as a location step; it is not a key.
        if isinstance(node, dict) and node.get("kind") == key and tag_skipped_for is not node:
            tag_skipped_for = node
            continue
        parts.append(key)
        node = node.get(key) if isinstance(node, dict) else None
    return ".".join(parts)


def format_validation_error(path: Path | str, error: ValidationError, data: dict[str, Any]) -> str:
    first = error.errors(include_url=False)[0]
    where = _location(tuple(first["loc"]), data)
    kind = first["type"]
    message = first["msg"]
    if kind == "missing":
        message = "is required"
    elif kind == "extra_forbidden":
        message = "is not a known setting"
    elif kind == "union_tag_invalid":
        tag = first.get("ctx", {}).get("tag")
        message = f"unknown kind {tag!r}; expected one of: {first.get('ctx', {}).get('expected_tags', 'optuna, command')}"
    elif kind == "union_tag_not_found":
        message = f"needs a kind ({first.get('ctx', {}).get('expected_tags', 'optuna, command')})"
    elif message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    elif "input" in first and kind not in ("model_type",):
        message = f"{message[0].lower()}{message[1:]} (got {first['input']!r})"
    more = len(error.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{path}: {where + ': ' if where else ''}{message}{suffix}"


def parse_config(text: str, path: Path | str = CONFIG_FILE) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc, data)) from None


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found; run `ratchet init` to write one") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return parse_config(text, path)
