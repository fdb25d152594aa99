"""Envoy v3 bootstrap (YAML or JSON) -> `Bootstrap`: the native snapshot plus process settings."""

from __future__ import annotations

import gc
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from ._address import socket_address
from ._clusters import translate_cluster
from ._errors import ConfigError, Issues, Problem
from ._fields import (
    Doc,
    at,
    get_duration_ms,
    get_list,
    get_map,
    get_str,
    item,
    obj,
    typed_config,
)
from ._listeners import translate_listener
from ._routes import ClusterRefs
from ._sources import Sources
from ._stamp import Stamp
from ._tls import translate_sds_secrets, translate_secrets
from ._xds import AdsSource, DynamicResources, XdsLookup, ads_source

__all__ = [
    "Bootstrap",
    "DynamicResources",
    "load_bootstrap",
    "load_bootstrap_document",
    "parse_document",
    "snapshot_json",
    "translate_bootstrap",
    "translate_resources",
]

_BOOTSTRAP: Final = frozenset(
    {
        "node",
        "admin",
        "static_resources",
        "layered_runtime",
        "stats_flush_interval",
        "overload_manager",
        "stats_config",
        "dynamic_resources",
    }
)
_NODE: Final = frozenset({"id", "cluster", "metadata"})
_ADMIN: Final = frozenset({"address", "access_log", "access_log_path"})
_ACCESS_LOG: Final = frozenset({"name", "typed_config"})
_FILE_LOG: Final = "envoy.extensions.access_loggers.file.v3.FileAccessLog"
_STATIC: Final = frozenset({"listeners", "clusters", "secrets"})
_RUNTIME: Final = frozenset({"layers"})
_LAYER: Final = frozenset({"name", "static_layer", "admin_layer"})
_NO_OP_LOG: Final = "/dev/null"


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """A translated Envoy bootstrap: everything the proxy process needs to run it."""

    #: Where it came from (file path or a label); prefixes every error message.
    source: str
    #: Content hash (12 hex digits) of the document and of every file it references;
    #: also the snapshot's `version`.
    version: str
    #: The native snapshot (native/src/config.rs `Snapshot`); see `snapshot_json`.
    snapshot: dict[str, Any]
    #: Every file the translation read (certificates, keys, CA bundles) -> its stamp taken
    #: before reading it: live reload re-translates when one changes.
    files: Mapping[str, Stamp | None] = field(default_factory=dict)
    #: `node.id` ("" if unset); what xDS and `/server_info` report.
    node_id: str = ""
    #: `node.cluster` ("" if unset).
    node_cluster: str = ""
    #: `node.metadata`, passed through to xDS unchanged.
    node_metadata: Mapping[str, Any] = field(default_factory=dict)
    #: `admin.address.socket_address` as (ip, port); None = no admin listener.
    admin_address: tuple[str, int] | None = None
    #: `dynamic_resources`: the ADS server; None = a static bootstrap.
    ads: AdsSource | None = None
    #: EDS and RDS resource names the dynamic clusters and listeners use (subscriptions).
    eds_names: tuple[str, ...] = ()
    rds_names: tuple[str, ...] = ()
    sds_names: tuple[str, ...] = ()
    #: RDS name -> the `stat_prefix` of the first HTTP connection manager naming it.
    rds_stat_prefixes: Mapping[str, str] = field(default_factory=dict)
    #: Named EDS/RDS/SDS resources not received yet: translated empty (a TLS listener whose
    #: secret is missing is left out, its cluster has no hosts), the snapshot is warming.
    warming: tuple[str, ...] = ()

    def snapshot_json(self) -> str:
        """The snapshot as JSON for `Engine.apply`."""
        return snapshot_json(self.snapshot)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building large acyclic trees.

    Decoding and translating a 10k-cluster config allocates millions of containers;
    with the GC on, collections over the growing heap take ~30% of the time.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def snapshot_json(snapshot: Mapping[str, Any]) -> str:
    """Compact JSON of a native snapshot, ready for `fastmesh._native.Engine.apply`."""
    return json.dumps(snapshot, separators=(",", ":"), ensure_ascii=False)


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader (libyaml when available) that refuses duplicate mapping keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # Compare scalar keys by their text (cheap: no construction); Envoy's keys are
        # plain strings. Non-scalar keys are left to the constructor.
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ValueError(f"duplicate key {dup!r}")
    return out


def parse_document(text: str, source: str) -> Any:
    """YAML or JSON (JSON when the text starts with '{'); syntax errors raise ConfigError."""
    try:
        if text.lstrip().startswith("{"):
            return json.loads(text, object_pairs_hook=_no_duplicates)
        return yaml.load(text, Loader=_StrictLoader)
    except (ValueError, yaml.YAMLError) as exc:
        msg = " ".join(str(exc).split())
        raise ConfigError(source, [Problem("", f"not valid YAML/JSON: {msg}")]) from None


