"""``[proposer]``: one section per kind, told apart by ``kind``, and the parameter ranges the
optuna and hybrid proposers search."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ratchet.config.sections import _Section
from ratchet.config.values import Duration, EnvName

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
