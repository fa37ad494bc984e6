"""What runs on a Ray node: the task that measures one job, and what travels between it and the driver.

:func:`measure_on_node` is the Ray task: :class:`~ratchet.executors.ray.RayExecutor` (the driver
side) wraps it with ``ray.remote`` and Ray pickles it by reference to this module, so the Ray
worker process imports ``ratchet.executors._ray_node`` to run it: every node needs ratchet (with
the same config models) installed where its Python finds it. On the node a job's bundle is
cloned once into a cache under the node's temp dir (:func:`node_cache`), and each task measures
in a checkout of its own (the commit, the patch applied and committed, then removed), with
ratchet's containment rebuilt there. Ray itself is imported only inside the task, where it is
already loaded.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ratchet.executors.base import CommandSpec
from ratchet.measure.containment import Containment
from ratchet.measure.hardware import fingerprint, hardware_info
from ratchet.measure.runner import CommandResult
from ratchet.state import RunError
from ratchet.workspace.git import GIT_ENV, git, git_bytes

if TYPE_CHECKING:
    from ratchet.config import Config


# ---------------------------------------------------------------- what travels


@dataclass(frozen=True)
class Request:
    """One job as a task gets it (picklable: the config is a pydantic model)."""

    config: Config
    repo_root: Path  # the driver's repository (for a job without source: valid on a shared filesystem)
    worktree: Path
    commands: tuple[CommandSpec, ...]
    env: Mapping[str, str] | None
    stop_on_failure: bool
    deadline: float | None
    commit: str | None = None
    patch: str | None = None
    bundle_ref: str | None = None  # the ref the bundle holds
    repo_key: str = ""  # names the node's cache of this repository


@dataclass(frozen=True)
class Ran:
    """One command's end, as the node saw it; the logs as bytes (None: the command printed nothing)."""

    name: str
    command: str
    exit_code: int | None
    timed_out: bool
    interrupted: bool
    seconds: float
    max_rss_bytes: int | None
    survivors: tuple[str, ...]
    hint: str
    stdout: bytes | None
    stderr: bytes | None
    changed: tuple[str, ...] | None


@dataclass(frozen=True)
class Outcome:
    node_id: str
    node: str  # host/node id, for the result
    fingerprint: str
    devices: str
    ran: tuple[Ran, ...] = ()
    error: str | None = None  # the checkout or containment could not be set up there


# ---------------------------------------------------------------- shared with the driver


def first_line(exc: BaseException) -> str:
    """An error in one line, for the driver's messages (its type's name when it says nothing)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def command_timeout(spec: CommandSpec, deadline: float | None) -> float:
    """The command's own timeout, cut to what is left before the job's deadline."""
    if deadline is None:
        return spec.timeout
    # Past the job's deadline a command still starts, and times out at once: its result says so.
    return min(spec.timeout, max(0.0, deadline - time.time()))


def stops_the_job(result: CommandResult, stop_on_failure: bool) -> bool:
    """Whether the job's later commands are skipped after this one (on the node and on the driver)."""
    return result.interrupted or result.timed_out or (stop_on_failure and not result.ok)


# ---------------------------------------------------------------- the task


def measure_on_node(request: Request, bundle: bytes | None) -> Outcome:
    """The task: the job runs in a thread; this (main) thread waits, and when ray.cancel raises
    KeyboardInterrupt here it asks the runner to abandon, which kills the command's whole group
    (Ray would kill only the worker's direct children), and the ends come back as interrupted."""
    abandon = threading.Event()
    done = threading.Event()
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["outcome"] = _node_job(request, bundle, abandon.is_set)
        except BaseException as exc:  # handed to the main thread, which raises it as the task's error
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="ratchet-measure", daemon=True).start()
    # Sleeping, not Thread.join: a join that KeyboardInterrupt breaks can leave the thread
    # looking finished while it still runs.
    while not done.is_set():
        try:
            time.sleep(0.05)
        except KeyboardInterrupt:
            abandon.set()
    if "error" in box:
        raise box["error"]
    outcome: Outcome = box["outcome"]
    return outcome


def _node_job(request: Request, bundle: bytes | None, abandoned: Callable[[], bool]) -> Outcome:
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    node = f"{socket.gethostname()}/{node_id[:12]}"
    gpu_ids = [str(gpu) for gpu in ray.get_gpu_ids()]
    # Ray sets CUDA_VISIBLE_DEVICES in the worker; pass it explicitly so that it reaches the command
    # whatever the allowlist (and whatever an earlier task left in this worker's environment).
    extra = dict(request.env or {})
    if gpu_ids:
        extra["CUDA_VISIBLE_DEVICES"] = ",".join(gpu_ids)
    here = fingerprint(hardware_info())
    scratch = node_cache(request.repo_key)
    scratch.mkdir(parents=True, exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="logs-", dir=scratch))  # outside the checkout: the logs are no change of the commands'
    try:
        with _Checkout(request, bundle, scratch) as checkout:
            containment = Containment.for_measurements(request.config, checkout if request.commit else request.repo_root)
            devices = containment.environment(extra).get("CUDA_VISIBLE_DEVICES", "")
            ran: list[Ran] = []
            for spec in request.commands:
                result = containment.run(
                    spec.command,
                    cwd=checkout,
                    timeout=command_timeout(spec, request.deadline),
                    log_prefix=logs / spec.name,
                    env=extra,
                    should_abandon=abandoned,
                )
                changed = _changed(checkout) if request.commit else None
                ran.append(_ran(spec.name, result, changed))
                if stops_the_job(result, request.stop_on_failure):
                    break
    except Exception as exc:  # the checkout, the patch or the sandbox: named on the driver in one line
        return Outcome(node_id=node_id, node=node, fingerprint=here, devices="", error=first_line(exc))
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    return Outcome(node_id=node_id, node=node, fingerprint=here, devices=devices, ran=tuple(ran))


