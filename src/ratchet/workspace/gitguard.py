"""The repository's git hooks and configuration, watched across every experiment.

A proposer or a candidate that could write into ``.git`` (no sandbox) could install a hook that
runs on the user's next commit, or a filter or fsmonitor that runs inside ratchet's own git
commands. ratchet takes a fingerprint of those files when the run opens, compares it before
each measurement and after it, and on any change puts the recorded files back, moving what it
found aside to ``.ratchet/quarantine/`` (nothing is deleted: it could have been the user), and
reports the experiment ``tampered``.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

# Under the repository's git folder: what makes git run code or changes what it sees.
_COMMON_FILES = ("config", "config.worktree")
_COMMON_FOLDERS = ("hooks", "info")
# Under the worktree's own git folder (.git/worktrees/<run>): its config and where it points.
_WORKTREE_FILES = ("config.worktree", "commondir", "gitdir")


@dataclass(frozen=True)
class _Entry:
    kind: str  # "file", "link", "dir"
    data: bytes  # file contents or link target
    mode: int


class GitGuard:
    """Fingerprint, compare and restore the git files a candidate must not change."""

    def __init__(self, common_dir: Path, worktree_gitdir: Path | None, quarantine: Path) -> None:
        self.common_dir = common_dir
        self.worktree_gitdir = worktree_gitdir
        self.quarantine = quarantine
        self._recorded = self._read()
        self._signature = self._stat_all()

    def _watched(self) -> list[tuple[str, Path]]:
        """(name shown to the user, path) of every watched file and folder."""
        label = ".git"
        out = [(f"{label}/{name}", self.common_dir / name) for name in (*_COMMON_FILES, *_COMMON_FOLDERS)]
        if self.worktree_gitdir is not None:
            rel = os.path.relpath(self.worktree_gitdir, self.common_dir)
            out += [(f"{label}/{rel}/{name}", self.worktree_gitdir / name) for name in _WORKTREE_FILES]
        return out

    def _read(self) -> dict[str, _Entry]:
        entries: dict[str, _Entry] = {}
        for name, path in self._watched():
            _read_tree(name, path, entries)
        return entries

    def _stat_all(self) -> dict[str, tuple[int, ...]]:
        """lstat of every watched path: any write changes a file's ctime, which no one can set."""
        out: dict[str, tuple[int, ...]] = {}
        for name, path in self._watched():
            _stat_tree(name, path, out)
        return out

    def changed(self) -> list[str]:
        """The watched paths that differ from the recorded ones (without touching anything)."""
        if self._stat_all() == self._signature:
            return []  # nothing was even touched: no need to read the contents
        now = self._read()
        return sorted(name for name in set(now) | set(self._recorded) if now.get(name) != self._recorded.get(name))

    def check(self) -> list[str]:
        """The changed paths, after putting the recorded versions back."""
        changed = self.changed()
        if changed:
            self._restore(changed)
        self._signature = self._stat_all()  # the restored files (or touched-but-equal ones) are new inodes
        return changed

    def _path(self, name: str) -> Path:
        return self.common_dir / name[len(".git/") :]

    def _restore(self, changed: list[str]) -> None:
        aside = self.quarantine / time.strftime("%Y%m%d-%H%M%S")
        # Shortest first: a replaced folder is set right before what it holds.
        for name in sorted(changed, key=lambda n: (n.count("/"), n)):
            path = self._path(name)
            recorded = self._recorded.get(name)
            if os.path.lexists(path):
                current = _entry(path)
                if recorded is not None and current is not None and current.kind == recorded.kind == "dir":
                    os.chmod(path, recorded.mode)
                    continue
                target = aside / name
                target.parent.mkdir(parents=True, exist_ok=True)
                os.rename(path, _free(target))
            if recorded is None:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            if recorded.kind == "dir":
                path.mkdir()
                os.chmod(path, recorded.mode)
            elif recorded.kind == "link":
                os.symlink(recorded.data.decode(errors="surrogateescape"), path)
            else:
                path.write_bytes(recorded.data)
                os.chmod(path, recorded.mode)


def _entry(path: Path) -> _Entry | None:
    try:
        info = os.lstat(path)
    except OSError:
        return None
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISLNK(info.st_mode):
        return _Entry("link", os.readlink(path).encode(errors="surrogateescape"), 0)
    if stat.S_ISDIR(info.st_mode):
        return _Entry("dir", b"", mode)
    try:
        return _Entry("file", path.read_bytes(), mode)
    except OSError:
        return _Entry("file", b"(unreadable)", mode)


def _read_tree(name: str, path: Path, into: dict[str, _Entry]) -> None:
    entry = _entry(path)
    if entry is None:
        return
    into[name] = entry
    if entry.kind == "dir":
        try:
            children = sorted(os.listdir(path))
        except OSError:
            return
        for child in children:
            _read_tree(f"{name}/{child}", path / child, into)


def _stat_tree(name: str, path: Path | str, into: dict[str, tuple[int, ...]]) -> None:
    # Plain strings, no sorting: this runs twice per experiment (the order of a dict compared with == is no matter).
    try:
        info = os.lstat(path)
    except OSError:
        return
    into[name] = (info.st_mode, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)
    if stat.S_ISDIR(info.st_mode):
        try:
            children = os.listdir(path)
        except OSError:
            return
        for child in children:
            _stat_tree(name + "/" + child, os.path.join(path, child), into)


def _free(path: Path) -> Path:
    candidate, n = path, 1
    while os.path.lexists(candidate):
        candidate = path.with_name(f"{path.name}.{n}")
        n += 1
    return candidate


def worktree_gitdir(dotgit: bytes, worktree: Path) -> Path | None:
    """The worktree's own git folder, from the contents of its ``.git`` file."""
    text = dotgit.decode(errors="replace").strip()
    if not text.startswith("gitdir:"):
        return None
    path = Path(text[len("gitdir:") :].strip())
    return path if path.is_absolute() else (worktree / path).resolve()


def restore_dotgit(worktree: Path, recorded: bytes) -> bool:
    """Put the worktree's ``.git`` file back if it changed (it points git at its repository:
    a candidate's own ``.git`` would make ratchet's next git command run the candidate's
    config). Returns whether it had changed."""
    path = worktree / ".git"
    try:
        if not path.is_symlink() and path.is_file() and path.read_bytes() == recorded:
            return False
    except OSError:
        pass
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()
    path.write_bytes(recorded)
    return True


__all__ = ["GitGuard", "restore_dotgit", "worktree_gitdir"]
