"""How a run is shown: the terminal view, the HTML report, the PNG plot and the live dashboard."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingDependency(Exception):
    """An optional extra is not installed; the message says which and how to get it."""


def require(module: str, feature: str) -> ModuleType:
    """Import an optional dependency, or say in one line how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(f"{feature} needs {module.split('.')[0]}: pip install 'ratchet[report]'") from None
