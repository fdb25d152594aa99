"""The etcd registry against a real three-member etcd cluster on loopback: config from etcd in
the translated output, leases expiring a dead workload, replicas agreeing, a member dying."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from envoy.config.endpoint.v3 import endpoint_pb2

from fastmesh.controlplane import CLUSTER, ENDPOINT, ControlPlane, ProxyInfo, Snapshot
from fastmesh.controlplane._etcd_client import EtcdClient, WatchCompacted
from fastmesh.controlplane._etcd_keys import EntryCache, load_entries, service_key
from fastmesh.controlplane._etcd_register import register_workload
from fastmesh.controlplane._registry_etcd import EtcdRegistry

from .etcd_harness import EtcdCluster, etcd_cluster

PROXY = ProxyInfo("sidecar~127.0.0.1~client.default~default.svc.cluster.local")
REVIEWS = "outbound|9080||reviews.default.svc.cluster.local"
SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
"""
_prefixes = itertools.count()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    c = etcd_cluster(tmp_path_factory.mktemp("etcd"))
    yield c
    c.stop()


@pytest.fixture
def prefix() -> str:
    """Each test its own key prefix, so tests share one cluster without seeing each other."""
    return f"/fastmesh-test-{next(_prefixes)}/"


def endpoints(snapshot: Snapshot, cluster: str = REVIEWS) -> set[str]:
    resource = snapshot.of_type(ENDPOINT).get(cluster)
    if resource is None:
        return set()
    cla = endpoint_pb2.ClusterLoadAssignment()
    resource.packed.Unpack(cla)
    return {
        f"{e.endpoint.address.socket_address.address}:{e.endpoint.address.socket_address.port_value}"
        for group in cla.endpoints
        for e in group.lb_endpoints
    }


