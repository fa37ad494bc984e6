"""Reading the landing page's copy (landing/copy.toml) for the rubric and the claims guard."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

ABOVE_THE_FOLD = ("banner", "headline", "subheadline", "cta", "proof")


def load(path: str) -> dict[str, str]:
    """Each field of the copy as one string (the features joined); one clear line if it is broken."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        sys.exit(f"{path}: cannot read the copy: {exc}")
    missing = [name for name in (*ABOVE_THE_FOLD, "features") if name not in data]
    if missing:
        sys.exit(f"{path}: missing {', '.join(missing)}")
    fields = {name: str(data[name]) for name in ABOVE_THE_FOLD}
    fields["features"] = "\n".join(str(item) for item in data["features"])
    return fields
