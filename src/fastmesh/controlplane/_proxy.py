"""Who a connected proxy is, read from its xDS `Node` (Istio's id format and metadata keys)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format

__all__ = ["OUTBOUND_ADDRESS_KEY", "SERVICE_ACCOUNT_KEY", "ProxyInfo", "proxy_info"]

#: Node metadata key: the address outbound listeners bind (default 127.0.0.1). Istio captures
#: traffic with iptables instead; on loopback without it, each sidecar binds for real.
OUTBOUND_ADDRESS_KEY = "FASTMESH_OUTBOUND_ADDRESS"
#: Node metadata key (Istio's): the workload's service account, its SPIFFE identity for SDS.
SERVICE_ACCOUNT_KEY = "SERVICE_ACCOUNT"


@dataclass(frozen=True, slots=True)
class ProxyInfo:
    """What translation needs to know about one proxy."""

    id: str
    namespace: str = "default"
    outbound_address: str = "127.0.0.1"
    #: Only SDS reads it (the identity of the certificate served); translation does not.
    service_account: str = "default"

    @property
    def translation_key(self) -> tuple[str, str]:
        """Proxies with equal keys get identical config (one translation serves them all)."""
        return (self.namespace, self.outbound_address)


def proxy_info(node: Any) -> ProxyInfo:
    """From an `envoy.config.core.v3.Node`: namespace from metadata `NAMESPACE` or the Istio id
    `sidecar~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local`, else "default"; service account
    from metadata `SERVICE_ACCOUNT`, else "default"."""
    metadata = json_format.MessageToDict(node.metadata) if node.HasField("metadata") else {}
    namespace = str(metadata.get("NAMESPACE", ""))
    parts = str(node.id).split("~")
    if not namespace and len(parts) == 4 and "." in parts[2]:
        namespace = parts[2].rsplit(".", 1)[1]
    address = str(metadata.get(OUTBOUND_ADDRESS_KEY, "") or "127.0.0.1")
    account = str(metadata.get(SERVICE_ACCOUNT_KEY, "") or "default")
    return ProxyInfo(str(node.id), namespace or "default", address, account)
