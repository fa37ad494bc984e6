"""The ``ratchet.toml`` schema, its parsing, and its one-line validation errors."""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

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

def _float(value: int | float) -> float:
    # A TOML integer has no bound: float() of a huge one raises OverflowError, not ValueError.
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{value:.3g} is too large" if isinstance(value, float) else "the number is too large") from None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """``90`` or ``"90s"``, ``"5m"``, ``"2h"``, ``"1.5h"``, ``"250ms"`` -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '90s', '5m' or '2h'")
    if isinstance(value, (int, float)):
        seconds = _float(value)
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
        number, relative = _float(value), False
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


# ---------------------------------------------------------------- sizes

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)


def parse_size(value: object) -> int:
    """``1048576`` or ``"512KB"``, ``"1MB"``, ``"2GiB"`` -> bytes (K, M, G, T are powers of 1024)."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as '512KB', '1MB' or '2GB'")
    if isinstance(value, (int, float)):
        number = _float(value)
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        unit = (match.group(2) or "b")[0].lower()
        number = float(match.group(1)) * 1024 ** "bkmgt".index(unit)
    else:
        raise ValueError(f"expected a size such as '512KB', '1MB' or '2GB' (got {value!r})")
    if not math.isfinite(number) or number < 1 or number > 2**62:
        raise ValueError(f"a size must be positive (got {value!r})")
    return int(number)


Size = Annotated[int, BeforeValidator(parse_size)]


def _env_name(name: object) -> str:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*\*?", name):
        raise ValueError(f"{name!r} is not an environment variable name (a trailing * matches a prefix)")
    return name


EnvName = Annotated[str, BeforeValidator(_env_name)]


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
    # One command that runs the candidate and prints the number...
    command: str | None = None
    # ...or trusted scoring in two steps: `run` (the candidate's code, untrusted) runs in the
    # candidate's checkout and leaves artifacts; `score` (trusted) runs from a pristine copy of
    # the harness taken from the run's base commit, outside the checkout, with the checkout's
    # path in $RATCHET_CANDIDATE; the number is read from `score`'s output only.
    run: str | None = None
    score: str | None = None
    direction: Literal["minimize", "maximize"]
    timeout: Duration | None = None

    @model_validator(mode="after")
    def _one_parser(self) -> "MetricSection":
        self._check_one_parser()
        if self.command is None and not (self.run and self.score):
            raise ValueError("needs a command (or both run and score for trusted scoring)")
        if self.command is not None and (self.run or self.score):
            raise ValueError("use either command, or run and score, not both")
        return self

    @property
    def trusted_scoring(self) -> bool:
        return self.command is None

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
    # single: one measurement of the candidate against the champion's recorded one.
    # repeat: `repeats` measurements of each (champion re-measured), medians compared.
    # sequential: interleaved pairs, a paired test after each from 3 to `max_pairs`.
    mode: Literal["single", "repeat", "sequential"] = "single"
    min_effect: EffectField = Effect(value=0.0, relative=False)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    max_pairs: int = Field(default=10, ge=3, le=100)
    repeats: int = Field(default=5, ge=1, le=100)
    # Differences on a log scale (ratios) or absolute; auto: log for a relative min_effect.
    scale: Literal["auto", "log", "absolute"] = "auto"
    # A deterministic metric (an error count) needs no pairs; auto: detected by the A/A check.
    deterministic: Literal["auto", "yes", "no"] = "auto"
    # A/A measurement of the champion against itself: pairs at the start, and again every
    # `recalibrate_every` candidates (0: never again). 0 pairs: no calibration.
    calibrate_pairs: int = Field(default=3, ge=0, le=100)
    recalibrate_every: int = Field(default=25, ge=0)
    # End of run: the final champion against the baseline, in interleaved pairs (0: skip).
    confirm_pairs: int = Field(default=5, ge=0, le=100)
    # When a would-be keep fails a guard: how many times the proposer gets the guard's output
    # and may mend its candidate (re-measured in full each time) before it is discarded.
    rework: int = Field(default=0, ge=0, le=10)
    # Seed of the random order within each pair.
    seed: int = 0


class ReviewSection(_Section):
    """Would-be keeps a person must approve before they join the run branch (the review queue)."""

    # Globs (like [scope]): a would-be keep that changes any of these paths waits for review.
    paths: list[str] = []
    # "guard:NAME": a would-be keep that fails only these guards waits for review instead of
    # being discarded (a policy check a person may overrule).
    when: list[str] = []

    @field_validator("when")
    @classmethod
    def _guard_triggers(cls, triggers: list[str]) -> list[str]:
        for trigger in triggers:
            if not trigger.startswith("guard:") or not trigger[len("guard:") :].strip():
                raise ValueError(f"{trigger!r} is not a trigger; write \"guard:NAME\" for a [[guards]] name")
        return triggers

    def guards(self) -> set[str]:
        return {trigger[len("guard:") :].strip() for trigger in self.when}


class HoldoutSection(Parser):
    """A metric the proposer never sees, measured for every would-be keep."""

    command: str
    direction: Literal["minimize", "maximize"]
    timeout: Duration | None = None
    # How much worse than the champion's holdout value a keep may make it.
    max_regression: EffectField = Effect(value=0.0, relative=False)
    # discard: an overfit candidate is discarded (verdict `overfit`); flag: kept, flagged.
    action: Literal["discard", "flag"] = "discard"

    @model_validator(mode="after")
    def _one_parser(self) -> "HoldoutSection":
        self._check_one_parser()
        return self


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
    # Inside the sandbox: whether the command reaches the network (an agent calling its model
    # API needs it), the environment variables it gets besides the allowlist (its API key), and
    # paths it may write besides the checkout (an agent's own state, e.g. "~/.claude").
    network: bool = False
    env: list[EnvName] = []
    writable: list[str] = []


class ContextCommand(_Section):
    """A command run on the champion whose output is shown to the proposer (hot spots, type errors)."""

    name: str
    command: str
    timeout: Duration = 120.0


class Price(_Section):
    """Dollars per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class _ThinkingProposerSection(_Section):
    """What the proposers that read a brief (llm, agent, hybrid) are shown, and its bounds."""

    # A folder whose *.j2 files replace the bundled prompt templates of the same name.
    templates: str | None = None
    context_commands: list[ContextCommand] = []
    history_rows: int = Field(default=30, ge=1, le=1000)
    max_scope_chars: int = Field(default=100_000, ge=1000)
    max_output_chars: int = Field(default=2000, ge=100)
    # After this many experiments without a keep, the prompt changes strategy.
    plateau: int = Field(default=5, ge=1)
    prices: dict[str, Price] = {}


