"""The xDS state-of-the-world session of one ADS stream, sans-IO: requests and snapshots in,
the DiscoveryResponses to send out. Versions, nonces, ACK and NACK bookkeeping live here.

Rules (the xDS protocol's, as Envoy and go-control-plane play them):

- The first request for a type opens a subscription (any nonce in it is from an earlier
  stream); the current resources are sent at once if a snapshot is known. A later request
  without nonce starts the type over: it is answered in full.
- A request whose nonce is not the last one sent for its type is stale: ignored.
- A request with the last nonce is an ACK (no `error_detail`: its `version_info` is now
  applied) or a NACK (recorded with the error; the same content is never re-sent, only a
  changed one). Either may also change the subscribed names. The same ACK a second time
  is a re-subscription (Envoy re-warming clusters after a CDS update waits for their EDS,
  changed or not): it is answered in full.
- A response is sent when a resource the proxy would receive differs from what it was
  sent (by content digest), when a wildcard type lost a resource, or when the proxy newly
  asks for names. LDS and CDS are wildcard when no
  names are given; EDS and RDS send only the named resources that exist, and after the
  first response only those that changed or are newly asked for (the proxy keeps the rest).
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from envoy.service.discovery.v3 import discovery_pb2

from ._proxy import ProxyInfo, proxy_info
from ._resources import (
    CLUSTER,
    LISTENER,
    TYPE_ORDER,
    Resource,
    Snapshot,
    changes,
    encoded_resources,
    short_type,
)
from ._wire import varint

__all__ = [
    "Nack",
    "ProtocolError",
    "Response",
    "Session",
    "SharedNames",
    "StreamState",
    "TypeState",
]

_WILDCARD_TYPES = (CLUSTER, LISTENER)
_CONTROL_PLANE = "fastmesh"


class ProtocolError(ValueError):
    """The client broke the xDS protocol; the stream ends with INVALID_ARGUMENT."""


@dataclass(frozen=True, slots=True)
class Nack:
    """A response the proxy rejected: which one, and the proxy's reason."""

    type_url: str
    version: str
    nonce: str
    message: str
    code: int


class SharedNames:
    """The resource names of a request, shared by every stream that asks for the same ones:
    100 proxies subscribed to the same 10k assignments hold one tuple and one set of them,
    and an ACK repeating its names (every state-of-the-world ACK does) costs one tuple
    comparison, not a new set of 10k fresh strings."""

    __slots__ = ("__weakref__", "_listed", "_set", "names")

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self._set = frozenset(names)
        self._listed = list(names)

    def same_as(self, requested: Any) -> bool:
        """Whether a request's `resource_names` are these, compared in C: the protobuf
        container equals a list (not a tuple), and making a tuple of 10k new strings per
        ACK cost more than parsing the ACK."""
        return bool(requested == self._listed)

    @classmethod
    def of(cls, names: tuple[str, ...]) -> SharedNames:
        """The live instance for exactly these names, else a new one."""
        found = _LIVE_SHARED_NAMES.get(names)
        if found is None:
            found = _LIVE_SHARED_NAMES[names] = cls(names)
        return found

    def wanted(self, type_url: str) -> frozenset[str] | None:
        """The names asked for; None for a wildcard (no names, or `*`, on LDS and CDS)."""
        wanted = self._set
        if type_url in _WILDCARD_TYPES and (not wanted or "*" in wanted):
            return None
        return wanted - {"*"} if "*" in wanted else wanted


#: Every name set some stream holds, by its names.
_LIVE_SHARED_NAMES: weakref.WeakValueDictionary[tuple[str, ...], SharedNames] = (
    weakref.WeakValueDictionary()
)


