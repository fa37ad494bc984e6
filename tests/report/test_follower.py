"""Reads that do not grow: the ledger's queries by index (rows after an id, the last N, the last id,
the rows written since a revision) and the dashboard's read model kept between polls (RunFollower):
a poll gets only what its asker lacks, a row updated in place included."""

from __future__ import annotations

import sqlite3
import sys
from dataclasses import asdict
from pathlib import Path

from conftest import NUMBER_CONFIG, make_repo, sh

from ratchet.experiment import Experiment, Verdict
from ratchet.ledger import Ledger, RunInfo
from ratchet.report.data import RunFollower, run_view
from ratchet.report.html import finite_json


def _run(tmp_path: Path, n: int = 6) -> tuple[Path, Ledger, RunInfo]:
    """A ledger of a baseline (10) and ``n`` discards (11, 12, …) in a real repository."""
    repo = make_repo(tmp_path / "r", {"value.txt": "10\n"}, NUMBER_CONFIG.replace("{python}", sys.executable))
    base = sh(repo, "git", "rev-parse", "HEAD").strip()
    ledger = Ledger(repo / ".ratchet" / "ledger.sqlite")
    info = RunInfo("t", 1.0, base, "ratchet/t", "number", "minimize", {})
    ledger.create_run(info)
    ledger.begin(Experiment("t", 0, base, "baseline", 1.0, "done", Verdict.BASELINE, "", "baseline", 10.0))
    for i in range(1, n + 1):
        ledger.begin(Experiment("t", i, base, "command", 1.0 + i, "done", Verdict.DISCARD, "not better", f"try {i}", 10.0 + i))
    return repo, ledger, info


def _add(ledger: Ledger, info: RunInfo, **changes: object) -> Experiment:
    e = Experiment("t", ledger.next_id("t"), info.base_commit, "command", 100.0, **changes)  # type: ignore[arg-type]
    ledger.begin(e)
    return e


def test_the_ledger_reads_a_part_of_a_run_by_its_index(tmp_path: Path) -> None:
    _, ledger, info = _run(tmp_path)
    assert ledger.last_id("t") == 6 and ledger.last_id("nope") is None and ledger.next_id("t") == 7
    assert [e.id for e in ledger.experiments("t", after=4)] == [5, 6]
    assert [e.id for e in ledger.experiments("t", last=3)] == [4, 5, 6]  # oldest first
    assert [e.id for e in ledger.experiments("t", last=0)] == []
    assert [e.id for e in ledger.experiments("t", after=1, last=2)] == [5, 6]
    assert [e.id for e in ledger.iter_experiments("t")] == list(range(7))
    # Each query is answered by an index, not by reading every row.
    plans = [
        " ".join(row[3] for row in ledger._db.execute(f"EXPLAIN QUERY PLAN SELECT id FROM experiments WHERE {where}"))
        for where in ("run = 't' AND id > 4", "run = 't' ORDER BY id DESC LIMIT 3", "run = 't' AND revision > 3")
    ]
    assert all("USING" in plan and "INDEX" in plan for plan in plans), plans
    ledger.close()


def test_the_revision_counts_every_write_of_a_run(tmp_path: Path) -> None:
    _, ledger, info = _run(tmp_path, n=2)
    revision, reset = ledger.revision("t")
    assert revision == 3 and reset == 0 and ledger.revision("nope") == (0, 0)
    running = _add(ledger, info, hypothesis="")
    assert ledger.revision("t")[0] == 4
    assert [e.id for e in ledger.experiments("t", changed_since=3)] == [3]
    # An update in place (the state, the hypothesis arriving) moves the revision and marks the row.
    running.state, running.hypothesis = "measuring", "halve it"
    ledger.update(running)
    assert ledger.revision("t")[0] == 5
    assert [(e.id, e.state) for e in ledger.experiments("t", changed_since=4)] == [(3, "measuring")]
    assert ledger.experiments("t", changed_since=5) == []
    ledger.add_event("t", "calibration", {"sd_single": 0.1})
    assert ledger.revision("t")[0] == 6
    ledger.delete(running)
    assert ledger.revision("t") == (7, 7)  # a delete says so: a follower reads the run again
    # Any writer of the file counts: the triggers live in it (another connection, plain SQL).
    other = sqlite3.connect(ledger.path, isolation_level=None)
    other.execute("UPDATE experiments SET reason = 'edited' WHERE run = 't' AND id = 1")
    other.close()
    assert ledger.revision("t")[0] == 8 and [e.id for e in ledger.experiments("t", changed_since=7)] == [1]
    ledger.close()


def _poll(follower: RunFollower, ledger: Ledger, info: RunInfo, answer: dict | None = None) -> dict:
    cursor = (answer or {}).get("cursor") or {}
    return follower.poll(
        ledger, info, after=cursor.get("last_id"), revision=cursor.get("revision"), token=cursor.get("token")
    ).data


