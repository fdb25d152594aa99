"""A running mesh's directory: `up.json` says which subnet it runs on and which process owns
it, so `fastmesh up shift|fault|traffic` find it and a second `fastmesh up` does not clash."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from fastmesh.up._layout import Layout

__all__ = ["DEFAULT_DIR", "StateError", "claim", "dir_flag", "load", "release"]

DEFAULT_DIR = Path(tempfile.gettempdir()) / "fastmesh-up"


class StateError(Exception):
    """No mesh in the directory, or one already running there."""


def _file(directory: Path) -> Path:
    return directory / "up.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(directory: Path) -> dict[str, int] | None:
    try:
        state = json.loads(_file(directory).read_text())
        return {"subnet": int(state["subnet"]), "pid": int(state["pid"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def dir_flag(directory: Path) -> str:
    """` --dir D` for printed commands, empty for the default directory."""
    return "" if directory.resolve() == DEFAULT_DIR.resolve() else f" --dir {directory}"


def claim(directory: Path, layout: Layout) -> None:
    state = _read(directory)
    if state and state["pid"] != os.getpid() and _alive(state["pid"]):
        raise StateError(
            f"a mesh is already running in {directory} (pid {state['pid']});"
            f" stop it (Ctrl-C) or pass another --dir"
        )
    directory.mkdir(parents=True, exist_ok=True)
    _file(directory).write_text(json.dumps({"subnet": layout.subnet, "pid": os.getpid()}))


def release(directory: Path) -> None:
    _file(directory).unlink(missing_ok=True)


def load(directory: Path) -> Layout:
    state = _read(directory)
    if state is None or not _alive(state["pid"]):
        raise StateError(
            f"no mesh running in {directory}: start one with `fastmesh up{dir_flag(directory)}`"
        )
    return Layout(state["subnet"])
