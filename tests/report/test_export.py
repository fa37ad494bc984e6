"""`ratchet export`: ratchet's lossless results.tsv, and autoresearch's five columns read by its own notebook."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from conftest import NUMBER_CONFIG, make_repo, run_cli, sh

from ratchet.experiment import Experiment, GuardResult, Verdict
from ratchet.ledger import Ledger, RunInfo

# The code cells of autoresearch's analysis.ipynb, verbatim (see the file's header).
NOTEBOOK = Path(__file__).parents[1] / "data" / "autoresearch_analysis.py"
STARTED = 1_767_225_600.123  # 2026-01-01T00:00:00.123Z


def _commit(repo: Path, text: str) -> str:
    (repo / "value.txt").write_text(text)
    sh(repo, "git", "commit", "-qam", text)
    return sh(repo, "git", "rev-parse", "HEAD").strip()


def _ledger_with_every_verdict(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A target whose ledger holds one experiment of each verdict (and one still running)."""
    repo = make_repo(tmp_path / "r", {"value.txt": "10\n", "bench.py": "print(1)\n"}, NUMBER_CONFIG.replace("{python}", sys.executable))
    base = sh(repo, "git", "rev-parse", "HEAD").strip()
    sh(repo, "git", "checkout", "-qb", "ratchet/t")
    first, second = _commit(repo, "8.5\n"), _commit(repo, "7.25\n")
    sh(repo, "git", "checkout", "-q", "main")
    ledger = Ledger(repo / ".ratchet" / "ledger.sqlite")
    ledger.create_run(RunInfo("t", STARTED, base, "ratchet/t", "number", "minimize", {}))
    rows: list[tuple[Verdict | None, float | None, str | None, str, float | None]] = [
        (Verdict.BASELINE, 10.0, None, "baseline", 1.5),
        (Verdict.KEEP, 8.5, first, "halve the learning rate", 1.5),
        (Verdict.DISCARD, 9.1, None, 'say "wider"\tlayers\nplease', 2.25),
        (Verdict.CRASH, None, None, "double model width", 3.0),
        (Verdict.TIMEOUT, None, None, "bigger batch", None),
        (Verdict.INVALID, None, None, "edit the harness", None),
        (Verdict.KEEP, 7.250000000000001, second, "cosine schedule", 1.6),
        (Verdict.TAMPERED, 1.0, None, "rewrite bench.py", 1.0),
        (Verdict.OVERFIT, 7.0, None, "memorize the eval set", 1.6),
        (Verdict.ABANDONED, None, None, "deeper net", None),
        (None, None, None, "still measuring", None),
    ]
    parent = base
    for number, (verdict, metric, commit, hypothesis, memory) in enumerate(rows):
        ledger.begin(
            Experiment(
                run="t", id=number, parent_commit=parent, proposer="baseline" if number == 0 else "command",
                started=STARTED + number, state="running" if verdict is None else "done", verdict=verdict,
                reason=f"reason {number}", hypothesis=hypothesis, metric=metric, commit=commit,
                guards=[GuardResult("tests", passed=number != 3, exit_code=0 if number != 3 else 1, value=0.1 + 0.2)],
                proposal_meta={"params": {"lr": 0.01}}, ended=None if verdict is None else STARTED + number + 0.5,
                log_dir=str(repo / ".ratchet" / "logs" / str(number)), hardware="fp0", memory_gb=memory,
                tokens_in=100 if number == 1 else None, cost_usd=0.0125 if number == 1 else None,
                extra={"samples": [metric]} if metric is not None else {},
            )  # fmt: skip
        )
        parent = commit or parent
    ledger.close()
    return repo, {"base": base, "first": first, "second": second}


