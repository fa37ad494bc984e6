"""The sandbox: bubblewrap around every untrusted process (proposer commands, measurements).

Inside, the whole filesystem is read-only except the checkout the process works in, a private
``/tmp`` and the paths the config names; the repository's ``.git``, ratchet's ``.ratchet/``
(ledger, other worktrees, logs) and the user's checkout are read-only; the network is cut
unless allowed; and a fresh PID namespace means that everything the process started dies with
it. A small shell wrapper inside runs the command, then lists what is still alive in the
namespace on a pipe only ratchet reads, so that lingering processes are reported, not just
killed.

Where bubblewrap is missing or cannot make namespaces (macOS, containers without user
namespaces), :func:`probe` says why in one line; the caller decides between a warning and an
error (``[sandbox] mode``).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ratchet.workspace import WorkspaceError

INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: apt install bubblewrap; Fedora: dnf install bubblewrap)"


class SandboxError(WorkspaceError):
    """The sandbox is required but cannot run here (one line for the user)."""


@dataclass(frozen=True)
class Probe:
    """Whether bubblewrap works on this machine, and if not, why (one line)."""

    usable: bool
    bwrap: str | None
    version: str
    reason: str  # empty when usable


@functools.cache
def probe() -> Probe:
    """Try bubblewrap once per process: a read-only root, new PID and network namespaces."""
    if not sys.platform.startswith("linux"):
        return Probe(False, None, "", f"the sandbox needs Linux namespaces (bubblewrap); this is {sys.platform}")
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return Probe(False, None, "", f"bwrap is not installed; {INSTALL_HINT}")
    try:
        version = subprocess.run([bwrap, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
        trial = subprocess.run(
            [bwrap, *_BASE, "--unshare-net", "--", "/bin/true"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Probe(False, bwrap, "", f"bwrap does not run: {exc}")
    if trial.returncode != 0:
        said = (trial.stderr.strip().splitlines() or [f"exit {trial.returncode}"])[-1]
        return Probe(
            False,
            bwrap,
            version,
            f"bwrap cannot create namespaces here ({said}); enable unprivileged user namespaces "
            "(sysctl kernel.unprivileged_userns_clone=1) or run outside this container",
        )
    return Probe(True, bwrap, version, "")


# The fixed part: read-only root, fresh /dev and /proc, new PID, IPC and UTS namespaces, a new
# session (no TIOCSTI into ratchet's terminal), and death with ratchet.
_BASE = (
    "--ro-bind", "/", "/",
    "--dev", "/dev",
    "--proc", "/proc",
    "--unshare-pid", "--as-pid-1", "--unshare-ipc", "--unshare-uts",
    "--die-with-parent", "--new-session",
)  # fmt: skip

# Runs inside the sandbox as the namespace's first process (orphans come back to it, and when
# it ends the kernel kills the rest). Its standard input is the report pipe, the write end:
# the command gets /dev/null instead, so only the wrapper can write there. When the command
# ends, whatever else is alive in the namespace (zombies aside) is named on the pipe, then
# killed. (dash reads only one digit of an fd in a redirection: hence fd 0, not a passed fd.)
_WRAPPER = r"""
/bin/sh -c "$1" </dev/null
rc=$?
left=""
for p in /proc/[0-9]*; do
  p=${p#/proc/}
  [ "$p" = $$ ] && continue
  read -r st < /proc/$p/stat 2>/dev/null || continue
  s=${st##*) }; s=${s%% *}
  [ "$s" = Z ] && continue
  read -r c < /proc/$p/comm 2>/dev/null || c="?"
  left="$left $c"
done
[ -n "$left" ] && echo "$left" >&0
kill -9 -1 2>/dev/null
exit $rc
"""


@dataclass(frozen=True)
class Sandbox:
    """One way of wrapping commands: which paths are writable, whether the network is on."""

    bwrap: str
    network: bool = False
    writable: tuple[Path, ...] = ()
    # The target repository (its checkout and git folder): read-only inside, and put back
    # where the private /tmp would hide it (tests and some users keep repositories in /tmp).
    repository: tuple[Path, ...] = ()

    def argv(self, command: str, *, workdir: Path, writable: Sequence[Path] = ()) -> list[str]:
        """The bwrap command line that runs ``command`` (through /bin/sh) in ``workdir``; its
        standard input must be the write end of the report pipe."""
        args = [self.bwrap, *_BASE]
        for device in gpu_devices():  # a fresh /dev has no GPU: bring the host's in
            args += ["--dev-bind-try", device, device]
        if not self.network:
            args.append("--unshare-net")
        args += ["--tmpfs", "/tmp"]
        for path in self.repository:
            if _under(path, Path("/tmp")):
                args += ["--ro-bind", str(path), str(path)]
        for path in (*self.writable, *writable):
            args += ["--bind-try", str(path), str(path)]
        args += ["--bind", str(workdir), str(workdir), "--chdir", str(workdir)]
        args += ["--", "/bin/sh", "-c", _WRAPPER, "ratchet-sandbox", command]
        return args


@functools.cache
def gpu_devices() -> tuple[str, ...]:
    """The host's GPU device nodes (NVIDIA, DRM, AMD KFD), for measurements that train on them."""
    found: list[str] = []
    for pattern in ("nvidia*", "nvidia-caps", "dri", "kfd"):
        found += sorted(str(path) for path in Path("/dev").glob(pattern))
    return tuple(dict.fromkeys(found))


def _under(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def repository_paths(root: Path) -> tuple[Path, ...]:
    """The user's checkout and its repository's git folder (elsewhere when the checkout is a
    linked worktree). Read when the run starts, before any untrusted process ran."""
    return (root, *_git_folders(root))


def _git_folders(workdir: Path) -> list[Path]:
    dotgit = workdir / ".git"
    try:
        if dotgit.is_dir():
            return []
        text = dotgit.read_text(errors="replace").strip()
    except OSError:
        return []
    if not text.startswith("gitdir:"):
        return []
    gitdir = Path(text[len("gitdir:") :].strip())
    if not gitdir.is_absolute():
        gitdir = (workdir / gitdir).resolve()
    try:
        common = (gitdir / (gitdir / "commondir").read_text().strip()).resolve()
    except OSError:
        common = gitdir
    paths = [common]
    if common.name == ".git":
        paths.append(common.parent)
    return paths


def expand(paths: Sequence[str], base: Path) -> tuple[Path, ...]:
    """Config paths (``~`` and relative to the repository) as absolute paths."""
    out = []
    for text in paths:
        path = Path(os.path.expanduser(text))
        out.append(path if path.is_absolute() else base / path)
    return tuple(out)


__all__ = ["INSTALL_HINT", "Probe", "Sandbox", "SandboxError", "expand", "probe", "repository_paths"]