async def until(what: str, check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for `check()` (polled every 10 ms); fail naming `what` at the deadline."""
    with trio.move_on_after(timeout):
        while not check():
            await trio.sleep(0.01)
        return
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def snap(plane: ControlPlane) -> Snapshot:
    return plane.hub.snapshot_for(PROXY)


def test_entries_follow_the_key_layout() -> None:
    config, problems = load_entries(
        [
            ("/fastmesh/services/default/reviews", SERVICE),
            ("/fastmesh/workloads/default/reviews-v1/a", '{"spec": {"address": "10.0.0.1"}}'),
            ("/fastmesh/workloads/default/reviews-v1/b", "address: 10.0.0.2\n"),
            ("/fastmesh/config/DestinationRule/default/reviews", "host: reviews\n"),
            ("/fastmesh/services/other/reviews", SERVICE),
            ("/fastmesh/nonsense", "{}"),
            ("/fastmesh/config/Gateway/default/gw", "{}"),
        ]
    )
    assert [(s.namespace, s.name) for s in config.services] == [("default", "reviews")]
    assert sorted(w.name for w in config.workloads) == ["reviews-v1.a", "reviews-v1.b"]
    assert [d.name for d in config.destination_rules] == ["reviews"]
    assert sorted(str(p) for p in problems) == [
        "/fastmesh/config/Gateway/default/gw: unsupported config kind 'Gateway' "
        "(supported: ServiceEntry, VirtualService, DestinationRule, Sidecar, PeerAuthentication, "
        "AuthorizationPolicy)",
        "/fastmesh/nonsense: expected services/<ns>/<name>, workloads/<ns>/<name>/<id> "
        "or config/<Kind>/<ns>/<name> under /fastmesh/",
        "/fastmesh/services/other/reviews: Service other/reviews: metadata.namespace: "
        "differs from the key (other)",
    ]


def test_one_changed_entry_is_the_only_one_parsed_again() -> None:
    cache = EntryCache()
    entries = {
        "/fastmesh/services/default/reviews": SERVICE,
        "/fastmesh/workloads/default/reviews/a": "address: 10.0.0.1\n",
    }
    before, _ = cache.load(entries)
    entries["/fastmesh/workloads/default/reviews/a"] = "address: 10.0.0.2\n"
    entries["/fastmesh/workloads/default/reviews/b"] = "address: 10.0.0.3\n"
    after, problems = cache.load(entries)
    assert after.services[0] is before.services[0]
    assert [w.address for w in after.workloads] == ["10.0.0.2", "10.0.0.3"]
    assert (after, problems) == load_entries(entries.items())
    del entries["/fastmesh/services/default/reviews"]
    assert cache.load(entries)[0].services == ()


async def test_services_workloads_and_config_from_etcd_are_served(
    cluster: EtcdCluster, prefix: str
) -> None:
    async with EtcdClient(cluster.endpoints) as client:
        await client.put(service_key("default", "reviews", prefix=prefix), SERVICE)
        await client.put(
            f"{prefix}workloads/default/reviews-v1/x",
            '{"spec": {"address": "10.0.0.1", "labels": {"app": "reviews", "version": "v1"}}}',
        )
        await client.put(
            f"{prefix}config/DestinationRule/default/reviews",
            "host: reviews\nsubsets: [{name: v1, labels: {version: v1}}]\n",
        )
        registry = EtcdRegistry(cluster.endpoints, prefix=prefix)
        plane = ControlPlane(registry, debounce=0.01)
        async with trio.open_nursery() as nursery:
            await nursery.start(plane.run)
            first = snap(plane)
            assert {REVIEWS, "outbound|9080|v1|reviews.default.svc.cluster.local"} <= set(
                first.of_type(CLUSTER)
            )
            assert endpoints(first) == {"10.0.0.1:9080"}

            await client.put(
                f"{prefix}workloads/default/reviews-v2/y",
                "address: 10.0.0.2\nlabels: {app: reviews, version: v2}\nports: {http: 9999}\n",
            )
            await until("the second workload", lambda: len(endpoints(snap(plane))) == 2)
            assert endpoints(snap(plane)) == {"10.0.0.1:9080", "10.0.0.2:9999"}

            await client.delete(f"{prefix}workloads/default/reviews-v1/x")
            await until("the deletion", lambda: endpoints(snap(plane)) == {"10.0.0.2:9999"})
            assert registry.problems == []
            nursery.cancel_scope.cancel()


async def test_a_service_entry_from_etcd_is_served_and_follows_edits(
    cluster: EtcdCluster, prefix: str
) -> None:
    key = f"{prefix}config/ServiceEntry/default/payments"
    entry = (
        "hosts: [payments.example.com]\nlocation: MESH_INTERNAL\nresolution: STATIC\n"
        "ports: [{number: 8080, name: http}]\nendpoints: [{address: %s}]\n"
    )
    name = "outbound|8080||payments.example.com"
    async with EtcdClient(cluster.endpoints) as client:
        await client.put(key, entry % "10.1.0.1")
        registry = EtcdRegistry(cluster.endpoints, prefix=prefix)
        plane = ControlPlane(registry, debounce=0.01)
        async with trio.open_nursery() as nursery:
            await nursery.start(plane.run)
            assert endpoints(snap(plane), name) == {"10.1.0.1:8080"}
            await client.put(key, entry % "10.1.0.2")
            await until(
                "the edited endpoint", lambda: endpoints(snap(plane), name) == {"10.1.0.2:8080"}
            )
            await client.delete(key)
            await until("the entry to go", lambda: name not in snap(plane).of_type(CLUSTER))
            assert registry.problems == []
            nursery.cancel_scope.cancel()


async def start_registrar(
    nursery: trio.Nursery, cluster: EtcdCluster, prefix: str, id: str, address: str, **kw: Any
) -> trio.CancelScope:
    """Run `register_workload` (app reviews, TTL 2 s) until its first put; cancelling the
    returned scope stops it (with `revoke=False`: as if its process had died)."""

    async def run(*, task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as inner:
                await inner.start(
                    partial(
                        register_workload,
                        cluster.endpoints,
                        "default",
                        "reviews",
                        id,
                        address,
                        labels={"app": "reviews"},
                        ttl=2,
                        prefix=prefix,
                        **kw,
                    )
                )
                task_status.started(scope)

    scope: trio.CancelScope = await nursery.start(run)
    return scope


async def test_a_dead_registrars_workload_expires_with_its_lease(
    cluster: EtcdCluster, prefix: str
) -> None:
    async with EtcdClient(cluster.endpoints) as client:
        await client.put(service_key("default", "reviews", prefix=prefix), SERVICE)
    plane = ControlPlane(EtcdRegistry(cluster.endpoints, prefix=prefix), debounce=0.01)
    async with trio.open_nursery() as nursery:
        await nursery.start(plane.run)
        await start_registrar(nursery, cluster, prefix, "live", "10.0.0.1")
        dead = await start_registrar(nursery, cluster, prefix, "dead", "10.0.0.2", revoke=False)
        both = {"10.0.0.1:9080", "10.0.0.2:9080"}
        await until("both workloads", lambda: endpoints(snap(plane)) == both)
        generation = plane.hub.generation
        killed_at = trio.current_time()
        dead.cancel()
        await until("the lease to expire", lambda: endpoints(snap(plane)) == {"10.0.0.1:9080"})
        # etcd deleted it by itself, no sooner than the TTL; the live one was kept alive
        assert trio.current_time() - killed_at > 1.0
        assert plane.hub.generation > generation
        nursery.cancel_scope.cancel()


async def test_a_registrar_cancelled_cleanly_revokes_at_once(
    cluster: EtcdCluster, prefix: str
) -> None:
    async with EtcdClient(cluster.endpoints) as client:
        await client.put(service_key("default", "reviews", prefix=prefix), SERVICE)
    plane = ControlPlane(EtcdRegistry(cluster.endpoints, prefix=prefix), debounce=0.01)
    async with trio.open_nursery() as nursery:
        await nursery.start(plane.run)
        scope = await start_registrar(nursery, cluster, prefix, "a", "10.0.0.1")
        await until("the workload", lambda: endpoints(snap(plane)) == {"10.0.0.1:9080"})
        stopped_at = trio.current_time()
        scope.cancel()
        await until("the revoked workload gone", lambda: not endpoints(snap(plane)))
        assert trio.current_time() - stopped_at < 1.0
        nursery.cancel_scope.cancel()


async def test_replicas_on_one_etcd_serve_identical_config(
    cluster: EtcdCluster, prefix: str
) -> None:
    async with EtcdClient(cluster.endpoints) as client:
        await client.put(service_key("default", "reviews", prefix=prefix), SERVICE)
        # each replica talks to a different member first
        planes = [
            ControlPlane(
                EtcdRegistry(cluster.endpoints[i:] + cluster.endpoints[:i], prefix=prefix),
                debounce=0.01,
            )
            for i in range(2)
        ]
        async with trio.open_nursery() as nursery:
            for plane in planes:
                await nursery.start(plane.run)
            for i in range(3):
                await client.put(
                    f"{prefix}workloads/default/reviews/{i}",
                    f"address: 10.0.0.{i + 1}\nlabels: {{app: reviews}}\n",
                )
            want = {f"10.0.0.{i + 1}:9080" for i in range(3)}
            await until("all workloads", lambda: all(endpoints(snap(p)) == want for p in planes))
            a, b = (snap(p) for p in planes)
            assert a.version == b.version
            assert {t: {n: r.digest for n, r in rs.items()} for t, rs in a.resources.items()} == {
                t: {n: r.digest for n, r in rs.items()} for t, rs in b.resources.items()
            }
            nursery.cancel_scope.cancel()


async def test_the_registry_survives_a_dead_etcd_member(tmp_path: Path) -> None:
    cluster = etcd_cluster(tmp_path)
    try:
        first = cluster.members[0]
        # a write the dead leader swallowed times out (1 s) and goes to the next member
        async with EtcdClient(cluster.endpoints, timeout=1.0) as client:
            await client.put(service_key("default", "reviews"), SERVICE)
            registry = EtcdRegistry(cluster.endpoints)  # watches through the first member
            plane = ControlPlane(registry, debounce=0.01)
            async with trio.open_nursery() as nursery:
                await nursery.start(plane.run)
                await start_registrar(nursery, cluster, "/fastmesh/", "a", "10.0.0.1")
                await until("the workload", lambda: endpoints(snap(plane)) == {"10.0.0.1:9080"})
                await trio.to_thread.run_sync(cluster.kill, first)
                await client.put(
                    "/fastmesh/workloads/default/reviews/b",
                    "address: 10.0.0.2\nlabels: {app: reviews}\n",
                )
                both = {"10.0.0.1:9080", "10.0.0.2:9080"}
                await until("the write after the kill", lambda: endpoints(snap(plane)) == both)
                assert registry.reconnects >= 1
                nursery.cancel_scope.cancel()
    finally:
        cluster.stop()


async def test_a_watch_from_a_compacted_revision_says_so(cluster: EtcdCluster, prefix: str) -> None:
    async with EtcdClient(cluster.endpoints) as client:
        first = await client.put(f"{prefix}k", "1")
        last = await client.put(f"{prefix}k", "2")
        await client.call("kv/compaction", {"revision": str(last)})
        with pytest.raises(WatchCompacted):
            async with client.watch(prefix, first) as stream:
                await stream.next_events()
        async with client.watch(prefix, last) as stream:
            events = await stream.next_events()
        assert [(e.key, e.value, e.deleted) for e in events] == [(f"{prefix}k", b"2", False)]
