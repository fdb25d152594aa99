"""What a watched file looked like when it was read: the live-reload watcher compares these.

The translator stamps each file it reads *before* reading it, so a change that lands
while it translates still differs from the stamp and triggers another reload.
"""

from __future__ import annotations

import os

__all__ = ["Stamp", "stamp"]

#: (mtime_ns, size, inode); None when the file could not be stat'ed.
Stamp = tuple[int, int, int]


def stamp(path: str | os.PathLike[str]) -> Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)
