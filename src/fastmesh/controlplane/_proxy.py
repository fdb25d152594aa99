"""Who a connected proxy is, read from its xDS `Node` (Istio's id format and metadata keys)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format

log = logging.getLogger("fastmesh.controlplane")

__all__ = [
    "APP_PORTS_KEY",
    "INBOUND_EXACT_BALANCE_KEY",
    "LABELS_KEY",
    "OUTBOUND_ADDRESS_KEY",
    "SERVICE_ACCOUNT_KEY",
    "WORKLOAD_NAME_KEY",
    "InboundKey",
    "ProxyInfo",
    "proxy_info",
]

#: Node metadata key: the address outbound listeners bind (default 127.0.0.1). Istio captures
#: traffic with iptables instead; on loopback without it, each sidecar binds for real.
OUTBOUND_ADDRESS_KEY = "FASTMESH_OUTBOUND_ADDRESS"
#: Node metadata key (Istio's): the workload's service account, its SPIFFE identity for SDS.
SERVICE_ACCOUNT_KEY = "SERVICE_ACCOUNT"
#: Node metadata key (Istio's): the WorkloadEntry (in the proxy's namespace) this sidecar
#: fronts; its inbound listeners are then generated.
WORKLOAD_NAME_KEY = "WORKLOAD_NAME"
#: Node metadata key: service port name -> the port the application itself listens on at
#: 127.0.0.1 (default: the service's targetPort). Without iptables the WorkloadEntry's
#: address:port is the sidecar's inbound listener, so the app must listen elsewhere.
APP_PORTS_KEY = "FASTMESH_APP_PORTS"
#: Node metadata key (Istio's): the workload's labels (a map), what a Sidecar's
#: `workloadSelector` (and a tcp route's `sourceLabels`) match, with its WorkloadEntry's.
LABELS_KEY = "LABELS"
#: Node metadata key (Istio's, as `ISTIO_META_INBOUND_LISTENER_EXACT_BALANCE`): "true" gives
#: the inbound listeners `exact_balance`, so the few long-lived HTTP/2 connections from other
#: sidecars are spread evenly over this proxy's workers instead of by the kernel's hash.
INBOUND_EXACT_BALANCE_KEY = "INBOUND_LISTENER_EXACT_BALANCE"
#: What Istio's StringBool (Go's strconv.ParseBool) reads as true.
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})


#: Namespace, workload, application ports, exact balance: what inbound config depends on.
InboundKey = tuple[str, str, tuple[tuple[str, int], ...], bool]


@dataclass(frozen=True, slots=True)
class ProxyInfo:
    """What translation needs to know about one proxy."""

    id: str
    namespace: str = "default"
    outbound_address: str = "127.0.0.1"
    #: Only SDS reads it (the identity of the certificate served); translation does not.
    service_account: str = "default"
    #: The WorkloadEntry it fronts ("": none, an outbound-only proxy).
    workload: str = ""
    #: Service port name -> the application's own port, sorted by name.
    app_ports: tuple[tuple[str, int], ...] = ()
    #: Node metadata `LABELS`, sorted by key (the WorkloadEntry's labels go over them).
    labels: tuple[tuple[str, str], ...] = ()
    #: Node metadata `INBOUND_LISTENER_EXACT_BALANCE`.
    inbound_exact_balance: bool = False

    @property
    def translation_key(self) -> tuple[str, str]:
        """Proxies with equal keys get identical outbound config (one translation serves them
        all), unless a VirtualService matches on their workload's labels: the hub adds
        those to the key (`MeshIndex.label_key`)."""
        return (self.namespace, self.outbound_address)

    @property
    def inbound_key(self) -> InboundKey:
        """Proxies with equal keys get identical inbound config."""
        return (self.namespace, self.workload, self.app_ports, self.inbound_exact_balance)


def proxy_info(node: Any) -> ProxyInfo:
    """From an `envoy.config.core.v3.Node`: namespace from metadata `NAMESPACE` or the Istio id
    `sidecar~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local`, else "default"; service account
    from metadata `SERVICE_ACCOUNT`, else "default"; the workload from `WORKLOAD_NAME` and
    its application's ports from `FASTMESH_APP_PORTS`, its labels from `LABELS` (maps; bad
    entries are logged, then ignored), `INBOUND_LISTENER_EXACT_BALANCE` as Istio reads it."""
    metadata = json_format.MessageToDict(node.metadata) if node.HasField("metadata") else {}
    namespace = str(metadata.get("NAMESPACE", ""))
    parts = str(node.id).split("~")
    if not namespace and len(parts) == 4 and "." in parts[2]:
        namespace = parts[2].rsplit(".", 1)[1]
    address = str(metadata.get(OUTBOUND_ADDRESS_KEY, "") or "127.0.0.1")
    account = str(metadata.get(SERVICE_ACCOUNT_KEY, "") or "default")
    workload = str(metadata.get(WORKLOAD_NAME_KEY, "") or "")
    raw_ports = metadata.get(APP_PORTS_KEY) or {}
    ports = raw_ports if isinstance(raw_ports, dict) else {}
    bad = [k for k, v in ports.items() if not _is_port(v)]
    if bad or not isinstance(raw_ports, dict):
        log.warning(
            "node %s: metadata %s: expected a map of port name to port number; ignored: %s",
            node.id,
            APP_PORTS_KEY,
            ", ".join(map(str, bad)) or repr(raw_ports),
        )
    app_ports = tuple(sorted((str(k), int(v)) for k, v in ports.items() if _is_port(v)))
    labels = _labels(node.id, metadata.get(LABELS_KEY))
    balance = metadata.get(INBOUND_EXACT_BALANCE_KEY)
    return ProxyInfo(
        str(node.id),
        namespace or "default",
        address,
        account,
        workload,
        app_ports,
        labels,
        inbound_exact_balance=balance is True or str(balance) in _TRUE,
    )


def _labels(node_id: str, raw: Any) -> tuple[tuple[str, str], ...]:
    """Metadata `LABELS`: string values (numbers and booleans as Istio writes them: text)."""
    labels = raw if isinstance(raw, dict) else {}
    bad = [k for k, v in labels.items() if isinstance(v, dict | list) or v is None]
    if bad or (raw is not None and not isinstance(raw, dict)):
        log.warning(
            "node %s: metadata %s: expected a map of label to value; ignored: %s",
            node_id,
            LABELS_KEY,
            ", ".join(map(str, bad)) or repr(raw),
        )
    return tuple(sorted((str(k), _text(v)) for k, v in labels.items() if k not in bad))


def _text(value: Any) -> str:
    """A label value from a Struct (numbers arrive as floats: `2.0` is the label `2`)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    return str(value)


def _is_port(value: Any) -> bool:
    """A port from node metadata (a Struct: numbers arrive as floats, or as strings)."""
    try:
        return 1 <= int(value) <= 65535 and float(value) == int(value)
    except (TypeError, ValueError):
        return False
