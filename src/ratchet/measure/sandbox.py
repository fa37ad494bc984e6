"""The sandbox: bubblewrap around every untrusted process (proposer commands, measurements).

Inside, the whole filesystem is read-only except the checkout the process works in, a private
``/tmp`` and the paths the config names; the repository's ``.git``, ratchet's ``.ratchet/``
(ledger, other worktrees, logs) and the user's checkout are read-only. The private ``/tmp``
(and ``/dev/shm``) hide what the host keeps there, so what a command needs from there is put
back read-only: the interpreter ratchet runs with (a virtualenv under ``/tmp``), the folders on
``PATH``, the paths the command line names, and ``[sandbox] readable``. The network is cut
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
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ratchet.workspace.git import WorkspaceError

INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: apt install bubblewrap; Fedora: dnf install bubblewrap)"


class SandboxError(WorkspaceError):
    """The sandbox is required but cannot run here (one line for the user)."""


@dataclass(frozen=True)
class Probe:
    """Whether bubblewrap works on this machine, and if not, why (one line)."""

    usable: bool
    bwrap: str | None
    reason: str  # empty when usable

    @property
    def version(self) -> str:
        """What ``bwrap --version`` says (asked only when shown: ``status`` probes too)."""
        return _bwrap_version(self.bwrap) if self.bwrap else ""


@functools.cache
def _bwrap_version(bwrap: str) -> str:
    try:
        return subprocess.run([bwrap, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


@functools.cache
def probe() -> Probe:
    """Try bubblewrap once per process: a read-only root, new PID and network namespaces."""
    if not sys.platform.startswith("linux"):
        return Probe(False, None, f"the sandbox needs Linux namespaces (bubblewrap); this is {sys.platform}")
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return Probe(False, None, f"bwrap is not installed; {INSTALL_HINT}")
    try:
        trial = subprocess.run(
            [bwrap, *_BASE, "--unshare-net", "--", "/bin/true"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Probe(False, bwrap, f"bwrap does not run: {exc}")
    if trial.returncode != 0:
        said = (trial.stderr.strip().splitlines() or [f"exit {trial.returncode}"])[-1]
        return Probe(
            False,
            bwrap,
            f"bwrap cannot create namespaces here ({said}); enable unprivileged user namespaces "
            "(sysctl kernel.unprivileged_userns_clone=1) or run outside this container",
        )
    return Probe(True, bwrap, "")


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
# The wrapper is the one shell: a command line without shell syntax is its argv, run by the
# wrapper itself ("$@"); one that needs a shell runs in a subshell of the wrapper (a fork, no
# second /bin/sh to exec), its positional parameters empty as under `sh -c`.
_WRAPPER = r"""
RUN </dev/null
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
    # Read-only inside although the private /tmp would hide them: ``[sandbox] readable`` and
    # the interpreter ratchet runs with (see :func:`interpreter_paths`).
    readable: tuple[Path, ...] = ()

    def argv(self, command: str, *, workdir: Path, writable: Sequence[Path] = (), path: str = "") -> list[str]:
        """The bwrap command line that runs ``command`` (through /bin/sh) in ``workdir``; its
        standard input must be the write end of the report pipe. ``path``: the command's PATH."""
        args = [self.bwrap, *_BASE]
        for device in gpu_devices():  # a fresh /dev has no GPU: bring the host's in
            args += ["--dev-bind-try", device, device]
        if not self.network:
            args.append("--unshare-net")
        args += ["--tmpfs", "/tmp"]
        writable = (*self.writable, *writable)
        # Before the repository and the writable paths, which are mounted over them if nested.
        for shown in self.revealed(command, workdir=workdir, writable=writable, path=path):
            args += ["--ro-bind-try", str(shown), str(shown)]
        for repo_path in self.repository:
            if hidden(repo_path):
                args += ["--ro-bind", str(repo_path), str(repo_path)]
        for writable_path in writable:
            args += ["--bind-try", str(writable_path), str(writable_path)]
        args += ["--bind", str(workdir), str(workdir), "--chdir", str(workdir)]
        direct = direct_argv(command)
        if direct is not None:
            args += ["--", "/bin/sh", "-c", _WRAPPER.replace("RUN", '"$@"', 1), "ratchet-sandbox", *direct]
        else:
            args += ["--", "/bin/sh", "-c", _WRAPPER.replace("RUN", '( eval "shift; $1" )', 1), "ratchet-sandbox", command]
        return args

    def revealed(self, command: str, *, workdir: Path, writable: Sequence[Path] = (), path: str = "") -> list[Path]:
        """What the private /tmp would hide from ``command`` that it needs: put back read-only.

        ``[sandbox] readable``, ratchet's interpreter, the folders on ``path`` and the paths the
        command line names (with their symlinks' targets), each only where it exists, is hidden
        and is not in the checkout, the repository or a writable path already.
        """
        named = [*self.readable, *(Path(entry) for entry in path.split(os.pathsep) if entry.startswith("/"))]
        named += named_paths(command, path)
        visible = (workdir, *self.repository, *writable)
        folders: list[Path] = []
        for candidate in named:
            if _seen_as_is(candidate):
                continue  # the common case (PATH's system folders): seen inside as they are
            for bind in _bind_targets(candidate):
                if hidden(bind) and not any(_under(bind, seen) for seen in visible):
                    folders.append(bind)
        return _outermost(folders)

    def hides(self, path: Path, *, workdir: Path, writable: Sequence[Path] = (), command: str = "", env_path: str = "") -> bool:
        """Whether ``path`` (which exists outside) is out of sight inside, for this command."""
        if not hidden(path):
            return False
        shown = (workdir, *self.repository, *self.writable, *writable)
        shown += tuple(self.revealed(command, workdir=workdir, writable=writable, path=env_path))
        return not any(_under(path, folder) for folder in shown)


