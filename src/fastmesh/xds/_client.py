"""The ADS client: one StreamAggregatedResources (or DeltaAggregatedResources) call,
translation of each response into a snapshot, ACK/NACK, warming, and reconnection with back-off.

Each response is translated together with everything accepted so far (and the bootstrap's
static part) by the `ConfigTarget`. A response that does not translate is NACKed with the
translator's text; one that translates is ACKed. The snapshot is applied only when it is
complete: every EDS, RDS and SDS resource the clusters and listeners name has arrived
(Envoy's warming). That wait is bounded by `warm_timeout` (Envoy's `initial_fetch_timeout`,
15 s): past it, the snapshot is applied with the missing endpoints / routes empty, as Envoy
does; a TLS listener whose secret is missing stays unbound and a TLS cluster without its
secret has no hosts, so nothing meant to be TLS ever goes plaintext.
If the engine refuses a snapshot, the response that completed it is NACKed instead.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Iterable
from typing import Any, Protocol

import trio
from google.protobuf.message import DecodeError

from fastmesh.config._compile import Compiled
from fastmesh.config._errors import ConfigError
from fastmesh.config._xds import DynamicResources

from ._call import CallEnded, open_call
from ._delta import DeltaAdsSession
from ._resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, short_type
from ._session import ADS_PATH, AdsSession, SessionBase
from ._stats import UpdateStats

__all__ = ["ADS_PATH", "AdsClient", "Call", "ConfigTarget"]

log = logging.getLogger("fastmesh.proxy.xds")

_SUBSCRIBED_BY = {CLUSTER: ENDPOINT, LISTENER: ROUTE}


class Call(Protocol):
    """A bidirectional stream of messages (`_call.GrpcCall`)."""

    async def send(self, message: bytes) -> None: ...

    async def receive(self) -> bytes: ...


class ConfigTarget(Protocol):
    """Where snapshots go: the proxy (translation in a child, the engine)."""

    async def translate(self, dynamic: DynamicResources) -> Compiled:
        """The bootstrap plus `dynamic` as one snapshot; raises ConfigError."""

    async def apply(self, compiled: Compiled) -> None:
        """Swap the engine to it (a no-op if it is the running one); raises ValueError
        when the engine refuses it."""


class AdsClient:
    """`run` until cancelled; `stats` has Envoy's `control_plane.*` and update counters."""

    def __init__(
        self,
        addresses: tuple[tuple[str, int], ...],
        node: Any,
        target: ConfigTarget,
        *,
        delta: bool = False,
        warm_timeout: float = 15.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        #: The management server's endpoints; `address` is the one in use.
        self.addresses = addresses
        self.address = addresses[0]
        #: Incremental xDS (`api_type: DELTA_GRPC`) or state of the world.
        self.session: SessionBase = DeltaAdsSession(node) if delta else AdsSession(node)
        self.target = target
        self.warm_timeout = warm_timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.connected = False
        #: Set once CDS and LDS have each been answered and nothing is warming: Envoy's
        #: end of initialization (a NACKed type counts as answered, as in Envoy).
        self.initialized = trio.Event()
        self._answered: set[str] = set()
        #: Envoy's `update_*` counters of each subscription (CDS, LDS, each EDS and RDS name).
        self.updates = UpdateStats()
        #: Consecutive failed connections (the back-off exponent).
        self._failures = 0
        #: Per type (CDS, EDS, ...): why its last response was NACKed, until one is accepted.
        self.rejected: dict[str, str] = {}
        self._warming: Compiled | None = None
        self._warm_deadline = float("inf")

    def stats(self) -> dict[str, int]:
        return {**self.updates.counters, "control_plane.connected_state": int(self.connected)}

    def describe(self) -> dict[str, Any]:
        """For `/config_dump`: the server, the protocol (`GRPC` or `DELTA_GRPC`), and per
        type the accepted version and names."""
        subscriptions: dict[str, Any] = {}
        for type_url, sub in self.session.subscriptions.items():
            kind = short_type(type_url)
            entry = subscriptions[kind] = {
                "version": sub.version,
                "resource_names": sorted(sub.resources),
            }
            if kind in self.rejected:
                entry["last_rejected"] = self.rejected[kind]
        return {
            "server": "{}:{}".format(*self.address),
            "protocol": self.session.api_type,
            "connected": self.connected,
            "warming": list(self._warming.warming) if self._warming is not None else [],
            "subscriptions": subscriptions,
        }

    async def run(self) -> None:
        """Keep one ADS stream open; after a break, reconnect with jittered exponential
        back-off, to the next endpoint of the management server's cluster (another
        replica) when there are several. The last applied snapshot keeps serving meanwhile."""
        for turn in itertools.count():
            self.address = host, port = self.addresses[turn % len(self.addresses)]
            try:
                async with open_call(host, port, self.session.path) as call:
                    self.connected = True
                    log.info("ADS stream to %s:%d open", host, port)
                    await self.converse(call)
            except* (OSError, CallEnded, DecodeError) as group:
                log.warning("ADS stream to %s:%d: %s", host, port, group.exceptions[0])
            except* Exception:  # a bug must cost one stream, never the proxy
                log.exception("ADS stream to %s:%d failed", host, port)
            finally:
                self.connected = False
            self._failures += 1
            delay = min(self.backoff_max, self.backoff_base * 2 ** min(self._failures - 1, 16))
            await trio.sleep(delay * random.uniform(0.5, 1.0))

    async def converse(self, call: Call) -> None:
        """One ADS stream: subscribe, then answer every response until the call ends
        (raises CallEnded). `run` calls it again after each break."""
        await self._send(call, self.session.open_stream())
        while True:
            with trio.move_on_at(self._warm_deadline) as waiting:
                raw = await call.receive()
            if waiting.cancelled_caught:
                await self._warm_timed_out()
                continue
            self._failures = 0  # the server answers: the next break starts the back-off over
            response = self.session.parse(raw)
            await self._send(call, await self._handle(response))

    async def _send(self, call: Call, requests: Iterable[Any]) -> None:
        for request in requests:
            await call.send(request.SerializeToString())

    async def _handle(self, response: Any) -> list[Any]:
        """One response -> the requests to send: its ACK or NACK, then new subscriptions
        (the EDS/RDS and SDS names of what was accepted; LDS once CDS had its first answer)."""
        type_url = str(response.type_url)
        request, compiled = await self._judge(response)
        self._answered.add(type_url)
        self._check_initialized()
        out = [request]
        if compiled is not None and type_url in _SUBSCRIBED_BY:
            dependent = _SUBSCRIBED_BY[type_url]
            names = compiled.eds_names if dependent == ENDPOINT else compiled.rds_names
            out.append(self.session.subscribe(dependent, names))
            self.updates.track(dependent, names)
            out.append(self.session.subscribe(SECRET, compiled.sds_names))
            self.updates.track(SECRET, compiled.sds_names)
        if type_url == CLUSTER:
            # Envoy's order: listeners after clusters, so no route names a cluster not yet known
            out.append(self.session.subscribe_all(LISTENER))
        return [r for r in out if r is not None]

    async def _judge(self, response: Any) -> tuple[Any, Compiled | None]:
        """The ACK and the accepted snapshot, or the NACK and None."""
        type_url = str(response.type_url)
        kind = short_type(type_url)
        version = self.session.version_of(response)
        try:
            candidate = self.session.candidate(response)
            compiled = await self.target.translate(self.session.dynamic(candidate))
        except (ValueError, ConfigError) as exc:  # ConfigError is a ValueError too
            return self._reject(type_url, kind, version, str(exc)), None
        if not compiled.warming:
            try:
                await self._apply(compiled)
            except ValueError as exc:
                reason = f"the engine refused the snapshot: {exc}"
                return self._reject(type_url, kind, version, reason), None
        else:
            if self._warming is None:
                self._warm_deadline = trio.current_time() + self.warm_timeout
            self._warming = compiled
        self.updates.rds_stat_prefixes = compiled.rds_stat_prefixes
        self.updates.accepted(type_url, candidate.updated)
        log.info("%s version %s accepted", kind, candidate.version)
        self.rejected.pop(kind, None)
        return self.session.accept(candidate), compiled

    def _reject(self, type_url: str, kind: str, version: str, reason: str) -> Any:
        sub = self.session.subscriptions.get(type_url)
        # Envoy: every watch of the type sees the failure
        self.updates.rejected(type_url, (sub.names or ()) if sub is not None else ())
        self.rejected[kind] = reason
        log.error("%s version %s rejected: %s", kind, version, reason)
        return self.session.reject(type_url, reason)

    async def _apply(self, compiled: Compiled) -> None:
        self._warming, self._warm_deadline = None, float("inf")
        await self.target.apply(compiled)

    def _check_initialized(self) -> None:
        if self._warming is None and self._answered >= {CLUSTER, LISTENER}:
            self.initialized.set()

    async def _warm_timed_out(self) -> None:
        compiled = self._warming
        assert compiled is not None
        log.warning(
            "still warming after %gs, applying without: %s",
            self.warm_timeout,
            ", ".join(compiled.warming),
        )
        try:
            await self._apply(compiled)
        except ValueError as exc:
            log.error("the engine refused the snapshot: %s", exc)
        self._check_initialized()
