"""What each attack came to (caught, not caught, skipped) and the probe's report of them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["caught", "not caught", "skipped"]

EXIT_SAFE = 0  # nothing got through
EXIT_NOT_CAUGHT = 1  # at least one attack would get through
EXIT_CANNOT_PROBE = 2  # a config error, or the metric fails on the champion

# The attacks, in the order they are tried, with what each one does (for the output).
ATTACKS: dict[str, str] = {
    "fake-line-before": "print a fake metric line before the real one",
    "fake-line-after": "print a fake metric line after the real one (at interpreter exit)",
    "stdout-replaced": "replace sys.stdout so the real metric line carries a fake number",
    "harness-rewrite": "rewrite a harness file at run time",
    "write-outside": "write outside the checkout",
    "read-holdout": "read the holdout command's files",
    "daemon": "leave a daemon (a double-forked process)",
    "timeout": "run past the timeout",
    "new-harness-file": "create a new file the harness would load",
}


class ProbeError(Exception):
    """The probe cannot run (one line for the user)."""


@dataclass(frozen=True)
class AttackResult:
    attack: str
    status: Status
    detail: str
    fix: str = ""

    @property
    def title(self) -> str:
        return ATTACKS[self.attack]


@dataclass
class ProbeReport:
    where: str  # "HEAD (abc1234)" or "the champion of run 'x' (abc1234)"
    metric: str
    champion_value: float
    fake_value: float | None
    sandbox: bool
    notes: list[str]
    results: list[AttackResult] = field(default_factory=list)
    log_dir: str = ""

    @property
    def exit_code(self) -> int:
        return EXIT_NOT_CAUGHT if any(r.status == "not caught" for r in self.results) else EXIT_SAFE

    def counts(self) -> dict[str, int]:
        return {status: sum(1 for r in self.results if r.status == status) for status in ("caught", "not caught", "skipped")}

    def summary(self) -> str:
        counts = self.counts()
        text = f"{counts['not caught']} not caught, {counts['caught']} caught, {counts['skipped']} skipped"
        if counts["not caught"]:
            names = ", ".join(r.attack for r in self.results if r.status == "not caught")
            return f"{text}: a proposer could get through with {names}"
        return f"{text}: nothing got through"

    def to_json(self) -> dict[str, Any]:
        return {
            "where": self.where, "metric": self.metric, "champion_value": self.champion_value,
            "fake_value": self.fake_value, "sandbox": self.sandbox, "notes": self.notes,
            "attacks": [{**asdict(r), "title": r.title} for r in self.results],
            "summary": self.counts(), "exit_code": self.exit_code, "log_dir": self.log_dir,
        }  # fmt: skip


def names(paths: list[str], limit: int = 3) -> str:
    """A few paths for a finding, and how many more."""
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")