@dataclass
class TypeState:
    """Subscription and delivery state of one resource type on one stream."""

    type_url: str
    #: Subscribed names; None is a wildcard subscription (all of the type).
    names: frozenset[str] | None = None
    #: The names of the last request, as sent.
    requested: SharedNames | None = None
    sent_version: str = ""
    sent_nonce: str = ""
    #: Name -> content digest of what the proxy holds from us (to send only changes).
    sent: dict[str, str] = field(default_factory=dict)
    #: Subscribed names already answered; a name outside it is newly asked for.
    answered: frozenset[str] = frozenset()
    #: `sent` is the snapshot's own digests of the whole type, shared with other sessions
    #: (copied before it is changed): a 10k-service mesh keeps one such map, not one per proxy.
    sent_shared: bool = False
    #: The snapshot `sent` was last compared with, for `names`: a request that changes
    #: neither (every ACK) needs no comparison of 10k digests.
    compared: Snapshot | None = None
    acked_version: str = ""
    acked_nonce: str = ""
    #: The last NACK, until a later response is ACKed.
    nack: Nack | None = None
    responses: int = 0

    @property
    def status(self) -> str:
        """`SYNCED` (last response ACKed), `NACK`, `STALE` (sent, not yet ACKed), `PENDING`."""
        if not self.sent_nonce:
            return "PENDING"
        if self.nack is not None and self.nack.nonce == self.sent_nonce:
            return "NACK"
        return "SYNCED" if self.acked_nonce == self.sent_nonce else "STALE"


@dataclass
class StreamState:
    """What both xDS flavours keep per stream: who the proxy is, its snapshot, per-type
    state, the NACKs; `Session` (state of the world) and `_delta.DeltaSession` build on it.
    `snapshots` gives the first snapshot once the node is known (a pure lookup, no I/O)."""

    snapshots: Callable[[ProxyInfo], Snapshot] | None = None
    node: Any = None
    proxy: ProxyInfo | None = None
    snapshot: Snapshot | None = None
    types: dict[str, TypeState] = field(default_factory=dict)
    nacks: list[Nack] = field(default_factory=list)
    _nonces: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _type_of(self, request: Any) -> str:
        """The request's type URL, learning the node from the stream's first request."""
        if self.node is None and request.HasField("node"):
            self.node = request.node
            self.proxy = proxy_info(request.node)
            if self.snapshot is None and self.snapshots is not None:
                self.snapshot = self.snapshots(self.proxy)
        if self.node is None:
            raise ProtocolError("the first request of a stream must carry the node")
        type_url = str(request.type_url)
        if not type_url:
            raise ProtocolError("ADS requests must name their type_url")
        return type_url

    def _nack(self, state: TypeState, request: Any, nonce: str) -> None:
        """Record the proxy's rejection of the response `nonce`."""
        nack = Nack(
            state.type_url,
            state.sent_version,
            nonce,
            str(request.error_detail.message),
            int(request.error_detail.code),
        )
        state.nack = nack
        self.nacks.append(nack)

    def describe(self) -> dict[str, str]:
        """`{"CDS": "SYNCED", ...}`: one word per subscribed type, for proxy-status."""
        return {short_type(t): s.status for t, s in self.types.items()}