class LLMProposerSection(_ThinkingProposerSection):
    kind: Literal["llm"]
    provider: Literal["openai", "anthropic"] = "openai"
    model: str
    # The environment variable holding the API key (default OPENAI_API_KEY / ANTHROPIC_API_KEY;
    # "" for a local server that needs none). The key itself never goes in this file.
    api_key_env: str | None = None
    base_url: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int = Field(default=4096, ge=1)
    timeout: Duration = 120.0  # per request
    max_retries: int = Field(default=4, ge=0, le=10)  # on 429, 5xx and timeouts, with backoff
    whole_file_max_lines: int = Field(default=200, ge=0)


class HybridProposerSection(LLMProposerSection):
    kind: Literal["hybrid"]  # type: ignore[assignment]
    # TPE trials on the numbers a structural change exposes, before the next structural change.
    tuning_trials: int = Field(default=8, ge=1)
    startup_trials: int = Field(default=3, ge=0)
    seed: int | None = None


class AgentProposerSection(_ThinkingProposerSection):
    kind: Literal["agent"]
    preset: Literal["claude", "codex", "aider", "gemini", "generic"]
    # The command line (required for `generic`; replaces the preset's own otherwise).
    command: str | None = None
    model: str | None = None
    args: str = ""  # extra arguments appended to the preset's command line
    timeout: Duration = 900.0
    # Inside the sandbox, as for the command proposer. An agent calls its model's API, so it
    # gets the network; env and writable default to what the preset's CLI needs (its API key
    # variables, its own folder in the home directory).
    network: bool = True
    env: list[EnvName] | None = None
    writable: list[str] | None = None

    @model_validator(mode="after")
    def _generic_needs_command(self) -> "AgentProposerSection":
        if self.preset == "generic" and not self.command:
            raise ValueError("the generic agent preset needs a command, e.g. command = 'my-agent < \"$RATCHET_BRIEF_FILE\"'")
        return self


ProposerSection = Annotated[
    Union[
        OptunaProposerSection,
        CommandProposerSection,
        LLMProposerSection,
        AgentProposerSection,
        HybridProposerSection,
    ],
    Field(discriminator="kind"),
]


