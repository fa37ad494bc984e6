"""The compliance share, from checkov's JSON report on stdin (`checkov -o json ... | python3
policy/score.py`): the checks passed, in percent of passed + failed, as `compliance: 39.2405`.

Skipped checks are left out of both, as checkov's own summary does: that is why the skips
guard keeps new skip comments from buying a higher share.

A report that cannot be trusted gives no number (exit 1 and a one-line reason, a `crash` for
ratchet):
- no report at all (checkov not found, or it crashed), or JSON that is not checkov's;
- files checkov could not parse (a broken file drops its failed checks from the count);
- a resource of policy/inventory.txt missing from the scan: deleted, renamed, or switched off
  with `count = 0` (which checkov honours). Those are the infrastructure; a candidate may
  configure them, never make them disappear, and a share of something else is no score.
  (Checked here rather than by a guard: a guard would pay for a second scan.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

INVENTORY = Path(__file__).with_name("inventory.txt")


def fail(message: str) -> None:
    print(f"score: {message}", file=sys.stderr)
    raise SystemExit(1)


def reports(text: str) -> list[dict]:
    if not text.strip():
        fail("no report on stdin (is checkov installed and on PATH?)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"stdin is not checkov's JSON report ({exc}): {text.strip()[:120]!r}")
    # One framework: one report object; several: a list of them.
    found = data if isinstance(data, list) else [data]
    if not all(isinstance(report, dict) and "summary" in report for report in found):
        fail("stdin is JSON, but not checkov's report (no summary)")
    return found


def inventory() -> list[str]:
    lines = [line.split("#")[0].strip() for line in INVENTORY.read_text().splitlines()]
    return [address for address in lines if address]


def main() -> None:
    found = reports(sys.stdin.read())
    broken = [path for report in found for path in report.get("results", {}).get("parsing_errors", [])]
    if broken or any(report["summary"].get("parsing_errors", 0) for report in found):
        fail(f"checkov could not parse {', '.join(broken) or 'some files'}: fix the syntax")
    scanned = {
        check["resource"]
        for report in found
        for kind in ("passed_checks", "failed_checks", "skipped_checks")
        for check in report.get("results", {}).get(kind, [])
    }
    listed = inventory()
    missing = [address for address in listed if address not in scanned]
    if missing:
        fail(f"missing from the scan: {', '.join(missing)} (listed in policy/inventory.txt; deleted, renamed or count = 0?)")
    passed, failed, skipped = (sum(report["summary"][key] for report in found) for key in ("passed", "failed", "skipped"))
    if passed + failed == 0:
        fail("the scan ran no checks: nothing was scanned")
    print(f"{passed} passed, {failed} failed, {skipped} skipped; all {len(listed)} resources of policy/inventory.txt scanned")
    print(f"compliance: {100 * passed / (passed + failed):.4f}")


if __name__ == "__main__":
    main()