@dataclass
class Session(StreamState):
    """One state-of-the-world ADS stream. Feed `receive` each request and `update` each new
    snapshot for this proxy; each returns the responses to send, in order."""

    def receive(self, request: Any) -> list[Any]:
        """Handle one `DiscoveryRequest`."""
        type_url = self._type_of(request)
        state = self.types.get(type_url)
        nonce = str(request.response_nonce)
        if state is None:  # a new subscription (a nonce here is from an earlier stream)
            state = self.types[type_url] = TypeState(type_url)
        elif nonce:
            if nonce != state.sent_nonce:
                return []  # stale: a newer response is on its way to the proxy
            if request.HasField("error_detail"):
                self._nack(state, request, nonce)
            elif state.acked_nonce == nonce:
                # the same ACK again: Envoy re-subscribes (clusters updated by CDS re-warm and
                # wait for their endpoints even when those did not change): answer in full
                state.sent_nonce = ""
            else:
                state.acked_version = str(request.version_info)
                state.acked_nonce = nonce
                state.nack = None
        else:
            state.sent_nonce = ""  # the proxy starts this type over: answer it in full
        if state.requested is None or not state.requested.same_as(request.resource_names):
            state.requested = SharedNames.of(tuple(request.resource_names))
        names = state.requested.wanted(type_url)
        if state.sent_nonce and names is state.names and state.compared is self.snapshot:
            return []  # the proxy holds what this snapshot has for these names
        if names is not None and names is not state.names and names != state.names:
            # forget what is unsubscribed: asking again is new
            state.answered &= names
            if not names.issuperset(state.sent):
                state.sent = {n: d for n, d in state.sent.items() if n in names}
                state.sent_shared = False
        state.names = names
        response = self._respond(state)
        return [response] if response is not None else []

    def update(self, snapshot: Snapshot) -> list[Any]:
        """A new snapshot for this proxy: the responses for every type whose content changed.

        Make before break: when clusters go away, CDS is first sent with the new clusters
        *and* the leaving ones, then listeners and routes stop naming them, and only then a
        last CDS removes them; no response ever names a cluster the proxy lacks (fastmesh
        NACKs such a snapshot; Envoy would answer 503 meanwhile)."""
        previous, self.snapshot = self.snapshot, snapshot
        cds = self.types.get(CLUSTER)
        out = []
        leaving = self._leaving_clusters(cds, previous, snapshot)
        if cds is not None and previous is not None and leaving:
            old = previous.of_type(CLUSTER)
            out.append(self._respond(cds, kept={n: old[n] for n in leaving if n in old}))
        order = [t for t in TYPE_ORDER if t in self.types and not (leaving and t == CLUSTER)]
        order += [t for t in self.types if t not in TYPE_ORDER]
        for t in order:
            # only what changed since the last snapshot can differ from what was sent
            candidates = changes(previous, snapshot, t) if previous is not None else None
            out.append(self._respond(self.types[t], candidates=candidates))
        if leaving and cds is not None:  # the last word: CDS without the leaving clusters
            out.append(self._respond(cds))
        return [r for r in out if r is not None]

    @staticmethod
    def _leaving_clusters(
        cds: TypeState | None, previous: Snapshot | None, snapshot: Snapshot
    ) -> set[str]:
        if cds is None or cds.names is not None or not cds.sent_nonce:
            return set()
        now = snapshot.of_type(CLUSTER)
        if previous is not None:
            return {
                n for n in changes(previous, snapshot, CLUSTER) if n in cds.sent and n not in now
            }
        return set(cds.sent).difference(now)

    def _respond(
        self,
        state: TypeState,
        *,
        kept: dict[str, Resource] | None = None,
        candidates: frozenset[str] | None = None,
    ) -> Response | None:
        """The response `state` needs now, or None; `kept`: resources of the previous
        snapshot to send as well (make before break); `candidates`: the only names that may
        have changed since the last call (None: compare everything)."""
        if self.snapshot is None:
            return None
        if state.sent_nonce and candidates is not None and not kept:
            return self._respond_to_changes(state, candidates)
        available = self.snapshot.of_type(state.type_url)
        if kept:
            available = {**kept, **available}
            order = sorted(available)
        else:
            order = self.snapshot.names(state.type_url)
        if state.names is None or state.names.issuperset(order):
            names = order
        else:
            names = [n for n in order if n in state.names]
        whole = not kept and len(names) == len(available)
        if whole:  # the snapshot's own list and digests, shared by every proxy
            chosen = self.snapshot.ordered(state.type_url)
            digests = self.snapshot.digests(state.type_url)
        else:
            chosen = [available[n] for n in names]
            digests = {r.name: r.digest for r in chosen}
        if state.sent_nonce:
            changed = any(state.sent.get(n) != d for n, d in digests.items())
            # wildcard (LDS, CDS): a resource left out of a response is deleted by the proxy
            removed = state.names is None and not state.sent.keys() <= digests.keys()
            newly_asked = state.names is not None and not state.names <= state.answered
            if not (changed or removed or newly_asked):
                state.compared = self.snapshot
                return None
            if state.names is not None:
                # EDS, RDS: a response may hold only some of the names (the proxy keeps the
                # rest), so one moved endpoint is one assignment, not every one again
                chosen = [
                    r
                    for r in chosen
                    if state.sent.get(r.name) != r.digest or r.name not in state.answered
                ]
        state.sent, state.sent_shared = digests, whole
        state.compared = None if kept else self.snapshot
        state.answered = state.names or frozenset()
        return self._response(state, chosen, "-mbb" if kept else "")

    def _respond_to_changes(self, state: TypeState, candidates: frozenset[str]) -> Response | None:
        """`_respond` after a new snapshot, looking only at the names that changed in it
        (a moved endpoint in a 10k-service mesh: one name, not 10k, for every proxy)."""
        assert self.snapshot is not None
        available = self.snapshot.of_type(state.type_url)
        names = candidates if state.names is None else candidates & state.names
        state.compared = self.snapshot
        changed = {}
        removed = []
        for n in sorted(names):
            r = available.get(n)
            if r is None:
                if n in state.sent:
                    removed.append(n)
            elif state.sent.get(n) != r.digest:
                changed[n] = r
        if not changed and not removed:
            return None
        names_held = state.names
        still_whole = state.sent_shared and (
            names_held is None or all(n in names_held for n in candidates if n in available)
        )
        if still_whole:  # the proxy holds the whole type again: share the snapshot's digests
            state.sent = self.snapshot.digests(state.type_url)
        else:
            if state.sent_shared:
                state.sent, state.sent_shared = dict(state.sent), False
            for n in removed:
                del state.sent[n]
            state.sent.update((n, r.digest) for n, r in changed.items())
        if state.names is not None:  # EDS, RDS: only what changed
            return self._response(state, list(changed.values()))
        return self._response(state, [available[n] for n in self.snapshot.names(state.type_url)])

    def _response(self, state: TypeState, chosen: list[Resource], suffix: str = "") -> Response:
        assert self.snapshot is not None
        nonce = str(next(self._nonces))
        state.sent_version = self.snapshot.version + suffix
        state.sent_nonce = nonce
        state.responses += 1
        resources = encoded_resources(self.snapshot, state.type_url, chosen)
        return Response(state.type_url, state.sent_version, nonce, tuple(chosen), resources)


