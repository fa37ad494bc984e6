"""``ratchet init``: write a commented ratchet.toml and a program.md to start from."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

from ratchet.config import CONFIG_FILE
from ratchet.workspace import exclude_state_dir


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