# What makes a command line need a shell: operators, redirections, expansions, globs, comments,
# escapes, braces (conservative: such a character anywhere, even quoted, keeps the shell).
_SHELL_SYNTAX = frozenset("|&;<>()$`\\*?[]#~{}!\n")
# Words the shell runs itself (POSIX special and regular built-ins, dash's, the reserved words):
# their /usr/bin twins (echo, test, kill...) do not always behave the same.
_SHELL_WORDS = frozenset(
    ". : [ alias bg break cd command continue echo eval exec exit export false fc fg getopts hash jobs kill local "
    "newgrp printf pwd read readonly return set shift test times trap true type ulimit umask unalias unset wait "
    "if then else elif fi case esac for while until do done in function select time source".split()
)


def direct_argv(command: str) -> list[str] | None:
    """``command`` as the argv the shell would run, when it needs no shell (no pipes, redirections,
    variables, globs, ``&&``..., no assignment first, no shell built-in); else None: /bin/sh -c it."""
    if not command.strip() or any(char in _SHELL_SYNTAX for char in command):
        return None
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if not words or "=" in words[0] or words[0] in _SHELL_WORDS:
        return None
    return words


@functools.cache
def gpu_devices() -> tuple[str, ...]:
    """The host's GPU device nodes (NVIDIA, DRM, AMD KFD), for measurements that train on them."""
    found: list[str] = []
    for pattern in ("nvidia*", "nvidia-caps", "dri", "kfd"):
        found += sorted(str(path) for path in Path("/dev").glob(pattern))
    return tuple(dict.fromkeys(found))


# Paths neither under a hidden root nor leading into one (by their symlinks): the system folders
# on PATH, asked about for every command. Remembered: a realpath per PATH entry per command
# was most of the cost of a sandboxed command line (a system folder does not move into /tmp).
_AS_IS: set[str] = set()


def _seen_as_is(path: Path) -> bool:
    key = os.fspath(path)
    if key in _AS_IS:
        return True
    if hidden(path) or hidden(Path(os.path.realpath(path))):
        return False
    if len(_AS_IS) > 4096:
        _AS_IS.clear()
    _AS_IS.add(key)
    return True


def _under(path: Path, folder: Path) -> bool:
    # On strings: Path.parents builds a Path per level, and this runs for every command.
    inner, outer = os.fspath(path), os.fspath(folder)
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")


# What the sandbox replaces with empty, private folders of its own (``--tmpfs /tmp``, and the
# fresh /dev's /dev/shm): host paths under these are out of sight inside unless bound back.
HIDDEN_ROOTS = (Path("/tmp"), Path("/dev/shm"))


def hidden(path: Path) -> bool:
    """Whether the sandbox hides ``path`` (unless bound back): under /tmp or /dev/shm."""
    return any(_under(path, root) for root in HIDDEN_ROOTS)


