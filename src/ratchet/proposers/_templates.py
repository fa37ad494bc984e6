"""The prompt templates (Jinja2): bundled in ``proposers/templates/``, overridable by the user.

``[proposer] templates = "prompts"`` names a folder (relative to the target) whose ``*.j2`` files
replace the bundled ones of the same name; the others stay in force, so a user can change only
``context.j2`` (what is shown) or only ``system.j2`` (the instructions).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ratchet.proposers.base import FatalProposerError, ProposerError

TEMPLATE_NAMES = ("system.j2", "context.j2", "prompt.j2", "repair.j2", "duplicate.j2", "agent.j2")


class Templates:
    def __init__(self, folder: str | None, root: Path) -> None:
        import jinja2  # lazily: `ratchet --help` should not pay for it

        loaders: list[jinja2.BaseLoader] = []
        if folder:
            path = (root / folder).resolve()
            if not path.is_dir():
                raise ProposerError(f"[proposer] templates: {folder!r} is not a folder (looked in {path})")
            loaders.append(jinja2.FileSystemLoader(str(path)))
        loaders.append(jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")))
        self._env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,  # a misspelt variable is an error, not an empty string
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            autoescape=False,
        )
        self._jinja = jinja2
        for name in TEMPLATE_NAMES:  # syntax errors surface when the run starts
            self._load(name)

    def _load(self, name: str) -> Any:
        try:
            return self._env.get_template(name)
        except self._jinja.TemplateSyntaxError as exc:
            raise ProposerError(f"template {exc.filename or name}:{exc.lineno}: {exc.message}") from None

    def render(self, name: str, **variables: Any) -> str:
        try:
            text: str = self._load(name).render(**variables)
            return text.strip() + "\n"
        except self._jinja.TemplateError as exc:  # it would fail the same way every time
            raise FatalProposerError(f"template {name}: {exc}") from None
