"""SDS: each proxy's workload certificate (`default`) and trust bundle (`ROOTCA`), Istio's
secret names, issued by the mesh CA and renewed at half life.

The control plane acts as the node agent here, as istio-agent does beside Envoy: Envoy cannot
make a CSR over SDS, so the workload key is generated in this process (through the same
CSR path a workload of ours uses) and sent to the proxy in the `default` secret. A sidecar
that makes its own key and CSR keeps the key on the workload; this path is for Envoy.
The identity is the node's metadata (`NAMESPACE`, `SERVICE_ACCOUNT`), which this control
plane does not authenticate: serve SDS only to proxies that reach it over a trusted path.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import trio
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2

from fastmesh.ca import DEFAULT_TTL, CertificateAuthority, SpiffeId, new_workload_key, renew_at

from ._proxy import ProxyInfo
from ._resources import Resource, pack

__all__ = ["DEFAULT_SECRET", "ROOT_SECRET", "IssuedSecret", "SecretIssuer"]

log = logging.getLogger("fastmesh.controlplane")

DEFAULT_SECRET = "default"
ROOT_SECRET = "ROOTCA"


@dataclass(frozen=True, slots=True)
class IssuedSecret:
    """One identity's current certificate, as the `default` secret."""

    identity: SpiffeId
    serial: int
    renew_at: dt.datetime
    resource: Resource


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SecretIssuer:
    """Issues and renews `default` per identity; serves `ROOTCA` from the CA's bundle.

    `run` (in the control plane's nursery) renews each certificate at half its lifetime and
    calls `on_change` so that sessions push the new secret.
    """

    def __init__(
        self,
        ca: CertificateAuthority,
        *,
        ttl: dt.timedelta = DEFAULT_TTL,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.ca = ca
        self.ttl = ttl
        self.on_change = on_change
        self.issued: dict[SpiffeId, IssuedSecret] = {}
        self._new = trio.Event()

    @property
    def trust_domain(self) -> str:
        return self.ca.trust_domain

    def identity_of(self, proxy: ProxyInfo) -> SpiffeId:
        return SpiffeId(self.ca.trust_domain, proxy.namespace, proxy.service_account)

    def resources_for(self, proxy: ProxyInfo) -> Mapping[str, Resource]:
        """`default` (issued on first use, renewed when due) and `ROOTCA`."""
        identity = self.identity_of(proxy)
        issued = self.issued.get(identity)
        if issued is None or _utcnow() >= issued.renew_at:
            issued = self._issue(identity)
        return {DEFAULT_SECRET: issued.resource, ROOT_SECRET: self._root_resource()}

    def _issue(self, identity: SpiffeId) -> IssuedSecret:
        key = new_workload_key(identity)
        svid = self.ca.sign_csr(key.csr_pem(), identity, self.ttl)
        secret = secret_pb2.Secret(
            name=DEFAULT_SECRET,
            tls_certificate=common_pb2.TlsCertificate(
                certificate_chain=base_pb2.DataSource(inline_bytes=svid.chain_pem()),
                private_key=base_pb2.DataSource(inline_bytes=key.key_pem()),
            ),
        )
        issued = IssuedSecret(
            identity, svid.cert.serial_number, renew_at(svid.cert), pack(DEFAULT_SECRET, secret)
        )
        self.issued[identity] = issued
        log.info("SDS: issued %s serial %x, renew at %s", identity, issued.serial, issued.renew_at)
        new, self._new = self._new, trio.Event()
        new.set()
        return issued

    def _root_resource(self) -> Resource:
        secret = secret_pb2.Secret(
            name=ROOT_SECRET,
            validation_context=common_pb2.CertificateValidationContext(
                trusted_ca=base_pb2.DataSource(inline_bytes=self.ca.bundle.pem())
            ),
        )
        return pack(ROOT_SECRET, secret)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Renew every certificate at its renew-at time, until cancelled."""
        task_status.started()
        while True:
            new = self._new
            if self.issued:
                due = min(i.renew_at for i in self.issued.values())
                wait = max(0.0, (due - _utcnow()).total_seconds())
            else:
                wait = float("inf")
            with trio.move_on_after(wait):
                await new.wait()
                continue  # a new certificate: its renew-at may be the earliest
            now = _utcnow()
            for identity in [i for i, s in self.issued.items() if s.renew_at <= now]:
                self._issue(identity)
            if self.on_change is not None:
                self.on_change()
