"""The ledger: one SQLite file under ``.ratchet/``, one row per experiment, and its exports."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from ratchet.experiment import Experiment, GuardResult, Verdict

LEDGER_FILE = "ledger.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    name TEXT PRIMARY KEY,
    created REAL NOT NULL,
    base_commit TEXT NOT NULL,
    branch TEXT NOT NULL,
    metric_name TEXT NOT NULL,
    direction TEXT NOT NULL,
    config TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS experiments (
    run TEXT NOT NULL REFERENCES runs(name),
    id INTEGER NOT NULL,
    state TEXT NOT NULL,
    verdict TEXT,
    reason TEXT NOT NULL DEFAULT '',
    hypothesis TEXT NOT NULL DEFAULT '',
    proposer TEXT NOT NULL,
    proposal_meta TEXT NOT NULL DEFAULT '{}',
    parent_commit TEXT NOT NULL,
    commit_sha TEXT,
    metric REAL,
    guards TEXT NOT NULL DEFAULT '[]',
    started REAL NOT NULL,
    ended REAL,
    log_dir TEXT NOT NULL DEFAULT '',
    hardware TEXT NOT NULL DEFAULT '',
    memory_gb REAL,
    output_tail TEXT NOT NULL DEFAULT '',
    tokens_in INTEGER,
    tokens_out INTEGER,
    cost_usd REAL,
    extra TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run, id)
);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run TEXT NOT NULL REFERENCES runs(name),
    started REAL NOT NULL,
    last_seen REAL NOT NULL,
    pid INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run TEXT NOT NULL REFERENCES runs(name),
    kind TEXT NOT NULL,
    created REAL NOT NULL,
    after_experiment INTEGER,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hardware (
    fingerprint TEXT PRIMARY KEY,
    info TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS revisions (
    run TEXT PRIMARY KEY,
    n INTEGER NOT NULL DEFAULT 0,
    reset INTEGER NOT NULL DEFAULT 0
);
"""

# A run's revision counts its writes: each insert or update of one of its experiments, each delete,
# each event. Triggers keep it, so every writer of the file counts (an older ratchet too, once a
# newer one opened the file), and each row carries the revision of its last write: a reader asks
# "what changed since revision R" by an index instead of reading every row. A delete moves
# ``reset``: rows that are gone cannot be asked for, so a reader that saw less reads the run again.
_BUMP = """
    INSERT OR IGNORE INTO revisions (run) VALUES ({row}.run);
    UPDATE revisions SET n = n + 1{reset} WHERE run = {row}.run;"""
_STAMP = """
    UPDATE experiments SET revision = (SELECT n FROM revisions WHERE run = NEW.run) WHERE run = NEW.run AND id = NEW.id;"""
_REVISIONS = f"""
CREATE INDEX IF NOT EXISTS experiments_by_revision ON experiments (run, revision);
CREATE TRIGGER IF NOT EXISTS experiment_inserted AFTER INSERT ON experiments BEGIN{_BUMP.format(row="NEW", reset="")}{_STAMP}
END;
-- The stamp itself changes ``revision`` only: WHEN keeps it from counting as a write.
CREATE TRIGGER IF NOT EXISTS experiment_updated AFTER UPDATE ON experiments WHEN NEW.revision = OLD.revision BEGIN{
    _BUMP.format(row="NEW", reset="")}{_STAMP}
END;
CREATE TRIGGER IF NOT EXISTS experiment_deleted AFTER DELETE ON experiments BEGIN{_BUMP.format(row="OLD", reset=", reset = n + 1")}
END;
CREATE TRIGGER IF NOT EXISTS event_added AFTER INSERT ON events BEGIN{_BUMP.format(row="NEW", reset="")}
END;
"""

_COLUMNS = (
    "run, id, state, verdict, reason, hypothesis, proposer, proposal_meta, parent_commit, commit_sha, "
    "metric, guards, started, ended, log_dir, hardware, memory_gb, output_tail, tokens_in, tokens_out, cost_usd, extra"
)
_N_COLUMNS = len(_COLUMNS.split(","))

# Columns added after the first release: older ledgers get them on open.
_ADDED_COLUMNS = {
    "tokens_in": "INTEGER",
    "tokens_out": "INTEGER",
    "cost_usd": "REAL",
    "extra": "TEXT NOT NULL DEFAULT '{}'",
    "revision": "INTEGER NOT NULL DEFAULT 0",  # kept by the triggers of _REVISIONS; not one of _COLUMNS
}


@dataclass(frozen=True)
class RunInfo:
    name: str
    created: float
    base_commit: str
    branch: str
    metric_name: str
    direction: str
    config: dict[str, Any]


