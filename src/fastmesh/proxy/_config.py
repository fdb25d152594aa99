"""Loading an Envoy bootstrap for the proxy: translate it and keep what admin shows.

`fastmesh-proxy` loads with `load_file_in_child`: the translation runs in a short-lived
child process (see `fastmesh.config._compile` for why), and this process keeps only
the snapshot JSON and the (compressed) document JSON. `load_file` / `load_mapping` translate in
this process (the `Proxy` embedding API and `--mode validate`); all three go through
`fastmesh.config._compile`.
"""

from __future__ import annotations

import json
import os
import sys
import time
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastmesh.config._compile import EXIT_CONFIG_ERROR, Compiled, decode
from fastmesh.config._errors import ConfigError, Problem

if TYPE_CHECKING:
    from fastmesh.config._xds import DynamicResources

__all__ = ["ConfigError", "LoadedConfig", "load_file", "load_file_in_child", "load_mapping"]


@dataclass(frozen=True)
class LoadedConfig:
    """One translated bootstrap: the native snapshot to apply and what `/config_dump` shows.

    Only strings are kept; `snapshot` and `document` are parsed on each use.
    """

    compiled: Compiled
    loaded_at: float = field(default_factory=time.time)

    @property
    def source(self) -> str:
        return self.compiled.source

    @property
    def version(self) -> str:
        """Content hash of the document; also the snapshot's `version`."""
        return self.compiled.version

    @property
    def snapshot(self) -> Mapping[str, Any]:
        return json.loads(self.compiled.snapshot_json)  # type: ignore[no-any-return]

    @property
    def document(self) -> Mapping[str, Any]:
        """The bootstrap document as read."""
        return json.loads(self.bootstrap_json())  # type: ignore[no-any-return]

    def bootstrap_json(self, node_id: str = "", node_cluster: str = "") -> str:
        """The bootstrap document as read, as JSON text, built without parsing it.

        With `node_id` or `node_cluster` (the effective node, e.g. `--service-node`),
        the `node` section shows those.
        """
        c = self.compiled
        rest = zlib.decompress(c.document_zjson).decode()
        node = c.document_node_json
        if node_id or node_cluster:
            base = json.loads(node) if node is not None else None
            node = json.dumps(
                {
                    **(base if isinstance(base, Mapping) else {}),
                    "id": node_id,
                    "cluster": node_cluster,
                }
            )
        if node is None:
            return rest
        return '{"node":' + node + ("}" if rest == "{}" else "," + rest[1:])

    @property
    def admin_address(self) -> tuple[str, int] | None:
        return self.compiled.admin_address

    @property
    def node_id(self) -> str:
        return self.compiled.node_id

    @property
    def node_cluster(self) -> str:
        return self.compiled.node_cluster

    def snapshot_json(self) -> str:
        return self.compiled.snapshot_json


def load_file(path: str | Path) -> LoadedConfig:
    """Read and translate an Envoy bootstrap file (YAML or JSON), in this process.

    Raises `fastmesh.config.ConfigError` listing every problem (file, field path, what
    was expected), including an unreadable file.
    """
    from fastmesh.config._compile import compile_file

    return LoadedConfig(compile_file(path))


def load_mapping(document: Mapping[str, Any], source: str = "<config>") -> LoadedConfig:
    """Translate an Envoy bootstrap given as a dict (what its YAML or JSON parses to)."""
    from fastmesh.config import translate_bootstrap
    from fastmesh.config._compile import compile_bootstrap

    plain = json.loads(json.dumps(document))
    return LoadedConfig(compile_bootstrap(translate_bootstrap(plain, source), plain))


def _child_env() -> dict[str, str]:
    """The environment, with this `fastmesh` package importable in the child."""
    import fastmesh

    env = dict(os.environ)
    root = str(Path(fastmesh.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


async def load_file_in_child(
    path: str | Path, dynamic: DynamicResources | None = None, *, document_json: str = ""
) -> LoadedConfig:
    """`load_file`, translated in a short-lived `python -m fastmesh.config` child.

    The same result and the same `ConfigError` (same messages) as `load_file`, but the
    parse and translation peak is the child's, and is gone when it exits. `dynamic`: the
    resources ADS delivered, translated with the file (sent to the child on stdin), or
    with `document_json` (the bootstrap as last loaded) instead of the file when given.
    """
    import trio

    argv = [sys.executable, "-m", "fastmesh.config", os.fspath(path)]
    stdin = b""
    if dynamic is not None:
        argv.append("--xds")
        document = f',"document":{document_json}' if document_json else ""
        stdin = f'{{"dynamic":{json.dumps(asdict(dynamic))}{document}}}'.encode()
    result = await trio.run_process(
        argv,
        stdin=stdin,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=_child_env(),
    )
    if result.returncode in (0, EXIT_CONFIG_ERROR):
        try:
            return LoadedConfig(decode(result.stdout, result.returncode))
        except ConfigError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            detail = f"unreadable output ({exc})"
    else:
        stderr = result.stderr.decode(errors="replace").strip().splitlines()
        detail = stderr[-1] if stderr else f"exit status {result.returncode}"
    raise ConfigError(str(path), [Problem("", f"the config translator failed: {detail}")])
