"""Finding a target's repository, config and ledger from where the user stands."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.config import CONFIG_FILE
from ratchet.ledger import LEDGER_FILE, Ledger, RunInfo
from ratchet.state import STATE_DIR
from ratchet.workspace.git import WorkspaceError, find_repo_root

if TYPE_CHECKING:
    from ratchet.config import Config


class ProjectError(Exception):
    """One line for the user."""


@dataclass
class Project:
    root: Path
    config_path: Path

    @classmethod
    def find(cls, start: Path, config: Path | None = None) -> "Project":
        root = find_repo_root(start)
        config_path = config if config is not None else root / CONFIG_FILE
        if not config_path.is_absolute():
            config_path = Path.cwd() / config_path
        return cls(root=root, config_path=config_path)

    def config(self) -> Config:
        from ratchet.config import load_config  # the models: only for a command that needs the settings

        return load_config(self.config_path)

    def raw_config(self) -> dict[str, Any]:
        """ratchet.toml as TOML says it, unchecked ({} when missing or unreadable): what a reader
        of the ledger needs of it (the run's name, the sandbox's mode) without the models."""
        try:
            return tomllib.loads(self.config_path.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return {}

    def configured_run(self) -> str | None:
        """The config's run name ([run] name, "main" by default), or None without a config."""
        if not self.config_path.exists():
            return None
        run = self.raw_config().get("run", {})
        name = run.get("name", "main") if isinstance(run, dict) else None
        return name if isinstance(name, str) else None

    def ledger(self) -> Ledger:
        path = self.root / STATE_DIR / LEDGER_FILE
        if not path.exists():
            raise ProjectError(f"no ledger in {self.root / STATE_DIR}: no run has started here yet (`ratchet run`)")
        return Ledger(path)

    def pick_run(self, ledger: Ledger, name: str | None) -> RunInfo:
        """The named run; else the config's run if it exists; else the newest run."""
        if name is not None:
            info = ledger.get_run(name)
            if info is None:
                known = ", ".join(r.name for r in ledger.runs()) or "none"
                raise ProjectError(f"no run named {name!r} (runs: {known})")
            return info
        # Read without validating the whole config: a broken one must not stop `status` from
        # reading the ledger, and the models cost more than the rest of `status`.
        configured = self.configured_run()
        info = ledger.get_run(configured) if configured is not None else None
        if info is not None:
            return info
        runs = ledger.runs()
        if not runs:
            raise ProjectError("the ledger has no run yet (`ratchet run`)")
        return runs[-1]


__all__ = ["Project", "ProjectError", "WorkspaceError"]
