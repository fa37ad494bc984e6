"""The whole file: :class:`Config` (the root of ``ratchet.toml``), its parsing, and its
one-line validation errors."""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError, model_validator

# Both live in the package's light part (no pydantic): every face names them before it parses.
from ratchet.config import CONFIG_FILE as CONFIG_FILE
from ratchet.config import ConfigError as ConfigError
from ratchet.config.proposers import ProposerSection
from ratchet.config.sections import (
    BudgetSection,
    ExecutorSection,
    GuardSection,
    HoldoutSection,
    MetricSection,
    ReviewSection,
    RunSection,
    SandboxSection,
    ScopeSection,
    VerdictSection,
    _Section,
)


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
    executor: ExecutorSection = ExecutorSection()

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

    def with_run_name(self, name: str) -> "Config":
        """This config under another run name (``ratchet run --name``); a ValueError (pydantic's
        ValidationError) when the name cannot be a branch name."""
        run = type(self.run).model_validate({**self.run.model_dump(), "name": name})
        return self.model_copy(update={"run": run})


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
