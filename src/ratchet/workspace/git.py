"""The one way ratchet runs git: its CLI through subprocess, with flags that keep hooks, signing
prompts and background gc out of every call; and what is read back from it (porcelain status, the
diff of an experiment, a run's champion)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ratchet.state import STATE_DIR

BRANCH_PREFIX = "ratchet/"  # a run's branch is ratchet/<run>

# Every git call: no hooks (a candidate must not get code run by ratchet's own commits), no
# signing prompts, no background gc pauses between experiments (gc.auto=0 does not stop the
# `git maintenance run --auto` child every commit starts: maintenance.auto=false does).
_GIT_FLAGS = (
    "-c", "core.hooksPath=/dev/null",
    "-c", "commit.gpgsign=false",
    "-c", "gc.auto=0",
    "-c", "maintenance.auto=false",
    "-c", "core.fsmonitor=false",
    "-c", "advice.detachedHead=false",
    "-c", "log.showSignature=false",
)  # fmt: skip

class GitError(Exception):
    """A git command failed; the message holds git's own words."""


class WorkspaceError(Exception):
    """The repository is not in a state a run can start from (one line for the user)."""


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(LC_ALL="C", GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(name, None)  # set by a calling git hook, they would redirect every command
    return env


GIT_ENV = _git_env()


def run_git(cwd: Path, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """The one git runner: ``git args`` in ``cwd`` with ratchet's flags and environment, bytes in
    and out, whatever its exit code (the callers below decide what a failure means)."""
    return subprocess.run(
        ["git", *_GIT_FLAGS, *args],
        cwd=cwd,
        env=dict(env) if env is not None else GIT_ENV,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
    )


def git_bytes(cwd: Path, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None, ok: tuple[int, ...] = (0,)) -> bytes:
    """``git args``'s stdout as bytes; :class:`GitError` with git's last words when its exit code is not in ``ok``."""
    proc = run_git(cwd, *args, input=input, env=env)
    if proc.returncode not in ok:
        message = proc.stderr.decode(errors="replace").strip().splitlines() or proc.stdout.decode(errors="replace").strip().splitlines()
        raise GitError(f"git {' '.join(args[:2])}: {message[-1] if message else f'exit {proc.returncode}'}")
    return proc.stdout


def git(cwd: Path, *args: str, check: bool = True, env: dict[str, str] | None = None) -> str:
    """Run ``git args`` in ``cwd``; return stdout as text; raise :class:`GitError` on failure."""
    out = git_bytes(cwd, *args, env=env, ok=(0,) if check else tuple(range(256)))
    return out.decode(errors="surrogateescape")


def find_repo_root(path: Path) -> Path:
    try:
        out = git(path, "rev-parse", "--show-toplevel")
    except (GitError, FileNotFoundError, NotADirectoryError):
        raise WorkspaceError(f"{path} is not inside a git repository (run `git init` first)") from None
    return Path(out.strip())


def exclude_state_dir(repo_root: Path) -> None:
    """Keep ``.ratchet/`` out of git through ``.git/info/exclude`` (not the tracked .gitignore)."""
    exclude = Path(git(repo_root, "rev-parse", "--git-path", "info/exclude").strip())
    if not exclude.is_absolute():
        exclude = repo_root / exclude
    line = f"/{STATE_DIR}/"
    existing = exclude.read_text().splitlines() if exclude.exists() else []
    if line not in existing:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with exclude.open("a") as handle:
            if existing and existing[-1] != "":
                handle.write("\n")
            handle.write(f"{line}\n")


@dataclass(frozen=True)
class Change:
    status: str  # porcelain XY, e.g. " M", "??", " D"
    path: str


def parse_porcelain(out: str) -> list[Change]:
    """Parse ``git status --porcelain -z --no-renames``."""
    changes = []
    for entry in out.split("\0"):
        if len(entry) > 3:
            changes.append(Change(entry[:2], entry[3:]))
    return changes


def experiment_diff(root: Path, commit: str | None, log_dir: str) -> str:
    """What an experiment changed: its commit as a patch when it was kept (or held), otherwise
    the diff the loop saved beside its logs (``proposal.diff``, else the proposer's ``proposal.patch``);
    "" when neither is there."""
    if commit:
        try:
            return git(root, "show", "--format=", "--patch", commit)
        except GitError:
            pass
    for name in ("proposal.diff", "proposal.patch"):
        path = Path(log_dir) / name
        if log_dir and path.is_file():
            return path.read_text(errors="replace")
    return ""


@dataclass(frozen=True)
class RunChampion:
    """The commit a run's next experiment builds on: the tip of ``ratchet/<run>``; before the run
    exists, the user's HEAD (where the run will start)."""

    commit: str
    run: str
    on_branch: bool  # False: the run has no branch yet and ``commit`` is HEAD

    @property
    def branch(self) -> str:
        return BRANCH_PREFIX + self.run

    @property
    def where(self) -> str:
        """Which commit it is, in words for a report."""
        return f"the champion of run {self.run!r}" if self.on_branch else "HEAD"


_HEX = frozenset("0123456789abcdef")


def _object_id(text: str) -> str | None:
    text = text.strip()
    return text if len(text) in (40, 64) and set(text) <= _HEX else None


def read_ref(common_dir: Path, ref: str) -> str | None:
    """The commit ``ref`` (``refs/heads/...``) points at, read from the ref files: the loose ref,
    else packed-refs. None when unsure (a symbolic ref, reftable, anything unexpected): ask git then.
    Reading a file costs no process; git would read the same files."""
    if (common_dir / "reftable").exists() or not ref.startswith("refs/"):
        return None
    try:
        loose = (common_dir / ref).read_text()
    except FileNotFoundError:
        loose = None
    except OSError:
        return None
    if loose is not None:
        return _object_id(loose)
    try:
        packed = (common_dir / "packed-refs").read_text()
    except FileNotFoundError:
        return ""  # neither loose nor packed: there is no such ref
    except OSError:
        return None
    for line in packed.splitlines():
        if line[:1] not in ("#", "^") and line.endswith(" " + ref):
            return _object_id(line[: -len(ref) - 1])
    return ""


def read_head(gitdir: Path) -> tuple[str, str] | None:
    """A checkout's HEAD from its file: ("ref", "refs/heads/...") or ("commit", sha); None when unsure."""
    try:
        text = (gitdir / "HEAD").read_text()
    except OSError:
        return None
    if text.startswith("ref: "):
        ref = text[len("ref: ") :].strip()
        return ("ref", ref) if ref.startswith("refs/") and "\n" not in ref else None
    sha = _object_id(text)
    return ("commit", sha) if sha else None


def branch_tip(repo_root: Path, run: str) -> str:
    """The tip of ``ratchet/<run>``; "" when the run has no branch (yet)."""
    return git(repo_root, "rev-parse", "--verify", "--quiet", f"refs/heads/{BRANCH_PREFIX}{run}", check=False).strip()


def run_champion(repo_root: Path, run: str) -> RunChampion:
    """The one rule for a run's champion outside the loop (doctor, probe, calibrate, try, MCP)."""
    tip = branch_tip(repo_root, run)
    commit = tip or git(repo_root, "rev-parse", "--verify", "--quiet", "HEAD", check=False).strip()
    if not commit:
        raise GitError(f"{repo_root} has no commit yet; commit your project first")
    return RunChampion(commit, run, on_branch=bool(tip))
