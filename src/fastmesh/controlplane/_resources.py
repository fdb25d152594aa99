"""xDS resource types, and per-proxy snapshots of encoded, digested resources.

A resource is encoded once (`_wire`, no protobuf objects on the way) into the bytes of a
`DiscoveryResponse.resources` entry; responses are joined from those entries, and a whole
type's entries are joined once for every proxy that receives the same content. A snapshot's
versions are content digests kept as sums of per-resource digests, so a derived snapshot (one
more layer, one changed assignment) costs what changed, not the mesh, and equal content still
has equal versions on every replica."""

from __future__ import annotations

import hashlib
import itertools
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2  # noqa: F401
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2  # noqa: F401
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2  # noqa: F401
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2  # noqa: F401
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import any_pb2

from . import _speedups
from ._wire import plan_for, varint

__all__ = [
    "CLUSTER",
    "CORS",
    "CORS_POLICY",
    "ENDPOINT",
    "FAULT",
    "HCM",
    "HTTP_PROTOCOL_OPTIONS",
    "LISTENER",
    "ROUTE",
    "ROUTER",
    "SECRET",
    "TCP_PROXY",
    "TYPE_ORDER",
    "Resource",
    "Snapshot",
    "build_snapshot",
    "changes",
    "encoded_resources",
    "pack",
    "resource",
    "short_type",
]

_PREFIX = "type.googleapis.com/"
CLUSTER = _PREFIX + "envoy.config.cluster.v3.Cluster"
ENDPOINT = _PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER = _PREFIX + "envoy.config.listener.v3.Listener"
ROUTE = _PREFIX + "envoy.config.route.v3.RouteConfiguration"
#: SDS: served by `_sds.SecretIssuer`, merged into each proxy's snapshot by the hub.
SECRET = _PREFIX + "envoy.extensions.transport_sockets.tls.v3.Secret"
HCM = _PREFIX + http_connection_manager_pb2.HttpConnectionManager.DESCRIPTOR.full_name
ROUTER = _PREFIX + router_pb2.Router.DESCRIPTOR.full_name
FAULT = _PREFIX + fault_pb2.HTTPFault.DESCRIPTOR.full_name
CORS = _PREFIX + cors_pb2.Cors.DESCRIPTOR.full_name
CORS_POLICY = _PREFIX + cors_pb2.CorsPolicy.DESCRIPTOR.full_name
TCP_PROXY = _PREFIX + tcp_proxy_pb2.TcpProxy.DESCRIPTOR.full_name
HTTP_PROTOCOL_OPTIONS = _PREFIX + http_protocol_options_pb2.HttpProtocolOptions.DESCRIPTOR.full_name

#: The order Envoy wants them (clusters before their endpoints, listeners before routes).
TYPE_ORDER = (CLUSTER, ENDPOINT, LISTENER, ROUTE)

_MESSAGES: dict[str, Any] = {
    CLUSTER: cluster_pb2.Cluster,
    ENDPOINT: endpoint_pb2.ClusterLoadAssignment,
    LISTENER: listener_pb2.Listener,
    ROUTE: route_pb2.RouteConfiguration,
}
_SHORT = {CLUSTER: "CDS", ENDPOINT: "EDS", LISTENER: "LDS", ROUTE: "RDS", SECRET: "SDS"}
_NAME_FIELD = {CLUSTER: "name", ENDPOINT: "cluster_name", LISTENER: "name", ROUTE: "name"}


def short_type(type_url: str) -> str:
    """`CDS`, `EDS`, `LDS`, `RDS`, `SDS`, or the type URL itself."""
    return _SHORT.get(type_url, type_url)


_MOD = 1 << 128


@dataclass(frozen=True, slots=True)
class Resource:
    name: str
    #: The resource as a `DiscoveryResponse.resources` entry: tag, length, `Any` bytes.
    entry: bytes
    #: sha256 of the name and the serialized message: equal digests, equal resources.
    digest: str

    @property
    def packed(self) -> any_pb2.Any:
        """The resource as a protobuf `Any` (decoded on demand: tests and delta xDS)."""
        start = 1
        while self.entry[start] & 0x80:  # past the tag and the length varint
            start += 1
        return any_pb2.Any.FromString(self.entry[start + 1 :])

    @property
    def mix(self) -> int:
        """This resource's share of its type's version sum."""
        return int(self.digest[:32], 16)


def resource(type_url: str, name: str, blob: bytes) -> Resource:
    """One serialized message of `type_url` as a snapshot resource."""
    url = type_url.encode()
    any_bytes = b"\x0a" + varint(len(url)) + url + b"\x12" + varint(len(blob)) + blob
    digest = hashlib.sha256(name.encode() + b"\0" + blob).hexdigest()
    return Resource(name, b"\x12" + varint(len(any_bytes)) + any_bytes, digest)