def interpreter_paths() -> tuple[Path, ...]:
    """ratchet's own Python: its environment (a virtualenv's prefix), the base installation, and
    the interpreter binary behind the venv's symlink. Commands that say ``python`` run it too."""
    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), Path(sys.base_exec_prefix)}
    if sys.executable:
        paths.add(Path(os.path.realpath(sys.executable)))
    return tuple(sorted(paths))


# Tokens of a command line that name a path: a word, or the value of ``--opt=/path``.
_ASSIGNED = re.compile(r"^[^=/]*=(?=/)")


def named_paths(command: str, path: str = "") -> list[Path]:
    """The absolute paths a command line names (``/tmp/tools/metric.sh``, ``--data=/tmp/d``),
    and where its program is found on ``path`` (relative names are in the checkout, seen)."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:  # an unbalanced quote: the shell will refuse it anyway
        words = command.split()
    out: list[Path] = []
    for word in words:
        word = _ASSIGNED.sub("", word)
        if word.startswith("/"):
            out.append(Path(word))
    if words and "/" not in words[0] and (found := shutil.which(words[0], path=path or None)):
        out.append(Path(found))
    return out


def _bind_targets(path: Path) -> list[Path]:
    """What to bind so that ``path`` works inside: a file's folder (its neighbours are often
    needed: a script's modules), a virtualenv's root for its ``bin``, the targets of symlinks;
    never /tmp itself. Nothing when the path does not exist outside."""
    out: list[Path] = []
    for candidate in dict.fromkeys((path, Path(os.path.realpath(path)))):
        if not candidate.exists():
            continue
        folder = candidate if candidate.is_dir() else candidate.parent
        if folder.name == "bin" and ((folder.parent / "pyvenv.cfg").exists() or (folder.parent / "conda-meta").is_dir()):
            folder = folder.parent  # the environment's site-packages and pyvenv.cfg come with it
        if folder in HIDDEN_ROOTS or folder == Path("/"):
            if candidate.is_dir():
                continue  # all of /tmp: never
            folder = candidate  # a file right in /tmp: that file only
        out.append(folder)
    return out


def _outermost(paths: list[Path]) -> list[Path]:
    """Each path once, dropping those inside another one of the list."""
    out: list[Path] = []
    for path in sorted(set(paths), key=lambda p: len(p.parts)):
        if not any(_under(path, kept) for kept in out):
            out.append(path)
    return out


# An absolute path under a hidden root, as it appears in error output ("No such file or
# directory: '/tmp/data/x.csv'", "/bin/sh: 1: /tmp/v/bin/python3: not found").
_HIDDEN_IN_OUTPUT = re.compile(r"(?<![\w.~-])((?:/tmp|/dev/shm)/[^\s'\"`:,;()\[\]{}<>|*?]+)")
# ... on a line that says it was not found: a path the command made in its own /tmp (a test
# runner's tmp_path) may exist outside by chance, and is no clue when named otherwise.
_NOT_FOUND = re.compile(r"no such file|not found|does not exist|cannot (?:open|access|find)|can't open|ENOENT", re.IGNORECASE)


def hidden_path_hint(
    output: str, sandbox: Sandbox, *, workdir: Path, writable: Sequence[Path] = (), command: str = "", env_path: str = ""
) -> str | None:
    """When a failed command's output names a path that exists outside the sandbox but is out of
    sight inside, one line saying so and what to add to ``[sandbox] readable``; else None."""
    found: list[Path] = []
    for line in output.splitlines():
        if not _NOT_FOUND.search(line):
            continue
        for match in _HIDDEN_IN_OUTPUT.finditer(line):
            path = Path(os.path.normpath(match.group(1).rstrip(".")))
            if path not in found and path.exists() and sandbox.hides(path, workdir=workdir, writable=writable, command=command, env_path=env_path):
                found.append(path)
    if not found:
        return None
    folders = _outermost([target for path in found for target in _bind_targets(path)[:1]])
    listed = ", ".join(str(path) for path in found[:3])
    add = ", ".join(f'"{folder}"' for folder in folders[:3])
    return (
        f"the sandbox hides {listed} (it exists outside, but the sandbox's /tmp and /dev/shm are its own): "
        f"add {add} to [sandbox] readable"
    )


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


__all__ = [
    "HIDDEN_ROOTS", "INSTALL_HINT", "Probe", "Sandbox", "SandboxError", "direct_argv", "expand", "hidden", "hidden_path_hint",
    "interpreter_paths", "named_paths", "probe", "repository_paths",
]  # fmt: skip
