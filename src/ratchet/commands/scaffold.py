"""``ratchet init``: write a commented ratchet.toml and a program.md to start from, or a recipe's."""

from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from ratchet.config import CONFIG_FILE
from ratchet.workspace.git import exclude_state_dir


class ScaffoldError(Exception):
    pass


def default_run_name() -> str:
    return time.strftime("run-%Y%m%d").lower()


def write_starter_files(root: Path, *, force: bool = False) -> list[Path]:
    """Write ratchet.toml and program.md (never overwriting unless ``force``); return what was written."""
    templates = resources.files("ratchet") / "templates"
    config_text = (templates / "ratchet.toml").read_text().replace("{run_name}", default_run_name())
    brief_text = (templates / "program.md").read_text()
    targets = [(root / CONFIG_FILE, config_text), (root / "program.md", brief_text)]
    existing = [path for path, _ in targets if path.exists()]
    if existing and not force:
        names = ", ".join(path.name for path in existing)
        raise ScaffoldError(f"{names} already exist{'s' if len(existing) == 1 else ''} in {root}; use --force to overwrite")
    for path, text in targets:
        path.write_text(text)
    exclude_state_dir(root)
    return [path for path, _ in targets]


# ---------------------------------------------------------------- recipes

RECIPE_FILE = "recipe.toml"


@dataclass(frozen=True)
class Recipe:
    """A bundled example that ``ratchet init --recipe NAME`` starts a project from.

    Its folder (``ratchet/examples/NAME``, also ``examples/NAME`` in the repository) is a
    complete small target that ``ratchet run`` improves as it is; ``recipe.toml`` says what it
    is for and which of its files are the starting point for your own project (the config,
    the brief and the harness skeleton), as opposed to the example's own code.
    """

    name: str
    title: str
    summary: str
    metric: str
    proposer: str  # which proposers fit, in words
    experiment_time: str  # how long one experiment takes, in words
    init: tuple[str, ...]  # files (or folders) `ratchet init --recipe` writes, relative to the recipe


def recipes() -> list[Recipe]:
    """Every bundled example that carries a recipe.toml, by name."""
    root = resources.files("ratchet") / "examples"
    found = []
    for item in sorted(root.iterdir(), key=lambda entry: entry.name):
        if item.is_dir() and (item / RECIPE_FILE).is_file():
            found.append(_read_recipe(item.name, (item / RECIPE_FILE).read_text()))
    return found


def _read_recipe(name: str, text: str) -> Recipe:
    data = tomllib.loads(text)
    try:
        return Recipe(
            name=name, title=data["title"], summary=" ".join(data["summary"].split()), metric=data["metric"],
            proposer=data["proposer"], experiment_time=data["experiment_time"], init=tuple(data["init"]),
        )  # fmt: skip
    except (KeyError, TypeError) as exc:  # a bundled file: a mistake here is ratchet's, caught by its tests
        raise ScaffoldError(f"examples/{name}/{RECIPE_FILE} is incomplete: {exc}") from None


def recipe_guide(name: str) -> Traversable:
    """The recipe's README: how to point its files at a project of your own (where pip put it)."""
    return resources.files("ratchet") / "examples" / name / "README.md"


def write_recipe(root: Path, name: str, *, force: bool = False) -> list[Path]:
    """Copy recipe ``name``'s starting files into ``root`` (never overwriting unless ``force``)."""
    known = {recipe.name: recipe for recipe in recipes()}
    recipe = known.get(name)
    if recipe is None:
        raise ScaffoldError(f"no recipe named {name!r} (recipes: {', '.join(known)}; `ratchet init --list-recipes` describes them)")
    source = resources.files("ratchet") / "examples" / name
    files: list[tuple[Path, bytes]] = []
    with resources.as_file(source) as folder:
        for entry in recipe.init:
            path = folder / entry
            for item in sorted(path.rglob("*")) if path.is_dir() else [path]:
                if item.is_file() and "__pycache__" not in item.parts:
                    files.append((root / item.relative_to(folder), item.read_bytes()))
    existing = [path for path, _ in files if path.exists()]
    if existing and not force:
        names = ", ".join(str(path.relative_to(root)) for path in existing[:5])
        raise ScaffoldError(f"{names} already exist{'s' if len(existing) == 1 else ''} in {root}; use --force to overwrite")
    for path, data in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    exclude_state_dir(root)
    return [path for path, _ in files]


def init_project(root: Path, *, recipe: str | None = None, agent: str | None = None, force: bool = False) -> list[str]:
    """``ratchet init``: a recipe's files, or a coding agent's glue, or the starter ratchet.toml and
    program.md; return what to tell the user, one line each. Raises :class:`ScaffoldError`."""
    if recipe is not None:
        written = write_recipe(root, recipe, force=force)
        then = f"Read the comments in ratchet.toml (and {recipe_guide(recipe)}), point them at your project, then: ratchet doctor && ratchet run"
        return [f"wrote {path}" for path in written] + [then]
    if agent is not None:
        # Imported here: agent_glue builds on this module.
        from ratchet.commands.agent_glue import write_agent_files

        return write_agent_files(root, agent, force=force)
    written = write_starter_files(root, force=force)
    return [f"wrote {path}" for path in written] + ["Edit the scope, the metric command and the proposer in ratchet.toml, then: ratchet run"]
