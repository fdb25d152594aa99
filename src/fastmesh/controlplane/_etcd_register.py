"""A workload's registrar: its WorkloadEntry in etcd, held by a lease it keeps alive.

When the registrar dies (its process killed, its task cancelled without revoking), the lease
expires after `ttl` seconds and etcd deletes the entry: the workload's endpoints disappear
from every control plane by themselves.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence

import trio

from ._etcd_client import EtcdClient, EtcdError
from ._etcd_keys import DEFAULT_PREFIX, workload_key

__all__ = ["register_workload", "workload_value"]

log = logging.getLogger("fastmesh.controlplane.etcd")


def workload_value(
    address: str,
    *,
    labels: Mapping[str, str] | None = None,
    ports: Mapping[str, int] | None = None,
    service_account: str = "default",
) -> str:
    """The JSON stored for a workload: the `spec` of an Istio WorkloadEntry."""
    spec: dict[str, object] = {"address": address, "serviceAccount": service_account}
    if labels:
        spec["labels"] = dict(labels)
    if ports:
        spec["ports"] = dict(ports)
    return json.dumps({"spec": spec}, sort_keys=True)


async def register_workload(
    endpoints: Sequence[str],
    namespace: str,
    name: str,
    id: str,
    address: str,
    *,
    labels: Mapping[str, str] | None = None,
    ports: Mapping[str, int] | None = None,
    service_account: str = "default",
    ttl: int = 10,
    revoke: bool = True,
    prefix: str = DEFAULT_PREFIX,
    retry_interval: float = 0.2,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Put the workload under a lease of `ttl` seconds and renew it every `ttl / 3` seconds
    until cancelled; `nursery.start` returns the first lease id.

    A lease found expired (etcd unreachable for too long) is granted again and the entry
    rewritten. On cancellation the lease is revoked (the entry deleted at once) when `revoke`;
    with `revoke=False` it is left to expire, as when the workload dies.
    """
    key = workload_key(namespace, name, id, prefix=prefix)
    value = workload_value(address, labels=labels, ports=ports, service_account=service_account)
    started = False
    async with EtcdClient(endpoints) as client:
        lease = 0
        written = False
        try:
            while True:
                try:
                    if not written:
                        lease = lease or await client.grant(ttl)
                        await client.put(key, value, lease=lease)
                        written = True
                        log.info("registered %s (lease %x, ttl %ds)", key, lease, ttl)
                        if not started:
                            started = True
                            task_status.started(lease)
                    await trio.sleep(ttl / 3)
                    if await client.keepalive(lease) <= 0:
                        log.warning("lease of %s expired; registering again", key)
                        lease, written = 0, False
                except EtcdError as exc:
                    log.warning("registrar of %s: %s", key, exc)
                    if "lease not found" in str(exc):
                        lease, written = 0, False
                    await trio.sleep(retry_interval)
        finally:
            if revoke and lease:
                with trio.move_on_after(2, shield=True):
                    try:
                        await client.revoke(lease)
                    except EtcdError as exc:
                        log.warning("revoking the lease of %s: %s", key, exc)