def test_autoresearch_export_is_what_karpathys_notebook_reads(tmp_path: Path):
    repo, shas = _ledger_with_every_verdict(tmp_path)
    result = run_cli(repo, "export", "--format", "autoresearch", "-o", "results.tsv")
    assert result.returncode == 0, result.stderr
    assert "wrote results.tsv (10 experiments)" in result.stdout
    # program.md's conventions: 7-character commit, %.6f, %.1f, 0.000000 and 0.0 for a crash.
    assert (repo / "results.tsv").read_text() == (
        "commit\tval_bpb\tmemory_gb\tstatus\tdescription\n"
        f"{shas['base'][:7]}\t10.000000\t1.5\tkeep\tbaseline\n"
        f"{shas['first'][:7]}\t8.500000\t1.5\tkeep\thalve the learning rate\n"
        '\t9.100000\t2.2\tdiscard\t"say ""wider"" layers please"\n'
        "\t0.000000\t0.0\tcrash\tdouble model width\n"
        "\t0.000000\t0.0\tcrash\tbigger batch (timeout)\n"
        "\t0.000000\t0.0\tcrash\tedit the harness (invalid)\n"
        f"{shas['second'][:7]}\t7.250000\t1.6\tkeep\tcosine schedule\n"
        "\t0.000000\t0.0\tcrash\trewrite bench.py (tampered)\n"
        "\t7.000000\t1.6\tdiscard\tmemorize the eval set (overfit)\n"
        "\t0.000000\t0.0\tcrash\tdeeper net (abandoned)\n"
    )
    analysis = subprocess.run(
        [sys.executable, str(NOTEBOOK)], cwd=repo, capture_output=True, text=True, timeout=120,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )  # fmt: skip
    assert analysis.returncode == 0, analysis.stderr
    printed = analysis.stdout
    assert "Columns: ['commit', 'val_bpb', 'memory_gb', 'status', 'description']" in printed
    assert "Total experiments: 10" in printed
    assert "Keep rate: 3/5 = 60.0%" in printed
    assert "Baseline val_bpb:  10.000000" in printed and "Best val_bpb:      7.250000" in printed
    assert "Best experiment:   cosine schedule" in printed
    assert "   1  +1.500000  8.500000  halve the learning rate" in printed
    assert "   2  +1.250000  7.250000  cosine schedule" in printed
    assert (repo / "progress.png").stat().st_size > 0


def test_default_export_is_lossless(tmp_path: Path):
    repo, shas = _ledger_with_every_verdict(tmp_path)
    result = run_cli(repo, "export", "-o", "-")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout), delimiter="\t"))
    assert list(rows[0]) == [
        "id", "verdict", "number", "commit", "parent_commit", "memory_gb", "description", "reason", "proposer",
        "started", "ended", "duration_s", "guards", "hardware", "tokens_in", "tokens_out", "cost_usd", "state",
        "log_dir", "proposal", "extra",
    ]  # fmt: skip
    assert [row["verdict"] for row in rows] == [
        "baseline", "keep", "discard", "crash", "timeout", "invalid", "keep", "tampered", "overfit", "abandoned", "",
    ]  # fmt: skip
    assert rows[-1]["state"] == "running"
    # Full shas; the baseline scored its parent; a discarded candidate was never committed.
    assert [row["commit"] for row in rows[:4]] == [shas["base"], shas["first"], "", ""]
    assert rows[7]["parent_commit"] == shas["second"]
    assert float(rows[6]["number"]) == 7.250000000000001 and rows[7]["number"] == "1.0"
    assert rows[2]["memory_gb"] == "2.25" and rows[4]["number"] == rows[4]["memory_gb"] == ""
    assert rows[2]["description"] == 'say "wider" layers please'
    assert json.loads(rows[3]["guards"]) == [
        {"name": "tests", "passed": False, "exit_code": 1, "value": 0.30000000000000004, "reason": "", "skipped": False}
    ]
    assert json.loads(rows[1]["proposal"]) == {"params": {"lr": 0.01}} and json.loads(rows[1]["extra"]) == {"samples": [8.5]}
    assert datetime.fromisoformat(rows[1]["started"]).timestamp() == STARTED + 1
    assert rows[1]["duration_s"] == "0.5" and rows[1]["tokens_in"] == "100" and rows[1]["cost_usd"] == "0.0125"
    assert rows[1]["log_dir"] == str(repo / ".ratchet" / "logs" / "1")


def test_autoresearch_export_of_a_maximized_metric_says_the_notebook_minimizes(tmp_path: Path):
    repo, _ = _ledger_with_every_verdict(tmp_path)
    ledger = Ledger(repo / ".ratchet" / "ledger.sqlite")
    ledger.create_run(RunInfo("up", STARTED + 1, "0" * 40, "ratchet/up", "score", "maximize", {}))
    ledger.close()
    result = run_cli(repo, "export", "--run", "up", "--format", "autoresearch", "-o", "-")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "commit\tval_bpb\tmemory_gb\tstatus\tdescription\n"
    assert "this run maximizes score; analysis.ipynb takes lower val_bpb as better" in result.stderr
    bad = run_cli(repo, "export", "--format", "karpathy")
    assert bad.returncode == 2 and "karpathy" in bad.stderr and "Traceback" not in bad.stderr