def pack(name: str, message: Any) -> Resource:
    """One protobuf message as a snapshot resource."""
    type_url = _PREFIX + message.DESCRIPTOR.full_name
    return resource(type_url, name, message.SerializeToString(deterministic=True))


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Snapshot:
    """One proxy's complete config at one version.

    `sums` holds each type's version as a sum of its resources' digests (order free, so it
    is updated by what changes). A snapshot made by `merged` keeps its `parts`, so the
    change between two snapshots made alike is found part by part (`changes`)."""

    version: str = ""
    resources: Mapping[str, Mapping[str, Resource]] = field(default_factory=dict)
    sums: Mapping[str, int] = field(default_factory=dict)
    parts: tuple[Snapshot, ...] = ()
    #: Made by `replaced`: the snapshot it came from (weakly: no chain of generations is
    #: kept alive) and the names changed per type.
    base: tuple[weakref.ref[Snapshot], Mapping[str, frozenset[str]]] | None = None

    @classmethod
    def of(cls, resources: Mapping[str, Mapping[str, Resource]]) -> Snapshot:
        sums = {t: sum(r.mix for r in rs.values()) % _MOD for t, rs in resources.items()}
        return cls(_version(sums), resources, sums)

    #: Per type, its names sorted and its digests by name (computed once, however many
    #: proxies ask, and shared by the sessions that hold the whole type).
    _order: dict[str, list[str]] = field(default_factory=dict, compare=False, repr=False)
    _digests: dict[str, dict[str, str]] = field(default_factory=dict, compare=False, repr=False)
    _ordered: dict[str, list[Resource]] = field(default_factory=dict, compare=False, repr=False)

    def of_type(self, type_url: str) -> Mapping[str, Resource]:
        return self.resources.get(type_url, {})

    def names(self, type_url: str) -> list[str]:
        """The type's resource names, sorted (responses list resources in name order)."""
        order = self._order.get(type_url)
        if order is None:
            source, _ = self._source(type_url)
            order = source.names(type_url) if source else sorted(self.of_type(type_url))
            self._order[type_url] = order
        return order

    def ordered(self, type_url: str) -> list[Resource]:
        """The type's resources in name order (shared: never mutate it)."""
        ordered = self._ordered.get(type_url)
        if ordered is None:
            source, changed = self._source(type_url)
            if source is not None and not changed:
                ordered = source.ordered(type_url)
            else:
                resources = self.of_type(type_url)
                ordered = [resources[n] for n in self.names(type_url)]
            self._ordered[type_url] = ordered
        return ordered

    def digests(self, type_url: str) -> dict[str, str]:
        """Name -> digest of every resource of the type (shared: never mutate it)."""
        digests = self._digests.get(type_url)
        if digests is None:
            resources = self.of_type(type_url)
            source, changed = self._source(type_url)
            if source is None:
                digests = {n: resources[n].digest for n in self.names(type_url)}
            elif not changed:
                digests = source.digests(type_url)
            else:  # the same names (same order), a few resources replaced
                digests = dict(source.digests(type_url))
                digests.update((n, resources[n].digest) for n in changed)
            self._digests[type_url] = digests
        return digests

    def _source(self, type_url: str) -> tuple[Snapshot | None, frozenset[str]]:
        """A snapshot whose names (and digests, but for the changed names returned) this
        one's type shares: a part holding the very same resources, or the snapshot this
        one `replaced` when no name was added. A 10k-assignment map is then derived from
        the last one, not rebuilt, for every kind of proxy on every endpoint change."""
        resources = self.of_type(type_url)
        for part in self.parts:
            if part.of_type(type_url) is resources:
                return part, frozenset()
        base = self.base[0]() if self.base is not None else None
        if base is None or self.base is None:
            return None, frozenset()
        changed = self.base[1].get(type_url, frozenset())
        held = base.of_type(type_url)
        if all(n in held for n in changed):
            return base, changed
        return None, frozenset()

    def type_version(self, type_url: str) -> str:
        """A digest of the type's content (equal content, equal version)."""
        return f"{self.sums.get(type_url, 0):032x}"

    def merged(self, other: Snapshot) -> Snapshot:
        """This snapshot plus every resource of `other` (same names: `other`'s win)."""
        if not any(other.resources.values()):
            return self
        resources = dict(self.resources)
        sums = dict(self.sums)
        for type_url, theirs in other.resources.items():
            if not theirs:
                continue
            mine = self.of_type(type_url)
            shadowed = sum(mine[n].mix for n in theirs if n in mine)
            resources[type_url] = {**mine, **theirs} if mine else theirs
            total = sums.get(type_url, 0) + other.sums.get(type_url, 0) - shadowed
            sums[type_url] = total % _MOD
        return Snapshot(_version(sums), resources, sums, parts=(self, other))

    def with_type(self, type_url: str, resources: Mapping[str, Resource]) -> Snapshot:
        """This snapshot plus `type_url` (a type it does not hold yet: the secrets)."""
        return self.merged(Snapshot.of({type_url: resources}))

    def replaced(self, changed: Mapping[str, Mapping[str, Resource]]) -> Snapshot:
        """This snapshot with some resources changed or added, per type (one moved
        endpoint: one assignment), in time proportional to the change."""
        resources = dict(self.resources)
        sums = dict(self.sums)
        for type_url, theirs in changed.items():
            mine = self.of_type(type_url)
            total = sums.get(type_url, 0) + sum(r.mix for r in theirs.values())
            total -= sum(mine[n].mix for n in theirs if n in mine)
            resources[type_url] = {**mine, **theirs}
            sums[type_url] = total % _MOD
        names = {t: frozenset(rs) for t, rs in changed.items()}
        return Snapshot(_version(sums), resources, sums, base=(weakref.ref(self), names))


