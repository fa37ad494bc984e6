"""Run measurements on a Ray cluster (``[executor] kind = "ray"``).

Each job runs as one Ray task (``[executor]``'s ``num_cpus``, ``num_gpus`` and ``resources``;
``max_retries=0``: ratchet retries itself, at most once, see :class:`RayExecutor`). A job with a
``source`` (what the driver gives every job, since ``measures_copies``) travels as a git bundle
through the object store, put once per commit; on the node it is cloned once into a cache
under the node's temp dir, and each task measures in a checkout of its own (the commit, the
patch applied, then removed), with ratchet's containment rebuilt there. The logs (capped by the
containment), how each command ended, the node, the devices Ray assigned and what the commands
changed in the checkout come back; the driver writes the logs where :class:`LocalExecutor`
would. Ray is imported only here, and only when asked for (``pip install 'ratchet[ray]'``).

Every node imports this module to run a task: ratchet (with the same config models) must be
installed where the nodes' Python finds it.
"""

from __future__ import annotations

import collections
import fcntl
import hashlib
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ratchet.executors.base import CommandSpec, Executor, Job, JobSource, WorkerLost
from ratchet.measure.containment import Containment, sandbox_warning
from ratchet.measure.hardware import fingerprint, hardware_info
from ratchet.measure.runner import CommandResult, run_command
from ratchet.state import RunError
from ratchet.workspace.git import GIT_ENV, git, git_bytes

if TYPE_CHECKING:
    from ratchet.config import Config, ExecutorSection

INSTALL_HINT = "pip install 'ratchet[ray]'"
# How often the driver looks at should_abandon() while a task runs.
POLL_SECONDS = 0.2
# After ray.cancel, how long the task gets to stop its command (the runner's SIGTERM grace and
# log drain) and hand back its result before its worker is killed.
CANCEL_GRACE_SECONDS = 6.0
# Bundles kept in the object store (the latest commits: the champion and its predecessors).
BUNDLES_KEPT = 4
# Experiments whose node a worker slot remembers (one runs at a time; a few for safety).
PINS_KEPT = 16
# The Ray errors that mean the worker, its node or an object it needed is gone: not the
# command's doing. Names, since Ray is imported lazily (and some may not exist in every version).
LOST_ERRORS = (
    "NodeDiedError",  # what Ray 2.60 raises for a task whose node was removed mid-task
    "WorkerCrashedError",
    "LocalRayletDiedError",
    "ObjectLostError",  # and its kinds: OwnerDiedError, ObjectReconstructionFailedError, ...
    "ObjectFetchTimedOutError",
    "ActorDiedError",
    "RaySystemError",
)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RunError(f'[executor] kind = "ray" needs Ray, which is not installed: {INSTALL_HINT}') from None
    return ray


# ---------------------------------------------------------------- what travels


@dataclass(frozen=True)
class _Request:
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
class _Ran:
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
class _Outcome:
    node_id: str
    node: str  # host/node id, for the result
    fingerprint: str
    devices: str
    ran: tuple[_Ran, ...] = ()
    error: str | None = None  # the checkout or containment could not be set up there


class _Lost(Exception):
    def __init__(self, what: str, object_lost: bool) -> None:
        super().__init__(what)
        self.object_lost = object_lost


# ---------------------------------------------------------------- the driver


class _Cluster:
    """What the views of one executor share: the connection, the task, the bundle cache."""

    def __init__(self, ray: Any, config: Config, repo_root: Path, *, started: bool) -> None:
        self.ray = ray
        self.config = config
        self.repo_root = repo_root
        self.started = started
        self.section: ExecutorSection = config.executor
        # One worker process runs one task at a time; its main thread waits and forwards ray.cancel.
        self.task = ray.remote(_measure_on_node)
        self.bundles: collections.OrderedDict[str, tuple[Any, str]] = collections.OrderedDict()
        self.bundle_puts = 0
        self.lock = threading.Lock()
        self.repo_key = hashlib.sha256(f"{socket.gethostname()}:{repo_root.resolve()}".encode()).hexdigest()[:16]
        self.warning = sandbox_warning(config.sandbox)
        self.closed = False

    def bundle(self, source: JobSource) -> tuple[Any, str]:
        """The object holding ``source.commit``'s bundle, and the ref in it: made and put once per commit."""
        with self.lock:
            if source.commit in self.bundles:
                self.bundles.move_to_end(source.commit)
                return self.bundles[source.commit]
            ref = f"refs/ratchet-bundle/{source.commit}-{os.getpid()}"
            git(source.repo_root, "update-ref", ref, source.commit)
            try:  # a throwaway ref: the user's branches, HEAD and worktrees are never touched
                data = git_bytes(source.repo_root, "bundle", "create", "-q", "-", ref)
            finally:
                git(source.repo_root, "update-ref", "-d", ref)
            entry = (self.ray.put(data), ref)
            self.bundle_puts += 1
            self.bundles[source.commit] = entry
            while len(self.bundles) > BUNDLES_KEPT:
                self.bundles.popitem(last=False)
            return entry

    def forget_bundle(self, commit: str) -> None:
        with self.lock:
            self.bundles.pop(commit, None)

    def close(self) -> None:
        with self.lock:
            self.bundles.clear()
            if self.started and not self.closed and self.ray.is_initialized():
                self.ray.shutdown()
            self.closed = True