def test_a_poll_gets_only_what_its_asker_lacks(tmp_path: Path) -> None:
    repo, ledger, info = _run(tmp_path)
    follower = RunFollower(repo, "t")
    first = _poll(follower, ledger, info)
    assert first["complete"] and [r["id"] for r in first["experiments"]] == list(range(7))
    assert first["experiment_count"] == 6 and first["counts"] == {"baseline": 1, "discard": 6}
    assert first["cursor"]["last_id"] == 6

    # Nothing new: no rows, no summary, only the live fields.
    quiet = _poll(follower, ledger, info, first)
    assert not quiet["changed"] and not quiet["complete"] and quiet["experiments"] == []
    assert "counts" not in quiet and "in_flight" in quiet and "spending" in quiet

    # A new experiment in flight: that row alone, with the summary.
    running = _add(ledger, info)
    grown = _poll(follower, ledger, info, quiet)
    assert grown["changed"] and not grown["complete"]
    assert [(r["id"], r["verdict"], r["state"]) for r in grown["experiments"]] == [(7, None, "running")]
    assert grown["counts"]["running"] == 1

    # The same row updated in place (its state, its hypothesis, then its verdict) still shows.
    running.state, running.hypothesis = "measuring", "lower the number"
    ledger.update(running)
    moved = _poll(follower, ledger, info, grown)
    assert [(r["id"], r["state"], r["hypothesis"]) for r in moved["experiments"]] == [(7, "measuring", "lower the number")]
    running.state, running.verdict, running.metric = "done", Verdict.KEEP, 9.0
    ledger.update(running)
    kept = _poll(follower, ledger, info, moved)
    assert [(r["id"], r["verdict"], r["best"]) for r in kept["experiments"]] == [(7, "keep", 9.0)]
    assert kept["champion"] == 9.0 and kept["champion_id"] == 7

    # A row changed in place changes the view of the rows after it (the running best): they come too.
    earlier = ledger.experiment("t", 2)
    assert earlier is not None
    earlier.verdict, earlier.metric = Verdict.KEEP, 9.5
    ledger.update(earlier)
    rewritten = _poll(follower, ledger, info, kept)
    # (7 now beat 9.5, not 10: its comparison changed; its best stays its own 9.0.)
    assert [r["id"] for r in rewritten["experiments"]] == [2, 3, 4, 5, 6, 7]
    assert [r["best"] for r in rewritten["experiments"]] == [9.5] * 5 + [9.0]
    assert rewritten["experiments"][-1]["champion"] == 9.5

    # A delete, or a cursor from another server (its token): everything again.
    ledger.delete(running)
    after_delete = _poll(follower, ledger, info, rewritten)
    assert after_delete["complete"] and [r["id"] for r in after_delete["experiments"]] == list(range(7))
    stranger = follower.poll(ledger, info, after=6, revision=after_delete["cursor"]["revision"], token="other").data
    assert stranger["complete"] and len(stranger["experiments"]) == 7

    # What the cache holds is what one read of the whole run says, and each row is sent as all of
    # its fields, JSON-safe (a spread as a list, an infinite cost as null).
    _add(ledger, info, state="done", verdict=Verdict.DISCARD, metric=10.2, cost_usd=float("inf"),
         extra={"candidate_samples": [10.4, 10.0], "champion_samples": [10.1, 10.0]})  # fmt: skip
    whole = run_view(repo, ledger, info, diffs=False)
    assert follower.view(ledger, info).experiments == whole.experiments
    sent = follower.poll(ledger, info).data["experiments"]
    assert sent == [finite_json(asdict(row)) for row in whole.experiments]
    assert sent[-1]["spread"] == [10.0, 10.4] and sent[-1]["cost_usd"] is None

    # A new experiment makes its own row only: the others are the objects the last read made,
    # and still what one read of the whole run says. A keep found later makes its own row again
    # and those whose champion it changes (2, a keep at 9.5, was compared with 10 and now 9.9),
    # no other.
    shown = follower.view(ledger, info).experiments
    _add(ledger, info, state="done", verdict=Verdict.DISCARD, metric=11.0)
    grown_rows = follower.view(ledger, info).experiments
    assert len(grown_rows) == len(shown) + 1 and all(new is old for new, old in zip(grown_rows, shown))
    assert grown_rows == run_view(repo, ledger, info, diffs=False).experiments
    first = ledger.experiment("t", 1)
    assert first is not None
    first.verdict, first.metric = Verdict.KEEP, 9.9
    ledger.update(first)
    moved_rows = follower.view(ledger, info).experiments
    assert [i for i, (new, old) in enumerate(zip(moved_rows, grown_rows)) if new is not old] == [1, 2]
    assert moved_rows[2].champion == 9.9
    assert moved_rows == run_view(repo, ledger, info, diffs=False).experiments
    ledger.close()
