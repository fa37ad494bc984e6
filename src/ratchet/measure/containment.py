"""Running one untrusted command: sandboxed, bounded, with a clean environment, and nothing left.

:class:`Containment` gathers what applies to a kind of untrusted process (the measurements of a
run, or a proposer command): the sandbox (or none, with the reason), resource limits, and the
environment allowlist. :meth:`Containment.run` runs one command that way and returns the same
:class:`~ratchet.measure.runner.CommandResult` as :func:`~ratchet.measure.runner.run_command`,
through the same runner (:func:`~ratchet.measure.runner.run_process`), with:

- the logs capped: they keep the first and the last ``output`` bytes of each stream and say how
  much was cut, so a candidate printing gigabytes cannot fill the disk;
- leftovers named (:mod:`ratchet.measure.processes`): ratchet is a child subreaper, so
  descendants that escape with ``setsid`` come back to it when their parents die; when the
  command ends, whatever it left (in its cgroup, re-parented to ratchet, or alive in the
  sandbox's PID namespace) is killed and named in the result.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

if TYPE_CHECKING:  # only named: `ratchet status` asks sandbox_warning without the config's models
    from ratchet.config import Config, SandboxSection
from ratchet.measure.environment import dropped_variable_hint, untrusted_env
from ratchet.measure.limits import Cgroup, Limits
from ratchet.measure.processes import Leftovers
from ratchet.measure.runner import CommandResult, Launch, read_tail, run_process
from ratchet.measure.sandbox import (
    Sandbox,
    SandboxError,
    direct_argv,
    expand,
    hidden_path_hint,
    interpreter_paths,
    probe,
    repository_paths,
)
from ratchet.workspace.git import GitError, git

# How much of a failed command's output is searched for the cause (a dropped variable, a path
# the sandbox hides).
HINT_BYTES = 8000


@dataclass(frozen=True)
class Containment:
    """How one kind of untrusted process runs."""

    sandbox: Sandbox | None
    limits: Limits
    allow_env: tuple[str, ...] = ()
    # Why there is no sandbox, when there is none (one line for the start of a run and `status`).
    warning: str | None = None
    # Where the config names what ``allow_env`` passes, for the hint when a command fails for
    # want of a variable the allowlist dropped.
    env_setting: str = "[sandbox] env"
    # Folders of the checkout (relative: the committed Python modules' folders) whose
    # __pycache__ is removed before each command. Honest commands write none (no bytecode is
    # written, see environment()), so one found there was planted, by a proposer or an earlier
    # command, and Python would load it instead of the module's source: a harness module
    # rewritten behind the tamper check's back (which .gitignore'd __pycache__ folders pass).
    # A private PYTHONPYCACHEPREFIX would do the same, but Python would then compile all the
    # standard library and site-packages it imports afresh: 0.2 to 1 s per command.
    bytecode_folders: tuple[str, ...] = ()

    @classmethod
    def for_measurements(cls, config: Config, repo_root: Path) -> "Containment":
        section = config.sandbox
        return cls(
            sandbox=_sandbox(section, repo_root, network=section.network, writable=expand(section.writable, repo_root)),
            limits=Limits.from_config(section, measurement=True),
            allow_env=tuple(section.env),
            warning=sandbox_warning(section),
            env_setting="[sandbox] env",
            bytecode_folders=module_folders(repo_root),
        )

    @classmethod
    def for_proposer(
        cls, section: SandboxSection, *, network: bool, env: Sequence[str], writable: Sequence[str], base: Path
    ) -> "Containment":
        """``base``: the target's repository root (also where relative ``writable`` paths start)."""
        return cls(
            sandbox=_sandbox(section, base, network=network, writable=expand(writable, base)),
            limits=Limits.from_config(section, measurement=False),
            allow_env=tuple(env),
            warning=sandbox_warning(section),
            env_setting="[proposer] env",
        )

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = untrusted_env(extra, self.allow_env)
        if self.sandbox is not None:
            env["TMPDIR"] = "/tmp"  # the private one
        # No __pycache__ written into the checkout: in the harness it would be a change (the
        # candidate "tampered"), and honest commands must leave none there.
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def without_sandbox(self) -> "Containment":
        """The same limits and environment, outside the sandbox (doctor: is it the sandbox?)."""
        return replace(self, sandbox=None)

    def run(
        self,
        command: str,
        *,
        cwd: Path,
        timeout: float,
        log_prefix: Path,
        env: Mapping[str, str] | None = None,
        should_abandon: Callable[[], bool] | None = None,
        writable: Sequence[Path] = (),
    ) -> CommandResult:
        """Run ``command`` through the shell in ``cwd``, contained; ``env`` adds to the allowlist.

        A failed command's result carries a ``hint`` when its output names a variable the
        allowlist dropped or a path the sandbox hides."""
        environment = self.environment(env)
        drop_bytecode(cwd, self.bytecode_folders)
        result: CommandResult | None = None
        *tried_first, fallback = self._argvs(command, cwd, environment, tuple(writable))
        for argv in tried_first:
            try:  # no shell where the command needs none: one process fewer
                result = self._launch(command, argv, cwd, timeout, log_prefix, environment, should_abandon)
                break
            except OSError:
                continue  # e.g. a script without #! line: the shell runs it, as it would have
        if result is None:
            result = self._launch(command, fallback, cwd, timeout, log_prefix, environment, should_abandon)
        if result.exit_code in (None, 0):
            return result
        hint = self.failure_hint(result, cwd=cwd, writable=tuple(writable), path=environment.get("PATH", ""), extra=env)
        return replace(result, hint=hint) if hint else result

    def _argvs(self, command: str, cwd: Path, env: dict[str, str], writable: tuple[Path, ...]) -> list[tuple[str, ...]]:
        """What to exec for ``command``, in the order to try: in the sandbox its argv (which runs a
        line without shell syntax as its own argv); outside, the line's own argv where it needs no
        shell and its program is there, then ``/bin/sh -c``."""
        if self.sandbox is not None:
            return [tuple(self.sandbox.argv(command, workdir=cwd, writable=writable, path=env.get("PATH", "")))]
        direct = _found(direct_argv(command), env.get("PATH", ""), cwd)
        return ([direct] if direct is not None else []) + [("/bin/sh", "-c", command)]

    def _launch(
        self,
        command: str,
        argv: tuple[str, ...],
        cwd: Path,
        timeout: float,
        log_prefix: Path,
        env: dict[str, str],
        should_abandon: Callable[[], bool] | None,
    ) -> CommandResult:
        """The one runner, with what containment adds: the limits (in the child, and a cgroup), the
        output cap, and the leftovers found and named."""
        cgroup = Cgroup.create(self.limits.processes) if self.limits.processes is not None else None
        leftovers = Leftovers(cgroup, sandboxed=self.sandbox is not None)
        try:
            launch = Launch(
                argv=argv,
                env=env,
                output_cap=self.limits.output,
                # Only setrlimit and a write to the cgroup run in the child: no locks to deadlock on.
                preexec=self.limits.preexec(cgroup),
                stdin=leftovers.report_write_fd if leftovers.report_write_fd >= 0 else None,  # see sandbox._WRAPPER
            )
            return run_process(
                command, launch, cwd=cwd, timeout=timeout, log_prefix=log_prefix, should_abandon=should_abandon, leftovers=leftovers.collect
            )
        finally:
            leftovers.close()
            if cgroup is not None:
                cgroup.remove()

    def failure_hint(
        self, result: CommandResult, *, cwd: Path, writable: Sequence[Path] = (), path: str = "", extra: Mapping[str, str] | None = None
    ) -> str:
        """What the failed command's output says that containment caused, in one line (or "")."""
        output = read_tail(result.stderr_path, HINT_BYTES) + "\n" + read_tail(result.stdout_path, HINT_BYTES)
        hints = []
        dropped = dropped_variable_hint(output, self.allow_env, section=self.env_setting, passed=extra or {})
        if dropped:
            hints.append(dropped)
        if self.sandbox is not None:
            shown = hidden_path_hint(output, self.sandbox, workdir=cwd, writable=writable, command=result.command, env_path=path)
            if shown:
                hints.append(shown)
        return "; ".join(hints)


