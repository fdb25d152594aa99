"""The incremental (delta) xDS session of one DeltaAggregatedResources stream, sans-IO: the
same bookkeeping as the state-of-the-world `Session` (per-type `TypeState`, NACKs, status),
with delta's rules:

- a subscription changes by `resource_names_subscribe` / `_unsubscribe`; CDS and LDS are
  wildcard when the first request names nothing (or `*`);
- `initial_resource_versions` (a reconnecting proxy) says what it already holds: only what
  differs is sent;
- a response carries only the resources that changed (each with its version, the content
  digest) and `removed_resources` for the ones that are gone;
- a request with the last nonce is an ACK, or with `error_detail` a NACK (recorded; the same
  content is never re-sent, only a changed one); a stale nonce's ACK is ignored, but its
  subscription changes apply;
- make before break, as the state-of-the-world session: clusters that leave are removed by a
  last CDS response, after listeners and routes stop naming them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from envoy.service.discovery.v3 import discovery_pb2

from ._resources import CLUSTER, LISTENER, TYPE_ORDER, Snapshot
from ._session import StreamState, TypeState

__all__ = ["DeltaSession", "Sent"]

_WILDCARD_TYPES = (CLUSTER, LISTENER)
_CONTROL_PLANE = "fastmesh"


def _version(digest: str) -> str:
    """A resource's version as the proxy sees it (our content digest, shortened)."""
    return digest[:16]


@dataclass(frozen=True, slots=True)
class Sent:
    """One delta response: what it carried (for logs and tests)."""

    type_url: str
    nonce: str
    resources: tuple[str, ...]
    removed: tuple[str, ...]


@dataclass
class DeltaSession(StreamState):
    """Feed `receive` each `DeltaDiscoveryRequest` and `update` each new snapshot; each
    returns the `DeltaDiscoveryResponse`s to send, in order."""

    #: The last responses sent (a bounded record).
    sent: list[Sent] = field(default_factory=list)

    def receive(self, request: Any) -> list[Any]:
        type_url = self._type_of(request)
        subscribe = {str(n) for n in request.resource_names_subscribe}
        unsubscribe = {str(n) for n in request.resource_names_unsubscribe}
        state = self.types.get(type_url)
        if state is None:
            state = self.types[type_url] = TypeState(type_url, names=frozenset())
            if type_url in _WILDCARD_TYPES and (not subscribe or "*" in subscribe):
                state.names = None
            # what a reconnecting proxy holds; versions are digests, so a replica agrees
            state.sent = {str(k): str(v) for k, v in request.initial_resource_versions.items()}
        else:
            self._acknowledge(state, request)
        if state.names is not None:
            names = (state.names | subscribe) - unsubscribe
            state.names = None if "*" in names else frozenset(names)
        for name in unsubscribe:  # the proxy forgets them: asking again is new
            state.sent.pop(name, None)
        response = self._respond(state)
        return [response] if response is not None else []

    def _acknowledge(self, state: TypeState, request: Any) -> None:
        nonce = str(request.response_nonce)
        if not nonce or nonce != state.sent_nonce:
            return
        if request.HasField("error_detail"):
            self._nack(state, request, nonce)
        else:
            state.acked_version, state.acked_nonce, state.nack = state.sent_version, nonce, None

    def update(self, snapshot: Snapshot) -> list[Any]:
        """A new snapshot for this proxy: one response per type with something changed.

        Clusters that leave are removed last (fastmesh-proxy NACKs a response that removes
        a cluster a route still names, and a NACKed delta is never resent)."""
        self.snapshot = snapshot
        order = [t for t in TYPE_ORDER if t in self.types]
        order += [t for t in self.types if t not in TYPE_ORDER]
        cds = self.types.get(CLUSTER)
        leaving: frozenset[str] = frozenset()
        if cds is not None and cds.names is None:
            leaving = frozenset(cds.sent).difference(snapshot.of_type(CLUSTER))
        out = [self._respond(self.types[t], keep=leaving if t == CLUSTER else None) for t in order]
        if leaving and cds is not None:  # the last word: the leaving clusters removed
            out.append(self._respond(cds))
        return [r for r in out if r is not None]

    def _respond(self, state: TypeState, keep: frozenset[str] | None = None) -> Any | None:
        """What changed for `state`; names in `keep` are not removed yet."""
        if self.snapshot is None:
            return None
        available = self.snapshot.of_type(state.type_url)
        wanted = available.keys() if state.names is None else state.names & available.keys()
        versions = {n: _version(available[n].digest) for n in sorted(wanted)}
        changed = [n for n, v in versions.items() if state.sent.get(n) != v]
        held = {n: v for n, v in state.sent.items() if keep and n in keep}
        removed = sorted(n for n in state.sent if n not in versions and n not in held)
        if not changed and not removed and state.sent_nonce:
            return None
        if not changed and not removed and state.names is not None and not versions:
            return None  # named resources that do not exist (yet): nothing to say
        nonce = str(next(self._nonces))
        state.sent_version = self.snapshot.version
        state.sent_nonce = nonce
        state.sent = {**held, **versions}
        state.answered = frozenset(versions)
        state.responses += 1
        self.sent = [*self.sent[-31:], Sent(state.type_url, nonce, tuple(changed), tuple(removed))]
        return discovery_pb2.DeltaDiscoveryResponse(
            system_version_info=self.snapshot.version,
            type_url=state.type_url,
            nonce=nonce,
            resources=[
                discovery_pb2.Resource(name=n, version=versions[n], resource=available[n].packed)
                for n in changed
            ],
            removed_resources=removed,
            control_plane={"identifier": _CONTROL_PLANE},
        )