@dataclass(frozen=True, slots=True)
class Response:
    """A `DiscoveryResponse`, encoded by hand: its `resources` entries are joined once and
    shared by every proxy that receives them (`chunks`); `message` decodes it (tests)."""

    type_url: str
    version_info: str
    nonce: str
    chosen: tuple[Resource, ...]
    #: The `resources` entries, encoded.
    encoded: bytes

    @property
    def resources(self) -> list[Any]:
        return [r.packed for r in self.chosen]

    def chunks(self) -> list[bytes]:
        """The serialized message in pieces (fields in number order, as protobuf writes
        them): the shared resources in the middle are never copied per proxy."""
        return [
            _string(1, self.version_info),
            self.encoded,
            _string(4, self.type_url) + _string(5, self.nonce) + _CONTROL_PLANE_FIELD,
        ]

    def SerializeToString(self) -> bytes:
        return b"".join(self.chunks())

    def message(self) -> Any:
        return discovery_pb2.DiscoveryResponse.FromString(self.SerializeToString())


def _string(number: int, text: str) -> bytes:
    raw = text.encode()
    return varint(number << 3 | 2) + varint(len(raw)) + raw if raw else b""


_CONTROL_PLANE_FIELD = bytes(
    discovery_pb2.DiscoveryResponse(
        control_plane={"identifier": _CONTROL_PLANE}
    ).SerializeToString()
)