def _found(argv: list[str] | None, path: str, cwd: Path) -> tuple[str, ...] | None:
    """``argv`` when its program is there to exec (on ``path``'s absolute folders, or a path from
    ``cwd``), else None: the shell then says "not found" as it always did."""
    if not argv:
        return None
    program = argv[0]
    if "/" in program:
        full = Path(program) if program.startswith("/") else cwd / program
        return tuple(argv) if full.is_file() and os.access(full, os.X_OK) else None
    folders = os.pathsep.join(entry for entry in path.split(os.pathsep) if entry.startswith("/"))
    return tuple(argv) if folders and shutil.which(program, path=folders) else None


def module_folders(repo_root: Path) -> tuple[str, ...]:
    """The folders of the Python modules committed in ``repo_root`` (read when the run starts),
    but those whose __pycache__ is committed too: it is then the project's own, in git's care."""
    try:
        files = git(repo_root, "ls-files", "-z").split("\0")
    except (GitError, OSError):
        return ()
    committed_caches = {PurePosixPath(path).parent.parent for path in files if PurePosixPath(path).parent.name == "__pycache__"}
    folders = {PurePosixPath(path).parent for path in files if path.endswith(".py")} - committed_caches
    return tuple(sorted(str(folder) for folder in folders))


def drop_bytecode(checkout: Path, folders: Sequence[str]) -> None:
    """Remove ``<folder>/__pycache__`` in ``checkout`` for each folder (a symlink is unlinked,
    never followed; nothing is touched through a folder a candidate turned into a symlink)."""
    root = os.path.realpath(checkout)
    for folder in folders:
        cache = checkout / folder / "__pycache__"
        if not os.path.lexists(cache):
            continue  # the common case: one lstat, no realpath
        if os.path.realpath(cache.parent) != os.path.normpath(os.path.join(root, folder)):
            continue  # a symlink on the way: it would lead out of the checkout
        try:
            if cache.is_symlink():
                cache.unlink()
            elif cache.is_dir():
                shutil.rmtree(cache, ignore_errors=True)
        except OSError:
            pass


def _sandbox(section: SandboxSection, repo_root: Path, *, network: bool, writable: tuple[Path, ...]) -> Sandbox | None:
    if section.mode == "off":
        return None
    found = probe()
    if not found.usable:
        if section.mode == "required":
            raise SandboxError(f'[sandbox] mode = "required", but {found.reason}')
        return None
    assert found.bwrap is not None
    readable = (*expand(section.readable, repo_root), *interpreter_paths())
    return Sandbox(found.bwrap, network=network, writable=writable, repository=repository_paths(repo_root), readable=readable)


def sandbox_warning(section: SandboxSection | Mapping[str, object]) -> str | None:
    """One line when untrusted processes will run without the sandbox, else None."""
    mode = section.get("mode", "auto") if isinstance(section, Mapping) else section.mode
    if mode == "off":
        return 'sandbox off ([sandbox] mode = "off"): proposers and candidates run with your permissions'
    found = probe()
    if found.usable:
        return None
    return f"no sandbox: {found.reason}; proposers and candidates run with your permissions"


__all__ = ["Containment", "SandboxError", "drop_bytecode", "module_folders", "sandbox_warning"]
