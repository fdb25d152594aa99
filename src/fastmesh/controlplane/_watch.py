"""Which files of a config directory changed, from Linux inotify (no rescans: a directory of
10k service files costs a stat of every file per poll, 0.2 s, and a poll interval of delay).

`DirectoryWatch.open` returns None where inotify is unavailable; the registry then polls.
"""

from __future__ import annotations

import os
from pathlib import Path

import trio

try:
    from inotify_simple import INotify, flags
except ImportError:  # not Linux, or the package is missing: the registry polls instead
    INotify = None

__all__ = ["DirectoryWatch"]


class DirectoryWatch:
    """Watches a directory tree; `changes` waits for events and returns the paths touched,
    or None when the caller must rescan everything (a new directory, a lost event)."""

    def __init__(self, inotify: INotify, root: Path) -> None:
        self._inotify = inotify
        self._dirs: dict[int, Path] = {}
        self._add_tree(root)

    @classmethod
    def open(cls, root: Path) -> DirectoryWatch | None:
        if INotify is None:
            return None
        try:
            return cls(INotify(nonblocking=True), root)
        except OSError:  # no inotify instances left: polling still works
            return None

    def _add_tree(self, root: Path) -> None:
        mask = (
            flags.CLOSE_WRITE
            | flags.MOVED_TO
            | flags.MOVED_FROM
            | flags.DELETE
            | flags.CREATE
            | flags.DELETE_SELF
        )
        for directory, _, _ in os.walk(root):
            self._dirs[self._inotify.add_watch(directory, mask)] = Path(directory)

    async def changes(self) -> set[Path] | None:
        await trio.lowlevel.wait_readable(self._inotify.fileno())
        paths: set[Path] = set()
        rescan = False
        for event in self._inotify.read(timeout=0):
            if event.mask & flags.Q_OVERFLOW:
                rescan = True
                continue
            directory = self._dirs.get(event.wd)
            if directory is None:
                continue
            path = directory / event.name
            if event.mask & flags.ISDIR and event.mask & (flags.CREATE | flags.MOVED_TO):
                self._add_tree(path)
                rescan = True
            elif event.mask & (flags.CREATE | flags.DELETE_SELF):
                continue  # a new file is reported again when written and closed
            paths.add(path)
        return None if rescan else paths

    def close(self) -> None:
        self._inotify.close()