class RayExecutor(Executor):
    """Runs each job as a Ray task, in a copy of its source made on the node.

    A job without ``source`` runs in ``job.worktree`` as it is on the node: valid on a one-machine
    cluster or where every node sees the driver's filesystem at the same paths. A trusted job
    (the harness's own score step) runs here on the driver, plainly, as :class:`LocalExecutor`
    runs it.

    :meth:`worker` gives each worker slot a view that shares the connection and the bundles and
    keeps the two sides of a pair together: the jobs of one experiment (one ``log_dir``) go to
    the node its first job ran on (soft affinity: elsewhere if that node is gone or full).

    A task whose worker or node died is run once more, anywhere, with ``[executor] retries = 1``
    (its results say ``attempt = 2``; the lost run never counts); otherwise, or when the retry
    dies too, :meth:`measure` raises :class:`WorkerLost`.
    """

    measures_copies = True

    def __init__(self, cluster: _Cluster, slot: int | None = None) -> None:
        self._cluster = cluster
        self.slot = slot  # None: the executor itself (its close() releases the cluster)
        self._pins: collections.OrderedDict[Path, str] = collections.OrderedDict()
        self._fingerprint: str | None = None

    @classmethod
    def from_config(cls, config: Config, repo_root: Path) -> "RayExecutor":
        """Connected as ``[executor] address`` says (unset: a private one-machine cluster; "auto":
        this machine's cluster; "ray://host:port": a remote one), or to the Ray already
        initialised in this process. Raises RunError (one line) when Ray is missing, the cluster
        cannot be reached, or the metric uses trusted scoring."""
        if config.metric.trusted_scoring:
            # The run step's artifacts would stay in the node's checkout, out of the score step's reach.
            raise RunError('[executor] kind = "ray" cannot measure with trusted scoring ([metric] run and score): use [metric] command')
        if config.executor.address is None and "ray" not in sys.modules:
            # A private cluster listens on 127.0.0.1 only: Ray reads this when it is imported, and
            # the processes it starts inherit it (without it they bind every interface).
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        ray = _import_ray()
        started = False
        if not ray.is_initialized():
            address = config.executor.address
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
            except Exception as exc:  # ConnectionError, ValueError, RuntimeError: Ray's words, on one line
                where = f"the Ray cluster at {address}" if address else "a private Ray cluster"
                raise RunError(f"cannot connect to {where}: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None
            started = True
        return cls(_Cluster(ray, config, repo_root, started=started))

    # ---------------------------------------------------------------- the interface

    def worker(self, index: int) -> "RayExecutor":
        return RayExecutor(self._cluster, slot=index)

    @property
    def warning(self) -> str | None:
        """One line when measurements run without the sandbox (as this machine would run them)."""
        return self._cluster.warning

    @property
    def fingerprint(self) -> str:
        """This machine's hardware fingerprint (trusted jobs run here); node results carry their node's."""
        if self._fingerprint is None:
            self._fingerprint = fingerprint(hardware_info())
        return self._fingerprint

    @property
    def repo_key(self) -> str:
        """Names this repository's cache on every node (see :func:`node_cache`)."""
        return self._cluster.repo_key

    @property
    def bundle_puts(self) -> int:
        """How many bundles were put in the object store (one per commit, unless one was lost)."""
        return self._cluster.bundle_puts

    def close(self) -> None:
        """Disconnect, and shut down a cluster this executor started; a worker's view releases nothing."""
        if self.slot is None:
            self._cluster.close()

    def measure(self, job: Job, should_abandon: Callable[[], bool] | None = None) -> list[CommandResult]:
        if job.trusted:
            return self._measure_here(job, should_abandon)
        cluster = self._cluster
        request = _Request(
            config=cluster.config,
            repo_root=cluster.repo_root,
            worktree=job.worktree,
            commands=job.commands,
            env=dict(job.env) if job.env is not None else None,
            stop_on_failure=job.stop_on_failure,
            deadline=job.deadline,
            commit=job.source.commit if job.source else None,
            patch=job.source.patch if job.source else None,
            repo_key=cluster.repo_key,
        )
        node_id = self._pins.get(job.log_dir)
        attempt = 1
        lost: list[str] = []
        while True:
            try:
                outcome = self._run_task(request, job.source, node_id, should_abandon)
                break
            except _Lost as exc:
                if exc.object_lost and job.source is not None:
                    # Perhaps the bundle, gone with its node (ray.put objects are not rebuilt): the
                    # next job of this commit puts it again. A run whose result was lost is still a
                    # run: it counts as an attempt.
                    cluster.forget_bundle(job.source.commit)
                lost.append(str(exc))
                if attempt > cluster.section.retries:
                    tried = "; then on its retry: ".join(lost)
                    raise WorkerLost(f"the Ray task measuring {_names(job)} was lost: {tried}") from None
                attempt, node_id = attempt + 1, None
        if outcome.error is not None:
            raise RunError(f"cannot measure on Ray node {outcome.node}: {outcome.error}")
        self._pin(job.log_dir, outcome.node_id)
        return [self._result(job, ran, outcome, attempt) for ran in outcome.ran]

    # ---------------------------------------------------------------- the parts

    def _measure_here(self, job: Job, should_abandon: Callable[[], bool] | None) -> list[CommandResult]:
        results: list[CommandResult] = []
        for spec in job.commands:
            result = run_command(
                spec.command,
                cwd=job.worktree,
                timeout=_timeout(spec, job.deadline),
                log_prefix=job.log_dir / spec.name,
                env=job.env,
                should_abandon=should_abandon,
            )
            results.append(replace(result, fingerprint=self.fingerprint, node=socket.gethostname()))
            if _stops(results[-1], job.stop_on_failure):
                break
        return results

    def _run_task(self, request: _Request, source: JobSource | None, node_id: str | None, should_abandon: Callable[[], bool] | None) -> _Outcome:
        ray = self._cluster.ray
        section = self._cluster.section
        bundle = None
        if source is not None:
            bundle, bundle_ref = self._cluster.bundle(source)
            request = replace(request, bundle_ref=bundle_ref)
        options: dict[str, Any] = {"num_cpus": section.num_cpus, "num_gpus": section.num_gpus, "max_retries": 0}
        if section.resources:
            options["resources"] = dict(section.resources)
        if node_id is not None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id, soft=True)
        ref = self._cluster.task.options(**options).remote(request, bundle)
        cancelled_at: float | None = None
        forced = False
        while True:
            ready, _ = ray.wait([ref], timeout=POLL_SECONDS)
            if ready:
                break
            if cancelled_at is None and should_abandon is not None and should_abandon():
                # KeyboardInterrupt in the task: it stops its command's group and hands back the ends.
                ray.cancel(ref)
                cancelled_at = time.monotonic()
            elif cancelled_at is not None and not forced and time.monotonic() - cancelled_at > CANCEL_GRACE_SECONDS:
                ray.cancel(ref, force=True)
                forced = True
        try:
            outcome: _Outcome = ray.get(ref)
            return outcome
        except ray.exceptions.TaskCancelledError:  # cancelled before it started (or forced): nothing ran
            return _Outcome(node_id="", node="", fingerprint="", devices="", ran=(_abandoned(request.commands[0]),))
        except _lost_errors(ray) as exc:
            if cancelled_at is not None:  # the worker killed by the forced cancel: abandoned, not lost
                return _Outcome(node_id="", node="", fingerprint="", devices="", ran=(_abandoned(request.commands[0]),))
            raise _Lost(_lost_words(exc), isinstance(exc, ray.exceptions.ObjectLostError)) from None
        except ray.exceptions.RayTaskError as exc:
            raise RunError(f"measuring on Ray failed: {_first_line(exc.cause if exc.cause is not None else exc)}") from None

    def _result(self, job: Job, ran: _Ran, outcome: _Outcome, attempt: int) -> CommandResult:
        """The node's end of one command as a local result: its logs written where LocalExecutor writes them."""
        prefix = job.log_dir / ran.name
        job.log_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for stream, data in (("stdout", ran.stdout), ("stderr", ran.stderr)):
            path = prefix.with_name(f"{prefix.name}.{stream}")
            if data is None:
                path.unlink(missing_ok=True)  # a missing log reads as empty, as for a local command
            else:
                path.write_bytes(data)
            paths.append(path)
        return CommandResult(
            command=ran.command,
            exit_code=ran.exit_code,
            timed_out=ran.timed_out,
            interrupted=ran.interrupted,
            seconds=ran.seconds,
            stdout_path=paths[0],
            stderr_path=paths[1],
            max_rss_bytes=ran.max_rss_bytes,
            survivors=ran.survivors,
            hint=ran.hint,
            fingerprint=outcome.fingerprint or self.fingerprint,
            node=outcome.node,
            devices=outcome.devices,
            attempt=attempt,
            changed=ran.changed if job.source is not None else None,
        )

    def _pin(self, log_dir: Path, node_id: str) -> None:
        if not node_id:
            return
        self._pins[log_dir] = node_id
        self._pins.move_to_end(log_dir)
        while len(self._pins) > PINS_KEPT:
            self._pins.popitem(last=False)


