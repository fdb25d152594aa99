"""Mutual TLS between sidecars, Istio's way: which mode a workload's inbound port accepts
(PeerAuthentication), whether a client should speak mTLS to a destination (DestinationRule
`tls`, else auto mTLS), and the TLS transport sockets both sides get, with the workload
certificate (`default`) and trust bundle (`ROOTCA`) over SDS."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ._model import Workload
from ._model_security import ROOT_NAMESPACE, MtlsMode, PeerAuthentication
from ._sds import DEFAULT_SECRET, ROOT_SECRET

__all__ = [
    "SIDECARLESS_LABEL",
    "downstream_tls",
    "peer_mode",
    "spiffe_id",
    "upstream_tls",
    "wants_mtls",
]

TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
_SDS: dict[str, Any] = {"ads": {}, "resource_api_version": "V3"}
#: Istio's label marking a workload without a sidecar: clients must not speak mTLS to it.
SIDECARLESS_LABEL = ("security.istio.io/tlsMode", "disabled")
Json = dict[str, Any]


def peer_mode(policies: Sequence[PeerAuthentication], workload: Workload, port: int) -> MtlsMode:
    """The mode `workload` accepts on `port`: the workload-scoped policy (its port-level
    mode first), else the namespace's, else the mesh's (root namespace); PERMISSIVE when
    all are unset, as in Istio. Several policies at one scope: the first by name."""
    labels = workload.labels
    scoped = sorted(
        (
            p
            for p in policies
            if p.namespace == workload.namespace
            and p.selector is not None
            and all(labels.get(k) == v for k, v in p.selector.items())
        ),
        key=lambda p: p.name,
    )
    for p in scoped:
        mode = p.port_modes.get(port, MtlsMode.UNSET)
        if mode is MtlsMode.UNSET:
            mode = p.mode
        if mode is not MtlsMode.UNSET:
            return mode
    for namespace in (workload.namespace, ROOT_NAMESPACE):
        for p in sorted(policies, key=lambda p: p.name):
            if p.namespace == namespace and p.selector is None and p.mode is not MtlsMode.UNSET:
                return p.mode
    return MtlsMode.PERMISSIVE


def wants_mtls(
    tls_mode: str | None,
    policies: Sequence[PeerAuthentication],
    workloads: Iterable[tuple[Workload, int]],
) -> bool:
    """Whether a client speaks mTLS to these (workload, port) endpoints: the DestinationRule's
    `tls.mode` when set, else Istio's auto mTLS (each has a sidecar and does not DISABLE)."""
    if tls_mode is not None:
        return tls_mode == "ISTIO_MUTUAL"
    key, value = SIDECARLESS_LABEL
    return all(
        w.labels.get(key) != value and peer_mode(policies, w, port) is not MtlsMode.DISABLE
        for w, port in workloads
    )


def spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


def _common(alpn: Sequence[str], peers: Sequence[str]) -> Json:
    """Our certificate from `default`; the peer verified against `ROOTCA` and, when
    `peers` are given, its SPIFFE ID one of them."""
    common: Json = {
        "tls_certificate_sds_secret_configs": [{"name": DEFAULT_SECRET, "sds_config": _SDS}],
    }
    root = {"name": ROOT_SECRET, "sds_config": _SDS}
    if peers:
        sans = [{"san_type": "URI", "matcher": {"exact": p}} for p in peers]
        common["combined_validation_context"] = {
            "default_validation_context": {"match_typed_subject_alt_names": sans},
            "validation_context_sds_secret_config": root,
        }
    else:
        common["validation_context_sds_secret_config"] = root
    if alpn:
        common["alpn_protocols"] = list(alpn)
    return common


def upstream_tls(sni: str, alpn: Sequence[str], peers: Sequence[str]) -> Json:
    """A cluster's `transport_socket` for ISTIO_MUTUAL."""
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": TLS + "UpstreamTlsContext",
            "sni": sni,
            "common_tls_context": _common(alpn, peers),
        },
    }


def downstream_tls(alpn: Sequence[str]) -> Json:
    """An inbound filter chain's `transport_socket`: a client certificate from the mesh
    required (any identity: AuthorizationPolicy decides who may call)."""
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": TLS + "DownstreamTlsContext",
            "require_client_certificate": True,
            "common_tls_context": _common(alpn, ()),
        },
    }
