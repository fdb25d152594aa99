"""The registry interface, and its default source: a directory of YAML files, polled."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import trio

from ._errors import Problem
from ._load import config_files, load_directory
from ._model import MeshConfig

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


Fingerprint = tuple[tuple[str, int, int, int], ...]


class FileRegistry:
    """A directory of YAML files (Kubernetes Service, Istio WorkloadEntry, VirtualService,
    DestinationRule), re-read when a file's name, size, inode or mtime changes.

    Invalid resources are left out and reported in `problems` (and the log); the rest apply.
    """

    def __init__(self, directory: Path, *, poll_interval: float = 0.1) -> None:
        self.directory = directory
        self.poll_interval = poll_interval
        self.problems: list[Problem] = []
        self.loads = 0

    def _fingerprint(self) -> Fingerprint:
        entries: list[tuple[str, int, int, int]] = []
        for path in config_files(self.directory):
            try:
                st = path.stat()
            except OSError:
                continue
            entries.append((str(path), st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(entries)

    def load(self) -> MeshConfig:
        config, problems = load_directory(self.directory)
        self.problems = problems
        self.loads += 1
        for problem in problems:
            log.warning("%s/%s", self.directory, problem)
        return config

    async def run(
        self, publish: Publish, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        if not self.directory.is_dir():
            raise FileNotFoundError(f"config directory {self.directory} does not exist")
        seen = self._fingerprint()
        publish(self.load())
        task_status.started()
        while True:
            await trio.sleep(self.poll_interval)
            now = self._fingerprint()
            if now != seen:
                seen = now
                publish(self.load())