def node_cache(repo_key: str) -> Path:
    """Where a node keeps its clones of one repository (and the jobs' checkouts): under its temp dir."""
    return Path(tempfile.gettempdir()) / "ratchet-ray" / repo_key


def _ran(name: str, result: CommandResult, changed: tuple[str, ...] | None) -> Ran:
    def read(path: Path) -> bytes | None:
        try:
            return path.read_bytes()  # already capped by the containment
        except FileNotFoundError:
            return None

    return Ran(
        name=name,
        command=result.command,
        exit_code=result.exit_code,
        timed_out=result.timed_out,
        interrupted=result.interrupted,
        seconds=result.seconds,
        max_rss_bytes=result.max_rss_bytes,
        survivors=result.survivors,
        hint=result.hint,
        stdout=read(result.stdout_path),
        stderr=read(result.stderr_path),
        changed=changed,
    )


def _changed(checkout: Path) -> tuple[str, ...]:
    """What the commands changed in the checkout since the patch (tracked or untracked; ignored
    files are build products, as in the local harness check)."""
    out = git(checkout, "status", "--porcelain", "-z", "--no-renames", "-uall")
    return tuple(sorted(entry[3:] for entry in out.split("\0") if len(entry) > 3))


class _Checkout:
    """The job's checkout on this node: ``commit`` with ``patch`` applied, the patch committed in
    the throwaway checkout (so that git status then shows only what the commands change),
    removed on exit. A job without commit runs in its worktree as it is."""

    def __init__(self, request: Request, bundle: bytes | None, scratch: Path) -> None:
        self.request = request
        self.bundle = bundle
        self.scratch = scratch
        self.path: Path | None = None

    def __enter__(self) -> Path:
        request = self.request
        if request.commit is None:
            return request.worktree
        self.scratch.mkdir(parents=True, exist_ok=True)
        with _Locked(self.scratch):
            cache = self._cache(request.commit)
            self.path = Path(tempfile.mkdtemp(prefix="checkout-", dir=self.scratch))
            git(cache, "worktree", "add", "--detach", "-q", str(self.path), request.commit)
        if request.patch:
            git_bytes(self.path, "apply", "--binary", "--whitespace=nowarn", input=request.patch.encode(errors="surrogateescape"))
            git(self.path, "add", "-A", "--force")
            identity = {**GIT_ENV, "GIT_AUTHOR_NAME": "ratchet", "GIT_AUTHOR_EMAIL": "ratchet@localhost",
                        "GIT_COMMITTER_NAME": "ratchet", "GIT_COMMITTER_EMAIL": "ratchet@localhost"}  # fmt: skip
            git_bytes(self.path, "commit", "-q", "--no-verify", "--allow-empty", "-m", "ratchet: the candidate's patch", env=identity)
        return self.path

    def _cache(self, commit: str) -> Path:
        """The node's clone of ``commit`` (made once from the bundle; the lock is held)."""
        cache = self.scratch / f"{commit}.git"
        if (cache / "ratchet-ready").exists():
            return cache
        if self.bundle is None or self.request.bundle_ref is None:
            raise RunError(f"no bundle came for {commit}")
        shutil.rmtree(cache, ignore_errors=True)
        bundle_file = self.scratch / f"{commit}.bundle"
        bundle_file.write_bytes(self.bundle)
        try:
            git(self.scratch, "init", "-q", "--bare", str(cache))
            git(cache, "fetch", "-q", str(bundle_file), f"{self.request.bundle_ref}:refs/ratchet/base")
        finally:
            bundle_file.unlink(missing_ok=True)
        (cache / "ratchet-ready").touch()
        return cache

    def __exit__(self, *exc: object) -> None:
        if self.path is None:
            return
        _remove(self.path)
        with _Locked(self.scratch):
            git(self.scratch / f"{self.request.commit}.git", "worktree", "prune", check=False)


class _Locked:
    """An exclusive lock on ``folder`` between the tasks of this node (its cache clones)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.fd = -1

    def __enter__(self) -> None:
        self.fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # releases the lock


def _remove(folder: Path) -> None:
    """Remove a checkout, whatever modes its commands left on it."""

    def writable(function: Callable[..., object], path: str, _exc: object) -> None:
        try:
            os.chmod(os.path.dirname(path), 0o700)
            os.chmod(path, 0o700)
            function(path)
        except OSError:
            pass

    shutil.rmtree(folder, onerror=writable)


__all__ = ["Outcome", "Ran", "Request", "command_timeout", "first_line", "measure_on_node", "node_cache", "stops_the_job"]