def load_bootstrap(path: str | Path) -> Bootstrap:
    """Read and translate an Envoy bootstrap file; raises ConfigError with every problem."""
    return load_bootstrap_document(path)[0]


def load_bootstrap_document(
    path: str | Path, dynamic: DynamicResources | None = None
) -> tuple[Bootstrap, Mapping[str, Any]]:
    """`load_bootstrap`, also returning the document as parsed (for `/config_dump`).

    `dynamic`: the resources ADS delivered (see `translate_bootstrap`).
    """
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(source, [Problem("", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [Problem("", f"not UTF-8: {exc}")]) from None
    with _gc_paused():
        doc = parse_document(text, source)
    if doc is None:
        raise ConfigError(source, [Problem("", "the file is empty")])
    if not isinstance(doc, Mapping):
        raise ConfigError(source, [Problem("", "expected a mapping at the top level")])
    digest = hashlib.sha256(raw)
    if dynamic is not None:
        digest.update(json.dumps(asdict(dynamic), sort_keys=True, default=str).encode())
    version = digest.hexdigest()[:12]
    return translate_bootstrap(doc, source, version=version, dynamic=dynamic), doc


def _node(issues: Issues, doc: Doc) -> tuple[str, str, Mapping[str, Any]]:
    node = get_map(issues, doc, "node", "", _NODE)
    if node is None:
        return "", "", {}
    node_id = get_str(issues, node, "id", "node") or ""
    cluster = get_str(issues, node, "cluster", "node") or ""
    metadata = node.get("metadata", {})
    if not isinstance(metadata, Mapping):
        issues.add("node.metadata", "expected a mapping")
        metadata = {}
    return node_id, cluster, metadata


def _admin(issues: Issues, doc: Doc) -> tuple[str, int] | None:
    admin = get_map(issues, doc, "admin", "", _ADMIN)
    if admin is None:
        return None
    # Admin access logs: accepted only when they go nowhere (the common `/dev/null`),
    # since fastmesh does not log admin requests; anything else is an error.
    log_path = get_str(issues, admin, "access_log_path", "admin")
    if log_path is not None and log_path != _NO_OP_LOG:
        issues.add(
            "admin.access_log_path", f'only "{_NO_OP_LOG}" is supported (no admin access log)'
        )
    for i, raw in enumerate(get_list(issues, admin, "access_log", "admin")):
        p = item("admin.access_log", i)
        entry = obj(issues, raw, p, _ACCESS_LOG)
        if entry is None:
            continue
        cfg = typed_config(issues, entry, "typed_config", p, _FILE_LOG, frozenset({"path"}))
        if cfg is not None and cfg.get("path") != _NO_OP_LOG:
            issues.add(
                at(at(p, "typed_config"), "path"),
                f'only "{_NO_OP_LOG}" is supported (no admin access log), got {cfg.get("path")!r}',
            )
    if "address" not in admin:
        return None  # Envoy: no admin address, no admin listener
    return socket_address(issues, admin["address"], "admin.address", ip_only=True, port_min=0)


def _no_op_sections(issues: Issues, doc: Doc) -> None:
    """Sections accepted only in forms that change nothing fastmesh does."""
    get_duration_ms(issues, doc, "stats_flush_interval", "")  # only stats sinks use it
    get_map(issues, doc, "overload_manager", "", frozenset())
    get_map(issues, doc, "stats_config", "", frozenset())
    rt = get_map(issues, doc, "layered_runtime", "", _RUNTIME)
    if rt is None:
        return
    for i, raw in enumerate(get_list(issues, rt, "layers", "layered_runtime")):
        p = item("layered_runtime.layers", i)
        layer = obj(issues, raw, p, _LAYER)
        if layer is None:
            continue
        get_map(issues, layer, "static_layer", p, frozenset())  # runtime keys change behaviour
        get_map(issues, layer, "admin_layer", p, frozenset())


#: (path, document) of each listener or cluster to translate.
Located = Sequence[tuple[str, object]]


def _indexed(docs: Sequence[object], path: str) -> Located:
    return [(item(path, i), raw) for i, raw in enumerate(docs)]


def _named(docs: Mapping[str, object], kind: str) -> Located:
    return [(f"{kind}[{name}]", raw) for name, raw in sorted(docs.items())]


def _assemble(
    issues: Issues,
    listeners: Located,
    clusters: Located,
    version: str,
    sources: Sources,
    xds: XdsLookup | None = None,
) -> dict[str, Any]:
    refs: ClusterRefs = []
    out_listeners: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    addresses: dict[str, str] = {}
    for i, (p, raw) in enumerate(listeners):
        lst = translate_listener(issues, raw, p, i, refs, sources, xds)
        if lst is None:
            continue
        first = names.setdefault(lst["name"], p)
        if first != p:
            issues.add(at(p, "name"), f"duplicate listener name {lst['name']!r} (first at {first})")
        if not lst["address"].endswith(":0"):
            first = addresses.setdefault(lst["address"], p)
            if first != p:
                issues.add(at(p, "address"), f"address {lst['address']} is already used by {first}")
        out_listeners.append(lst)
    out_clusters: list[dict[str, Any]] = []
    cluster_names: dict[str, str] = {}
    for p, raw in clusters:
        c = translate_cluster(issues, raw, p, sources, xds)
        if c is None:
            continue
        first = cluster_names.setdefault(c["name"], p)
        if first != p:
            issues.add(at(p, "name"), f"duplicate cluster name {c['name']!r} (first at {first})")
        out_clusters.append(c)
    for ref_path, name in refs:
        if name not in cluster_names:
            issues.add(ref_path, f"unknown cluster {name!r} (no cluster of that name is defined)")
    return {"version": version, "listeners": out_listeners, "clusters": out_clusters}


def translate_bootstrap(
    doc: Mapping[str, Any],
    source: str,
    *,
    version: str | None = None,
    dynamic: DynamicResources | None = None,
) -> Bootstrap:
    """A decoded Envoy v3 bootstrap -> `Bootstrap`.

    `source` names the document in errors (usually its file path). `version` defaults
    to a hash of the document. With `dynamic_resources`, `dynamic` is what ADS delivered
    so far: its listeners and clusters join the static ones in the one snapshot (their
    errors read `Listener[name]...`, `Cluster[name]...`). Raises ConfigError listing every
    problem found.
    """
    issues = Issues(source)
    top = obj(issues, doc, "", _BOOTSTRAP)
    if top is None:
        issues.raise_if_any()
    if version is None:
        canon = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
        version = hashlib.sha256(canon.encode()).hexdigest()[:12]
    node_id, node_cluster, node_metadata = _node(issues, doc)
    admin = _admin(issues, doc)
    _no_op_sections(issues, doc)
    static = get_map(issues, doc, "static_resources", "", _STATIC) or {}
    sources = Sources()
    secrets = get_list(issues, static, "secrets", "static_resources")
    translate_secrets(issues, list(secrets), "static_resources.secrets", sources)
    listeners = _indexed(
        get_list(issues, static, "listeners", "static_resources"), "static_resources.listeners"
    )
    clusters = _indexed(
        get_list(issues, static, "clusters", "static_resources"), "static_resources.clusters"
    )
    n_static = len(clusters)
    xds = XdsLookup(dynamic or DynamicResources()) if "dynamic_resources" in doc else None
    if xds is not None:
        translate_sds_secrets(issues, xds.received.secrets, sources)
    if xds is not None and dynamic is not None:
        listeners = [*listeners, *_named(dynamic.listeners, "Listener")]
        clusters = [*clusters, *_named(dynamic.clusters, "Cluster")]
    with _gc_paused():
        snapshot = _assemble(issues, listeners, clusters, version, sources, xds)
    ads = None
    if xds is not None:
        static_clusters = {c["name"]: c for c in snapshot["clusters"][:n_static]}
        ads = ads_source(issues, doc, static_clusters)
    if issues.problems:
        raise ConfigError(source, issues.problems, files=sources.stamps)
    version = sources.version(version)  # a rotated certificate is a new version
    snapshot["version"] = version
    return Bootstrap(
        source=source,
        version=version,
        snapshot=snapshot,
        files=sources.stamps,
        node_id=node_id,
        node_cluster=node_cluster,
        node_metadata=node_metadata,
        admin_address=admin,
        ads=ads,
        eds_names=tuple(sorted(xds.endpoint_names)) if xds else (),
        rds_names=tuple(sorted(xds.route_names)) if xds else (),
        sds_names=tuple(sorted(sources.sds_names)),
        rds_stat_prefixes=dict(xds.route_names) if xds else {},
        warming=(*xds.missing, *sources.missing_secrets()) if xds else (),
    )


def translate_resources(
    listeners: Sequence[Mapping[str, Any]],
    clusters: Sequence[Mapping[str, Any]],
    *,
    source: str,
    version: str,
) -> dict[str, Any]:
    """xDS `Listener` and `Cluster` resources (proto3 JSON dicts, e.g.
    `MessageToDict(msg, preserving_proto_field_name=True)`) -> a native snapshot.

    Same subset and checks as the bootstrap; paths read `listeners[i]...`/`clusters[i]...`.
    TLS contexts may name files but no secrets (SDS is not supported yet).
    """
    issues = Issues(source)
    with _gc_paused():
        snapshot = _assemble(
            issues,
            _indexed(listeners, "listeners"),
            _indexed(clusters, "clusters"),
            version,
            Sources(),
        )
    issues.raise_if_any()
    return snapshot