def _version(sums: Mapping[str, int]) -> str:
    h = hashlib.sha256()
    for type_url, total in sorted(sums.items()):
        h.update(f"{type_url}\0{total:x}\n".encode())
    return h.hexdigest()[:16]


#: (id of old mapping, id of new mapping) -> (the two, changed-or-removed names); recent pairs
#: only. Every proxy of one kind holds the same mappings, so a change is diffed once.
_CHANGES: dict[tuple[int, int], tuple[object, object, frozenset[str]]] = {}
_CHANGES_KEPT = 64


def changes(old: Snapshot, new: Snapshot, type_url: str) -> frozenset[str]:
    """The names of `type_url` whose resource differs between the snapshots (changed,
    added or removed); part by part when both were merged alike."""
    if old is new:
        return frozenset()
    if new.base is not None and new.base[0]() is old:
        return new.base[1].get(type_url, frozenset())
    if old.parts and len(old.parts) == len(new.parts):
        out: frozenset[str] = frozenset()
        for a, b in zip(old.parts, new.parts, strict=True):
            out |= changes(a, b, type_url)
        return out
    mine, theirs = old.of_type(type_url), new.of_type(type_url)
    if mine is theirs:
        return frozenset()
    key = (id(mine), id(theirs))
    hit = _CHANGES.get(key)
    if hit is not None and hit[0] is mine and hit[1] is theirs:
        return hit[2]
    found = frozenset(
        itertools.chain(
            (n for n, r in theirs.items() if (o := mine.get(n)) is None or o.digest != r.digest),
            (n for n in mine if n not in theirs),
        )
    )
    if len(_CHANGES) >= _CHANGES_KEPT:
        del _CHANGES[next(iter(_CHANGES))]
    _CHANGES[key] = (mine, theirs, found)
    return found


#: (type URL, type version) -> the entries of every resource of a snapshot's type, joined in
#: name order: a full state-of-the-world response, encoded once for all proxies that get it.
_JOINED: dict[tuple[str, str], bytes] = {}
_JOINED_KEPT = 16


def encoded_resources(snapshot: Snapshot, type_url: str, chosen: list[Resource]) -> bytes:
    """The `resources` entries of a response carrying `chosen` (shared when it is the
    snapshot's whole type, as on every first push)."""
    if len(chosen) != len(snapshot.of_type(type_url)) or len(chosen) < 2:
        return b"".join([r.entry for r in chosen])
    key = (type_url, snapshot.type_version(type_url))
    joined = _JOINED.get(key)
    if joined is None:
        if len(_JOINED) >= _JOINED_KEPT:
            del _JOINED[next(iter(_JOINED))]
        joined = _JOINED[key] = b"".join([r.entry for r in chosen])
    return joined


def memoize(type_url: str, doc: dict[str, Any], memo: dict[int, bytes]) -> None:
    """Encode the shared documents `doc` holds into `memo` ahead of the snapshots that list
    them (each must stay alive as long as `memo`: see `build_snapshot`)."""
    _speedups.encode(plan_for(_MESSAGES[type_url].DESCRIPTOR), doc, memo)


def _encode_document(type_url: str, doc: dict[str, Any], memo: dict[int, bytes]) -> Resource:
    blob = _speedups.encode(plan_for(_MESSAGES[type_url].DESCRIPTOR), doc, memo)
    return resource(type_url, str(doc[_NAME_FIELD[type_url]]), blob)


def build_snapshot(
    documents: Mapping[str, list[dict[str, Any]]], memo: dict[int, bytes] | None = None
) -> Snapshot:
    """Envoy-JSON documents per type URL -> encoded, digested resources (a document shared
    by several resources, such as a virtual host, is encoded once; `memo` keeps that across
    builds whose documents all stay alive as long as it does).

    The version is a digest of the content: equal config, equal version (on every replica).
    Raises `_wire.EncodeError` naming the bad field: a translator bug.
    """
    memo = {} if memo is None else memo
    out: dict[str, dict[str, Resource]] = {}
    for type_url, docs in documents.items():
        by_name: dict[str, Resource] = {}
        for doc in docs:
            r = _encode_document(type_url, doc, memo)
            by_name[r.name] = r
        out[type_url] = by_name
    return Snapshot.of(out)
