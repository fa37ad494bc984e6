"""Finding a target's repository, config and ledger from where the user stands."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ratchet.config import CONFIG_FILE, Config, load_config
from ratchet.ledger import LEDGER_FILE, Ledger, RunInfo
from ratchet.state import STATE_DIR
from ratchet.workspace.git import WorkspaceError, find_repo_root


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
        return load_config(self.config_path)

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
        if self.config_path.exists():
            try:
                info = ledger.get_run(self.config().run.name)
            except Exception:  # a broken config must not stop `status` from reading the ledger
                info = None
            if info is not None:
                return info
        runs = ledger.runs()
        if not runs:
            raise ProjectError("the ledger has no run yet (`ratchet run`)")
        return runs[-1]


__all__ = ["Project", "ProjectError", "WorkspaceError"]