class SandboxSection(_Section):
    """How untrusted processes run: proposer commands and every measurement command."""

    # auto: bubblewrap where it works, else a warning; required: refuse to run without it;
    # off: no sandbox (resource limits, the environment allowlist and process cleanup stay).
    mode: Literal["auto", "required", "off"] = "auto"
    network: bool = False  # whether measurements reach the network
    env: list[EnvName] = []  # environment variables passed besides the allowlist ("CUDA_*" ok)
    writable: list[str] = []  # paths measurements may write besides the checkout and /tmp
    # Paths under /tmp or /dev/shm that sandboxed commands (measurements and proposers) read:
    # the sandbox's own /tmp hides the host's. Bound read-only. Not needed for ratchet's
    # interpreter, the folders on PATH and the paths a command line names: those come along.
    readable: list[str] = []
    # Per measurement command. memory is address space per process (leave it unset for GPU
    # programs, which reserve far more than they use); processes is enforced with a pids
    # cgroup where ratchet can make one (moving each command into it costs 5 to 45 ms on
    # cgroup v1), else RLIMIT_NPROC; output is what the logs keep from the start and from
    # the end of each stream.
    memory: Size | None = None
    cpu_time: Duration | None = None
    processes: int | None = Field(default=None, ge=1)
    file_size: Size | None = None
    output: Size = 1024 * 1024

    @field_validator("readable")
    @classmethod
    def _not_all_of_tmp(cls, paths: list[str]) -> list[str]:
        # Bound read-only over the private /tmp, it would leave commands nowhere to write.
        for path in paths:
            if path.rstrip("/") in ("/tmp", "/dev/shm", ""):
                raise ValueError(f"{path!r} as a whole cannot be readable (commands write to their own); name the folders under it")
        return paths


class Config(_Section):
    run: RunSection = RunSection()
    scope: ScopeSection
    metric: MetricSection
    guards: list[GuardSection] = []
    holdout: HoldoutSection | None = None
    review: ReviewSection = ReviewSection()
    verdict: VerdictSection = VerdictSection()
    budget: BudgetSection = BudgetSection()
    proposer: ProposerSection
    sandbox: SandboxSection = SandboxSection()

    @model_validator(mode="after")
    def _unique_guard_names(self) -> "Config":
        names = [guard.name for guard in self.guards]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"guard names must be unique (repeated: {', '.join(duplicates)})")
        unknown = sorted(self.review.guards() - set(names))
        if unknown:
            raise ValueError(f"review.when names no [[guards]] called {', '.join(unknown)}")
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


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The section models a field's value may be, through Optional, list, dict and unions."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models(arg)]


def _known_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys the section at ``loc`` accepts (empty when it cannot be told)."""
    models: list[type[BaseModel]] = [Config]
    dict_key_next = False  # the step after a dict-typed field (e.g. prices) is the user's own key
    for item in loc:
        if isinstance(item, int) or dict_key_next:
            dict_key_next = False
            continue
        # A discriminated union's tag ("command") is a location step, not a key: pick its model.
        tagged = [m for m in models if "kind" in m.model_fields and item in get_args(m.model_fields["kind"].annotation)]
        if len(models) > 1 and tagged:
            models = tagged
            continue
        fields = [f for m in models for name, f in m.model_fields.items() if item in (name, f.alias)]
        if not fields:
            return []
        models = _models(fields[0].annotation)
        dict_key_next = get_origin(fields[0].annotation) is dict
    if len(models) != 1:
        return []
    return [field.alias or name for name, field in models[0].model_fields.items()]


def _problem(error: Any, data: dict[str, Any]) -> str:
    """One pydantic error as the user would say it: ``budget.wall: expected a duration ...``."""
    loc = tuple(error["loc"])
    where = _location(loc, data)
    kind = error["type"]
    message = error["msg"]
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(loc[-1]), _known_keys(loc[:-1]), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"{where} is not a known setting{hint}"
    if kind == "missing":
        message = "is required"
    elif kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag")
        message = f"unknown kind {tag!r}; expected one of: {error.get('ctx', {}).get('expected_tags', 'optuna, command')}"
    elif kind == "union_tag_not_found":
        message = f"needs a kind ({error.get('ctx', {}).get('expected_tags', 'optuna, command')})"
    elif message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    elif "input" in error and kind not in ("model_type",):
        message = f"{message[0].lower()}{message[1:]} (got {error['input']!r})"
    return f"{where + ': ' if where else ''}{message}"


def format_validation_error(path: Path | str, error: ValidationError, data: dict[str, Any]) -> str:
    """Every problem, on one line; unknown keys first, since a typo explains a "required" beside it."""
    errors = sorted(error.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    problems = list(dict.fromkeys(_problem(e, data) for e in errors))
    return f"{path}: {'; '.join(problems)}"


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
