"""The one process runner, plainly: timeouts kill the whole group, leftovers go, output is logged."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ratchet.measure.runner import run_command


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; it only waits for its parent (init, here) to reap it.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_hanging_command_and_its_children_killed_within_timeout(tmp_path: Path):
    pids = tmp_path / "pids"
    # A shell that starts a background child and a grandchild, records their pids, then hangs.
    command = (
        f"sleep 300 & echo $! >> {pids}; "
        f"sh -c 'sleep 300 & echo $! >> {pids}; wait' & echo $! >> {pids}; "
        f"echo $$ >> {pids}; sleep 300"
    )
    started = time.monotonic()
    result = run_command(command, cwd=tmp_path, timeout=1.0, log_prefix=tmp_path / "log" / "metric")
    elapsed = time.monotonic() - started
    assert result.timed_out and result.exit_code is None
    assert elapsed < 1.0 + 10.0  # the command would sleep 300 s; the slack is for a loaded machine
    recorded = [int(line) for line in pids.read_text().split()]
    assert len(recorded) == 4
    deadline = time.monotonic() + 10.0
    while any(_alive(pid) for pid in recorded) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in recorded if _alive(pid)]


def test_command_ignoring_sigterm_is_killed(tmp_path: Path):
    started = time.monotonic()
    result = run_command("trap '' TERM; sleep 300", cwd=tmp_path, timeout=0.5, log_prefix=tmp_path / "m")
    assert result.timed_out
    assert time.monotonic() - started < 0.5 + 10.0  # not the 300 s it would sleep


def test_background_leftovers_killed_after_normal_exit(tmp_path: Path):
    pid_file = tmp_path / "pid"
    result = run_command(f"sleep 300 & echo $! > {pid_file}; echo done", cwd=tmp_path, timeout=10, log_prefix=tmp_path / "m")
    assert result.ok and result.read() == "done\n"
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10.0
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def test_output_goes_to_log_files_and_tail(tmp_path: Path):
    result = run_command("echo out; echo err >&2; exit 4", cwd=tmp_path, timeout=10, log_prefix=tmp_path / "x" / "metric")
    assert result.exit_code == 4 and not result.timed_out
    assert (tmp_path / "x" / "metric.stdout").read_text() == "out\n"
    assert (tmp_path / "x" / "metric.stderr").read_text() == "err\n"
    assert "--- stdout ---\nout" in result.tail() and "--- stderr ---\nerr" in result.tail()
    assert result.max_rss_bytes and result.max_rss_bytes > 0


def test_large_output_does_not_block(tmp_path: Path):
    result = run_command("head -c 5000000 /dev/zero | tr '\\0' x; echo; echo 42", cwd=tmp_path, timeout=30, log_prefix=tmp_path / "m")
    assert result.ok
    assert result.tail(100).endswith("42")


def test_a_silent_stream_leaves_no_log_file(tmp_path: Path):
    log = tmp_path / "x"
    silent = run_command("true", cwd=tmp_path, timeout=10, log_prefix=log / "metric")
    assert silent.ok and sorted(p.name for p in log.iterdir()) == []
    assert silent.read() == "" and silent.read("both") == "" and silent.tail() == ""
    errors_only = run_command("echo oops >&2", cwd=tmp_path, timeout=10, log_prefix=log / "guard")
    assert sorted(p.name for p in log.iterdir()) == ["guard.stderr"]
    assert errors_only.read("stderr") == "oops\n" and errors_only.read() == ""
    assert errors_only.tail() == "--- stderr ---\noops"


def test_a_silent_rerun_removes_the_earlier_log_of_the_same_name(tmp_path: Path):
    # A log that survived from an earlier command would read as this command's output.
    run_command("echo first; echo first >&2", cwd=tmp_path, timeout=10, log_prefix=tmp_path / "metric")
    again = run_command("true", cwd=tmp_path, timeout=10, log_prefix=tmp_path / "metric")
    assert not again.stdout_path.exists() and not again.stderr_path.exists()
    assert again.read("both") == "" and again.tail() == ""


def test_capped_output_with_nothing_past_the_head_still_writes_its_log(tmp_path: Path):
    from ratchet.measure.runner import CappedLog

    log = CappedLog(tmp_path / "m.stdout", keep=4)
    log.write(b"abcdefgh")
    log.close()
    assert (tmp_path / "m.stdout").read_bytes().startswith(b"abcd") and b"efgh" in (tmp_path / "m.stdout").read_bytes()
    empty = CappedLog(tmp_path / "n.stdout", keep=4)
    empty.close("")
    assert not (tmp_path / "n.stdout").exists()
    noted = CappedLog(tmp_path / "o.stderr", keep=None)
    noted.close("[ratchet: a note]\n")
    assert (tmp_path / "o.stderr").read_text() == "[ratchet: a note]\n"


def test_log_tail_is_read_from_disk_each_time(tmp_path: Path):
    result = run_command("echo out; echo err >&2", cwd=tmp_path, timeout=10, log_prefix=tmp_path / "metric")
    tail = result.log_tail()
    assert tail.read() == result.tail() == "--- stdout ---\nout\n--- stderr ---\nerr"
    result.stderr_path.unlink()  # nothing held: the text is what the files say now
    assert tail.read() == "--- stdout ---\nout"
    assert result.log_tail(2).read() == "--- stdout ---\n…t"
