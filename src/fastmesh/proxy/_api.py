"""`fastmesh.Proxy`: run the data path inside your own Python program.

    from fastmesh import Proxy

    with Proxy("envoy.yaml", workers=2) as proxy:
        print(proxy.listening())          # {'ingress': '127.0.0.1:10000'}
        ...
        proxy.apply(new_config)           # atomic swap; in-flight requests finish
        print(proxy.stats()["cluster.backend.upstream_rq_total"])

Synchronous on purpose: the engine runs its own threads, so every call returns quickly
(`apply` and `drain` release the GIL while they work) and works from any thread or
event loop. There is no admin listener here; read `stats()` and `clusters()` directly.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

__all__ = ["ConfigSource", "Proxy"]

#: An Envoy bootstrap: a file path (YAML or JSON) or the parsed document as a mapping.
ConfigSource = str | os.PathLike[str] | Mapping[str, Any]


def _load(config: ConfigSource) -> Any:
    from fastmesh.proxy._config import load_file, load_mapping

    if isinstance(config, Mapping):
        return load_mapping(config)
    return load_file(Path(config))


class Proxy:
    """A fastmesh data plane in this process, configured with Envoy bootstrap config.

    `config` is a path to an Envoy bootstrap file or the bootstrap as a dict; only its
    `static_resources` (listeners and clusters) are used. `workers` is the number of
    engine threads (0 = one per core). Errors in the config raise
    `fastmesh.config.ConfigError` naming every bad field; a snapshot the engine refuses
    (e.g. a port already in use) raises `fastmesh._native.ConfigError`. Both are
    `ValueError`s, and in both cases the running config is unchanged.
    """

    def __init__(self, config: ConfigSource, *, workers: int = 0) -> None:
        if workers < 0:
            raise ValueError("workers must be >= 0")
        self._config = config
        self._workers = workers
        self._engine: Any = None
        self._lock = threading.Lock()
        self._version = ""

    @property
    def running(self) -> bool:
        """True between `start()` and `stop()`."""
        return self._engine is not None

    @property
    def version(self) -> str:
        """Version label of the config being served (a content hash)."""
        return self._version

    def start(self) -> None:
        """Translate the config, start the engine and bind every listener.

        Returns once the listeners accept connections. Raises `ValueError` (a
        `ConfigError`) if the config is invalid; nothing is left running then.
        """
        from fastmesh._native import Engine

        with self._lock:
            if self._engine is not None:
                raise RuntimeError("Proxy already started")
            loaded = _load(self._config)
            engine = Engine(self._workers)
            try:
                engine.apply(loaded.snapshot_json())
            except BaseException:
                engine.shutdown()
                raise
            self._engine = engine
            self._version = loaded.version

    def apply(self, config: ConfigSource) -> None:
        """Swap in a new config atomically: new connections and requests use it, requests
        in flight finish on the old one. On error nothing changes and the error is raised."""
        loaded = _load(config)
        with self._lock:
            self._require().apply(loaded.snapshot_json())
            self._config = config
            self._version = loaded.version

    def listening(self) -> dict[str, str]:
        """Listener name -> the `ip:port` actually bound (port 0 in the config is resolved)."""
        return dict(self._require().listening())

    def stats(self) -> dict[str, int]:
        """Every counter and gauge, by Envoy's stat names (`cluster.<name>.upstream_rq_total`)."""
        return dict(self._require().stats())

    def clusters(self) -> list[dict[str, object]]:
        """Per cluster: its name and endpoints with their request counts."""
        return list(self._require().clusters())

    def active_connections(self) -> int:
        """Downstream connections open right now, over every listener."""
        return int(self._require().active_connections())

    def drain(self, timeout: float = 5.0) -> bool:
        """Stop accepting, let in-flight requests finish (up to `timeout` seconds), close
        idle connections. Returns True if everything finished in time. Call `stop()` after."""
        return bool(self._require().drain(timeout))

    def stop(self) -> None:
        """Close every listener and connection now and stop the engine. Idempotent."""
        with self._lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.shutdown()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._engine is not None and exc_type is None:
            self.drain()
        self.stop()

    def __repr__(self) -> str:
        state = f"running version {self._version}" if self.running else "stopped"
        return f"<fastmesh.Proxy {state}>"

    def _require(self) -> Any:
        engine = self._engine
        if engine is None:
            raise RuntimeError("Proxy is not running; call start() first")
        return engine