def _run_info(row: tuple[Any, ...]) -> RunInfo:
    name, created, base_commit, branch, metric_name, direction, config = row[:7]
    return RunInfo(name, created, base_commit, branch, metric_name, direction, json.loads(config))


class Ledger:
    """A thin, typed layer over the SQLite file. Every write is its own committed transaction,
    so a row is on disk before the loop moves on (WAL: a kill -9 loses nothing committed)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # The workers of a scheduler write from their threads (SQLite serializes them; each write
        # is its own transaction).
        self._db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        present = {row[1] for row in self._db.execute("PRAGMA table_info(experiments)")}
        for name, kind in _ADDED_COLUMNS.items():
            if name not in present:
                try:
                    self._db.execute(f"ALTER TABLE experiments ADD COLUMN {name} {kind}")
                except sqlite3.OperationalError as exc:  # another process (`status` beside `run`) added it first
                    if "duplicate column" not in str(exc):
                        raise
        self._db.executescript(_REVISIONS)

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------ runs

    def create_run(self, info: RunInfo) -> None:
        self._db.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
            (info.name, info.created, info.base_commit, info.branch, info.metric_name, info.direction, json.dumps(info.config)),
        )

    def restart_run(self, info: RunInfo) -> None:
        """Start a run that never measured its baseline again: new base commit and settings."""
        self._db.execute(
            "UPDATE runs SET created = ?, base_commit = ?, branch = ?, metric_name = ?, direction = ?, config = ? WHERE name = ?",
            (info.created, info.base_commit, info.branch, info.metric_name, info.direction, json.dumps(info.config), info.name),
        )

    def get_run(self, name: str) -> RunInfo | None:
        row = self._db.execute("SELECT * FROM runs WHERE name = ?", (name,)).fetchone()
        return None if row is None else _run_info(row)

    def runs(self) -> list[RunInfo]:
        rows = self._db.execute("SELECT * FROM runs ORDER BY created").fetchall()
        return [_run_info(row) for row in rows]

    # ------------------------------------------------------------ experiments

    def next_id(self, run: str) -> int:
        last = self.last_id(run)
        return 0 if last is None else last + 1

    def begin(self, experiment: Experiment) -> None:
        self._db.execute(f"INSERT INTO experiments ({_COLUMNS}) VALUES ({', '.join('?' * _N_COLUMNS)})", _row(experiment))

    def update(self, experiment: Experiment) -> None:
        values = _row(experiment)
        names = [name.strip() for name in _COLUMNS.split(",")]
        assignments = ", ".join(f"{name} = ?" for name in names[2:])
        self._db.execute(
            f"UPDATE experiments SET {assignments} WHERE run = ? AND id = ?",
            (*values[2:], experiment.run, experiment.id),
        )

    def delete(self, experiment: Experiment) -> None:
        self._db.execute("DELETE FROM experiments WHERE run = ? AND id = ?", (experiment.run, experiment.id))

    def experiments(
        self, run: str, *, after: int | None = None, last: int | None = None, changed_since: int | None = None
    ) -> list[Experiment]:
        """A run's experiments by id: all of them, or those after id ``after``, or the ``last`` N, or
        those written since revision ``changed_since`` (see :meth:`revision`); each by an index."""
        return list(self.iter_experiments(run, after=after, last=last, changed_since=changed_since))

    def iter_experiments(
        self, run: str, *, after: int | None = None, last: int | None = None, changed_since: int | None = None
    ) -> Iterator[Experiment]:
        """:meth:`experiments` one row at a time: a reader that streams them holds one in memory."""
        where, args = "run = ?", list[Any]([run])
        if after is not None:
            where, args = where + " AND id > ?", [*args, after]
        if changed_since is not None:
            where, args = where + " AND revision > ?", [*args, changed_since]
        if last is not None:
            # The newest N by the primary key's index, given back oldest first.
            newest = f"SELECT {_COLUMNS} FROM experiments WHERE {where} ORDER BY id DESC LIMIT ?"
            rows = self._db.execute(f"SELECT * FROM ({newest}) ORDER BY id", (*args, max(0, last)))
        else:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM experiments WHERE {where} ORDER BY id", args)
        for row in rows:
            yield _experiment(row)

    def last_id(self, run: str) -> int | None:
        """The newest experiment's id (None before the baseline), by the primary key's index."""
        (last,) = self._db.execute("SELECT MAX(id) FROM experiments WHERE run = ?", (run,)).fetchone()
        return None if last is None else int(last)

    def revision(self, run: str) -> tuple[int, int]:
        """``(revision, reset)`` of a run: the revision grows with every write of its experiments
        and events (a row updated in place too); ``reset`` is the revision of its last delete."""
        row = self._db.execute("SELECT n, reset FROM revisions WHERE run = ?", (run,)).fetchone()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    def experiment(self, run: str, experiment_id: int) -> Experiment | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM experiments WHERE run = ? AND id = ?", (run, experiment_id)
        ).fetchone()
        return None if row is None else _experiment(row)

    # ------------------------------------------------------------ sessions (wall-time budget)

    def start_session(self, run: str) -> int:
        now = time.time()
        cursor = self._db.execute(
            "INSERT INTO sessions (run, started, last_seen, pid) VALUES (?, ?, ?, ?)", (run, now, now, os.getpid())
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def touch_session(self, session_id: int) -> None:
        self._db.execute("UPDATE sessions SET last_seen = ? WHERE id = ?", (time.time(), session_id))

    def spent(self, run: str) -> tuple[int, float]:
        """Tokens (in + out) and dollars the proposer spent on a run so far."""
        tokens, cost = self._db.execute(
            "SELECT COALESCE(SUM(COALESCE(tokens_in, 0) + COALESCE(tokens_out, 0)), 0), COALESCE(SUM(cost_usd), 0) "
            "FROM experiments WHERE run = ?",
            (run,),
        ).fetchone()
        return int(tokens), float(cost)

    def wall_spent(self, run: str) -> float:
        """Seconds spent by all sessions of a run (a resumed run keeps its clock)."""
        (spent,) = self._db.execute(
            "SELECT COALESCE(SUM(last_seen - started), 0) FROM sessions WHERE run = ?", (run,)
        ).fetchone()
        return float(spent)

    # ------------------------------------------------------------ events

    def add_event(self, run: str, kind: str, data: dict[str, Any], after_experiment: int | None = None) -> None:
        """A run-level measurement: "calibration" (A/A noise), "confirmation" (final race), "ablation"."""
        self._db.execute(
            "INSERT INTO events (run, kind, created, after_experiment, data) VALUES (?, ?, ?, ?, ?)",
            (run, kind, time.time(), after_experiment, json.dumps(data, default=str)),
        )

    def events(self, run: str, kind: str | None = None) -> list[dict[str, Any]]:
        query = "SELECT kind, created, after_experiment, data FROM events WHERE run = ?"
        args: tuple[Any, ...] = (run,)
        if kind is not None:
            query += " AND kind = ?"
            args += (kind,)
        rows = self._db.execute(query + " ORDER BY id", args).fetchall()
        return [{"kind": k, "created": c, "after_experiment": a, **json.loads(d)} for k, c, a, d in rows]

    # ------------------------------------------------------------ hardware

    def record_hardware(self, fingerprint: str, info: dict[str, Any]) -> None:
        self._db.execute("INSERT OR IGNORE INTO hardware VALUES (?, ?)", (fingerprint, json.dumps(info)))

    def hardware(self, fingerprint: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT info FROM hardware WHERE fingerprint = ?", (fingerprint,)).fetchone()
        return None if row is None else json.loads(row[0])


def _row(e: Experiment) -> tuple[Any, ...]:
    return (
        e.run, e.id, e.state, e.verdict.value if e.verdict else None, e.reason, e.hypothesis, e.proposer,
        json.dumps(e.proposal_meta, default=str), e.parent_commit, e.commit, e.metric,
        json.dumps([g.to_json() for g in e.guards]), e.started, e.ended, e.log_dir, e.hardware,
        e.memory_gb, e.output_tail, e.tokens_in, e.tokens_out, e.cost_usd, json.dumps(e.extra, default=str),
    )  # fmt: skip


def _experiment(row: tuple[Any, ...]) -> Experiment:
    (run, id_, state, verdict, reason, hypothesis, proposer, meta, parent, commit, metric, guards,
     started, ended, log_dir, hardware, memory_gb, tail, tokens_in, tokens_out, cost_usd, extra) = row  # fmt: skip
    return Experiment(
        run=run, id=id_, state=state, verdict=Verdict(verdict) if verdict else None, reason=reason,
        hypothesis=hypothesis, proposer=proposer, proposal_meta=json.loads(meta), parent_commit=parent,
        commit=commit, metric=metric, guards=[GuardResult.from_json(g) for g in json.loads(guards)],
        started=started, ended=ended, log_dir=log_dir, hardware=hardware, memory_gb=memory_gb, output_tail=tail,
        tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=cost_usd, extra=json.loads(extra),
    )  # fmt: skip


# ---------------------------------------------------------------- exports

# Column order of ratchet's own (lossless) results.tsv; the metric's column takes its name.
RESULTS_COLUMNS = (
    "id", "verdict", "{metric}", "commit", "parent_commit", "memory_gb", "description", "reason", "proposer",
    "started", "ended", "duration_s", "guards", "hardware", "tokens_in", "tokens_out", "cost_usd", "state",
    "log_dir", "proposal", "extra",
)  # fmt: skip

# Karpathy's autoresearch (program.md, "Logging results"): exactly these five columns, tab-separated.
AUTORESEARCH_COLUMNS = ("commit", "val_bpb", "memory_gb", "status", "description")

#: ratchet's verdict -> autoresearch's status (keep, discard, crash). "crash" is autoresearch's
#: word for "no usable number": its notebook drops those rows from the plot and the keep rate.
AUTORESEARCH_STATUS = {
    Verdict.BASELINE: "keep",  # autoresearch's first row: the baseline, logged as keep
    Verdict.KEEP: "keep",
    Verdict.DISCARD: "discard",
    Verdict.OVERFIT: "discard",  # measured and reverted: the holdout rejected it
    Verdict.CRASH: "crash",
    Verdict.TIMEOUT: "crash",
    Verdict.INVALID: "crash",  # never measured (out of scope, empty) or the metric did not parse
    Verdict.TAMPERED: "crash",  # its number cannot be trusted: the harness changed
    Verdict.ABANDONED: "crash",  # cut short before a number
}


def results_tsv(experiments: list[Experiment], metric_name: str) -> str:
    """ratchet's results.tsv: every ledger column but the logs' tails, each verdict as itself.

    Numbers keep full precision, commits their full sha. A candidate that was not kept was never
    committed (discard resets it), so its ``commit`` cell is empty; its diff is
    ``<log_dir>/proposal.diff``.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow([column.format(metric=metric_name) for column in RESULTS_COLUMNS])
    for e in experiments:
        # The baseline measured its parent: that commit is the one it scored.
        commit = e.commit or (e.parent_commit if e.verdict is Verdict.BASELINE else "")
        writer.writerow([
            e.id,
            e.verdict.value if e.verdict else "",
            _number(e.metric),
            commit,
            e.parent_commit,
            _number(e.memory_gb),
            _one_line(e.hypothesis),
            _one_line(e.reason),
            e.proposer,
            _timestamp(e.started),
            _timestamp(e.ended),
            _number(e.duration),
            _compact_json([_guard_json(g) for g in e.guards]),
            e.hardware,
            _number(e.tokens_in),
            _number(e.tokens_out),
            _number(e.cost_usd),
            e.state,
            e.log_dir,
            _compact_json(e.proposal_meta),
            _compact_json(e.extra),
        ])  # fmt: skip
    return buffer.getvalue()