def _lost_errors(ray: Any) -> tuple[type[BaseException], ...]:
    return tuple(getattr(ray.exceptions, name) for name in LOST_ERRORS if hasattr(ray.exceptions, name))


def _names(job: Job) -> str:
    return ", ".join(spec.name for spec in job.commands)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _lost_words(exc: BaseException) -> str:
    """What died and where, from Ray's message: its first sentences, without the advice after them."""
    words = _first_line(exc)
    for advice in (" This can happen", " To see", " Check ", " See "):
        words = words.split(advice, 1)[0]
    return f"{type(exc).__name__}: {words.strip()}"


def _timeout(spec: CommandSpec, deadline: float | None) -> float:
    if deadline is None:
        return spec.timeout
    # Past the job's deadline a command still starts, and times out at once: its result says so.
    return min(spec.timeout, max(0.0, deadline - time.time()))


def _stops(result: CommandResult, stop_on_failure: bool) -> bool:
    return result.interrupted or result.timed_out or (stop_on_failure and not result.ok)


def _abandoned(spec: CommandSpec) -> _Ran:
    return _Ran(spec.name, spec.command, None, False, True, 0.0, None, (), "", None, None, None)


# ---------------------------------------------------------------- on the node


def _measure_on_node(request: _Request, bundle: bytes | None) -> _Outcome:
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
    outcome: _Outcome = box["outcome"]
    return outcome


