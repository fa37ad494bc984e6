"""Run measurements on a Ray cluster (``[executor] kind = "ray"``): the driver side.

Each job runs as one Ray task (``[executor]``'s ``num_cpus``, ``num_gpus`` and ``resources``;
``max_retries=0``: ratchet retries itself, at most once, see :class:`RayExecutor`). A job with a
``source`` (what the driver gives every job, since ``measures_copies``) travels as a git bundle
through the object store, put once per commit; what the task does on the node (the cached
clone, a checkout of its own, the containment rebuilt there) lives in
:mod:`ratchet.executors._ray_node`, which every node imports: ratchet (with the same config
models) must be installed where the nodes' Python finds it. The logs (capped by the
containment), how each command ended, the node, the devices Ray assigned and what the commands
changed in the checkout come back; the driver writes the logs where :class:`LocalExecutor`
would. Ray is imported only when asked for (``pip install 'ratchet[ray]'``).
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import socket
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ratchet.executors._ray_node import (
    Outcome,
    Ran,
    Request,
    command_timeout,
    first_line,
    measure_on_node,
    node_cache,
    stops_the_job,
)
from ratchet.executors.base import CommandSpec, Executor, Job, JobSource, WorkerLost
from ratchet.measure.containment import sandbox_warning
from ratchet.measure.hardware import fingerprint, hardware_info
from ratchet.measure.runner import CommandResult, run_command
from ratchet.state import RunError
from ratchet.workspace.git import git, git_bytes

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
        self.task = ray.remote(measure_on_node)
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
        request = Request(
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
                timeout=command_timeout(spec, job.deadline),
                log_prefix=job.log_dir / spec.name,
                env=job.env,
                should_abandon=should_abandon,
            )
            results.append(replace(result, fingerprint=self.fingerprint, node=socket.gethostname()))
            if stops_the_job(results[-1], job.stop_on_failure):
                break
        return results

    def _run_task(self, request: Request, source: JobSource | None, node_id: str | None, should_abandon: Callable[[], bool] | None) -> Outcome:
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
            outcome: Outcome = ray.get(ref)
            return outcome
        except ray.exceptions.TaskCancelledError:  # cancelled before it started (or forced): nothing ran
            return Outcome(node_id="", node="", fingerprint="", devices="", ran=(_abandoned(request.commands[0]),))
        except _lost_errors(ray) as exc:
            if cancelled_at is not None:  # the worker killed by the forced cancel: abandoned, not lost
                return Outcome(node_id="", node="", fingerprint="", devices="", ran=(_abandoned(request.commands[0]),))
            raise _Lost(_lost_words(exc), isinstance(exc, ray.exceptions.ObjectLostError)) from None
        except ray.exceptions.RayTaskError as exc:
            raise RunError(f"measuring on Ray failed: {first_line(exc.cause if exc.cause is not None else exc)}") from None

    def _result(self, job: Job, ran: Ran, outcome: Outcome, attempt: int) -> CommandResult:
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


def _lost_words(exc: BaseException) -> str:
    """What died and where, from Ray's message: its first sentences, without the advice after them."""
    words = first_line(exc)
    for advice in (" This can happen", " To see", " Check ", " See "):
        words = words.split(advice, 1)[0]
    return f"{type(exc).__name__}: {words.strip()}"


def _abandoned(spec: CommandSpec) -> Ran:
    return Ran(spec.name, spec.command, None, False, True, 0.0, None, (), "", None, None, None)


__all__ = ["INSTALL_HINT", "RayExecutor", "node_cache"]
