"""Loading an Envoy bootstrap for the proxy: translate it and keep what admin shows."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastmesh.config import Bootstrap, ConfigError, load_bootstrap, parse_document
from fastmesh.config import translate_bootstrap as _translate

__all__ = ["ConfigError", "LoadedConfig", "load_file", "load_mapping"]


@dataclass(frozen=True)
class LoadedConfig:
    """One translated bootstrap: the native snapshot to apply and what `/config_dump` shows."""

    #: The translator's result (snapshot, admin address, node).
    bootstrap: Bootstrap
    #: The bootstrap document as read (for `/config_dump`).
    document: Mapping[str, Any]
    loaded_at: float = field(default_factory=time.time)

    @property
    def source(self) -> str:
        return self.bootstrap.source

    @property
    def version(self) -> str:
        """Content hash of the document; also the snapshot's `version`."""
        return str(self.bootstrap.snapshot.get("version") or self.bootstrap.version)

    @property
    def snapshot(self) -> Mapping[str, Any]:
        return self.bootstrap.snapshot

    @property
    def admin_address(self) -> tuple[str, int] | None:
        return self.bootstrap.admin_address

    @property
    def node_id(self) -> str:
        return self.bootstrap.node_id

    @property
    def node_cluster(self) -> str:
        return self.bootstrap.node_cluster

    def snapshot_json(self) -> str:
        return self.bootstrap.snapshot_json()


def load_file(path: str | Path) -> LoadedConfig:
    """Read and translate an Envoy bootstrap file (YAML or JSON).

    Raises `fastmesh.config.ConfigError` listing every problem (file, field path, what
    was expected), including an unreadable file.
    """
    bootstrap = load_bootstrap(path)
    try:
        document = parse_document(Path(path).read_text(), str(path))
    except (OSError, ValueError):  # changed under us since; the dump shows an empty doc
        document = None
    return LoadedConfig(bootstrap, document if isinstance(document, Mapping) else {})


def load_mapping(document: Mapping[str, Any], source: str = "<config>") -> LoadedConfig:
    """Translate an Envoy bootstrap given as a dict (what its YAML or JSON parses to)."""
    plain = json.loads(json.dumps(document))
    return LoadedConfig(_translate(plain, source), plain)