def autoresearch_tsv(experiments: list[Experiment]) -> str:
    """results.tsv exactly as autoresearch's program.md writes it, for its ``analysis.ipynb``.

    ``commit`` is 7 characters (empty for a candidate that was never committed); the metric goes
    in ``val_bpb`` (``%.6f``; ``0.000000`` for a crash); ``memory_gb`` is ``%.1f`` (``0.0`` for a
    crash); ``status`` per :data:`AUTORESEARCH_STATUS`; a verdict autoresearch lacks is named in
    brackets after the description, as its own example does: ``double model width (OOM)``.
    Experiments still running are left out: autoresearch logs an experiment when it is done.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(AUTORESEARCH_COLUMNS)
    for e in experiments:
        if e.verdict is None:
            continue
        status = AUTORESEARCH_STATUS[e.verdict]
        commit = e.commit or (e.parent_commit if e.verdict is Verdict.BASELINE else "")
        description = _one_line(e.hypothesis)
        if e.verdict.value not in ("keep", "discard", "crash", "baseline"):
            description = f"{description} ({e.verdict.value})".strip()
        if status == "crash":
            value, memory = "0.000000", "0.0"
        else:
            value = "" if e.metric is None else _autoresearch_value(e.metric)
            memory = "" if e.memory_gb is None else f"{e.memory_gb:.1f}"
        writer.writerow([commit[:7], value, memory, status, description])
    return buffer.getvalue()


def _autoresearch_value(value: float) -> str:
    # %.6f as autoresearch writes val_bpb; a small metric (seconds, error rates) would lose its
    # digits there, or read 0.000000 like a crash, so it gets six significant digits instead.
    return f"{value:.6f}" if value == 0 or abs(value) >= 0.1 else f"{value:.6g}"


def _number(value: float | int | None) -> str:
    return "" if value is None else repr(value)


def _timestamp(value: float | None) -> str:
    if value is None:
        return ""
    return datetime.fromtimestamp(value).astimezone().isoformat(timespec="milliseconds")


def _guard_json(guard: GuardResult) -> dict[str, Any]:
    data = guard.to_json()
    data.pop("output_tail", None)  # logs, like the experiment's own tail: in log_dir and `ratchet show`
    return data


def _compact_json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def iter_json(experiments: list[Experiment]) -> Iterator[dict[str, Any]]:
    for e in experiments:
        yield e.to_json()
