"""The registry interface, and its default source: a directory of YAML files, watched."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import trio

from ._errors import Problem
from ._load import SUFFIXES, Parsed, ParsedFile, assemble, config_files, parse_file
from ._model import MeshConfig
from ._watch import DirectoryWatch

__all__ = ["FileRegistry", "Publish", "Registry"]

log = logging.getLogger("fastmesh.controlplane")

#: Called with the whole new config each time it changes.
Publish = Callable[[MeshConfig], None]


class Registry(Protocol):
    """Where services, workloads and Istio resources come from (a YAML directory, or etcd)."""

    async def run(
        self, publish: Publish, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Publish the current config, report started, then publish every change until
        cancelled."""
        ...


#: A file's (mtime_ns, size, inode): a change means it is read and parsed again.
Stamp = tuple[int, int, int]


class FileRegistry:
    """A directory of YAML files (Kubernetes Service, Istio WorkloadEntry, ServiceEntry,
    VirtualService, DestinationRule, PeerAuthentication, AuthorizationPolicy), watched with
    inotify (polled every `poll_interval` where that is unavailable); a file whose name, size,
    inode or mtime changed is parsed again, the others' parse is reused (a directory of 10k
    services reloads one file, not all).

    Invalid resources are left out and reported in `problems` (and the log); the rest apply.
    """

    def __init__(self, directory: Path, *, poll_interval: float = 0.1) -> None:
        self.directory = directory
        self.poll_interval = poll_interval
        self.problems: list[Problem] = []
        #: Files parsed so far (a test can tell a full reload from a partial one).
        self.parsed_files = 0
        self._files: dict[Path, tuple[Stamp, ParsedFile]] = {}
        self._config: MeshConfig | None = None
        #: Each resource of `_config` (by id: it holds them) -> its field and index there,
        #: so an edit swaps resources in place without scanning 50k workloads.
        self._where: dict[int, tuple[str, int]] = {}

    def _stamps(self) -> dict[Path, Stamp]:
        out: dict[Path, Stamp] = {}
        for path in config_files(self.directory):
            try:
                st = path.stat()
            except OSError:
                continue
            out[path] = (st.st_mtime_ns, st.st_size, st.st_ino)
        return out

    def load(self, stamps: dict[Path, Stamp] | None = None) -> MeshConfig:
        """The config from the files as they are now (`stamps`: as just scanned)."""
        stamps = self._stamps() if stamps is None else stamps
        files: dict[Path, tuple[Stamp, ParsedFile]] = {}
        for path, stamp in stamps.items():
            cached = self._files.get(path)
            files[path] = (
                cached if cached is not None and cached[0] == stamp else self._parse(path, stamp)
            )
        self._files = files
        return self._assemble()

    def refresh(self, paths: set[Path]) -> MeshConfig:
        """The config after `paths` (and only they) changed, appeared or went away; the
        same object when none of them is a config file (an editor's temporary file)."""
        paths = {
            path
            for path in paths
            if path.suffix in SUFFIXES
            and not any(p.startswith(".") for p in path.relative_to(self.directory).parts)
        }
        if not paths and self._config is not None:
            return self._config
        files = dict(self._files)
        added = False
        for path in paths:
            try:
                st = path.stat()
            except OSError:
                files.pop(path, None)
                continue
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            cached = files.get(path)
            if cached is None or cached[0] != stamp:
                added |= cached is None
                files[path] = self._parse(path, stamp, cached[1] if cached else None)
        edits = [
            (old[1], files[path][1])
            for path in paths
            if (old := self._files.get(path)) is not None
            and path in files
            and files[path] is not old
        ]
        patched = None if added or len(files) != len(self._files) else self._patched(edits)
        self._files = dict(sorted(files.items())) if added else files  # config_files' order
        if patched is not None:
            self._config = patched
            return patched
        return self._assemble()

    def _patched(self, edits: list[tuple[ParsedFile, ParsedFile]]) -> MeshConfig | None:
        """The last config with the edited files' resources swapped in place, when each edit
        redefines exactly the resources it had, all valid (an address, a label: the common
        edit); None otherwise (`assemble` decides, for 60k resources in 0.15 s)."""
        swap: dict[int, Parsed] = {}
        for (old, old_problems), (new, new_problems) in edits:
            if old_problems or new_problems or len(old) != len(new):
                return None
            for a, b in zip(old, new, strict=True):
                if type(a) is not type(b) or (a.namespace, a.name) != (b.namespace, b.name):
                    return None
                if a is not b:
                    swap[id(a)] = b
        config = self._config
        if config is None:
            return None
        fields: dict[str, list[Parsed]] = {}
        for key, b in swap.items():
            at = self._where.get(key)
            if at is None:  # left out of the config (defined twice): reassemble
                return None
            name, i = at
            items = fields.get(name)
            if items is None:
                items = fields[name] = list(getattr(config, name))
            items[i] = b
        for key, b in swap.items():
            self._where[id(b)] = self._where.pop(key)
        return dataclasses.replace(config, **{n: tuple(v) for n, v in fields.items()})  # type: ignore[arg-type]

    def _parse(
        self, path: Path, stamp: Stamp, before: ParsedFile | None = None
    ) -> tuple[Stamp, ParsedFile]:
        """The file parsed; resources equal to `before`'s are kept as those objects (so the
        hub sees only what really changed)."""
        name = str(path.relative_to(self.directory))
        try:
            resources, problems = parse_file(name, path.read_text())
        except OSError as exc:
            resources, problems = [], [Problem(name, "", "", f"cannot read: {exc.strerror or exc}")]
        if before is not None and len(before[0]) == len(resources):
            resources = [a if a == b else b for a, b in zip(before[0], resources, strict=True)]
        self.parsed_files += 1
        return stamp, (resources, problems)

    def _assemble(self) -> MeshConfig:
        config, problems = assemble(parsed for _, parsed in self._files.values())
        self._config = config
        self._where = {
            id(r): (f.name, i)
            for f in dataclasses.fields(config)
            for i, r in enumerate(getattr(config, f.name))
        }
        self.problems = problems
        for problem in problems:
            log.warning("%s/%s", self.directory, problem)
        return config

    async def run(
        self, publish: Publish, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        if not self.directory.is_dir():
            raise FileNotFoundError(f"config directory {self.directory} does not exist")
        watch = DirectoryWatch.open(self.directory)
        seen = self._stamps()
        last = self.load(seen)
        publish(last)
        task_status.started()
        try:
            while True:
                changed = await watch.changes() if watch is not None else None
                if changed is not None:
                    if changed and (config := self.refresh(changed)) is not last:
                        last = config
                        publish(config)
                    continue
                if watch is None:
                    await trio.sleep(self.poll_interval)
                now = self._stamps()
                if now != seen:
                    seen = now
                    last = self.load(now)
                    publish(last)
        finally:
            if watch is not None:
                watch.close()