def _node_job(request: _Request, bundle: bytes | None, abandoned: Callable[[], bool]) -> _Outcome:
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
            ran: list[_Ran] = []
            for spec in request.commands:
                result = containment.run(
                    spec.command,
                    cwd=checkout,
                    timeout=_timeout(spec, request.deadline),
                    log_prefix=logs / spec.name,
                    env=extra,
                    should_abandon=abandoned,
                )
                changed = _changed(checkout) if request.commit else None
                ran.append(_ran(spec.name, result, changed))
                if _stops(result, request.stop_on_failure):
                    break
    except Exception as exc:  # the checkout, the patch or the sandbox: named on the driver in one line
        return _Outcome(node_id=node_id, node=node, fingerprint=here, devices="", error=_first_line(exc))
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    return _Outcome(node_id=node_id, node=node, fingerprint=here, devices=devices, ran=tuple(ran))


def node_cache(repo_key: str) -> Path:
    """Where a node keeps its clones of one repository (and the jobs' checkouts): under its temp dir."""
    return Path(tempfile.gettempdir()) / "ratchet-ray" / repo_key


def _ran(name: str, result: CommandResult, changed: tuple[str, ...] | None) -> _Ran:
    def read(path: Path) -> bytes | None:
        try:
            return path.read_bytes()  # already capped by the containment
        except FileNotFoundError:
            return None

    return _Ran(
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

    def __init__(self, request: _Request, bundle: bytes | None, scratch: Path) -> None:
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


__all__ = ["INSTALL_HINT", "RayExecutor", "node_cache"]
