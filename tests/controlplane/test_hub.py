"""The snapshot hub: first config at once, later ones debounced, translation cached per kind."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from fastmesh.controlplane import MeshConfig, ProxyInfo, SnapshotHub, load_documents
from fastmesh.controlplane._hub import _replaced
from fastmesh.controlplane._resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, changes

from .test_load import BOOKINFO

CONFIG, _ = load_documents([("b.yaml", BOOKINFO)])


async def test_first_config_applies_at_once_then_changes_are_debounced(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub = SnapshotHub(debounce=0.1, max_delay=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        hub.publish(MeshConfig())
        assert hub.generation == 1
        start = trio.current_time()
        for _ in range(5):  # a burst of edits, 50 ms apart
            hub.publish(CONFIG)
            await trio.sleep(0.05)
        assert hub.generation == 1
        assert await hub.wait_beyond(1) == 2
        assert trio.current_time() - start < 0.25 + 0.1 + 1e-6
        assert hub.config is CONFIG
        nursery.cancel_scope.cancel()


async def test_a_steady_stream_of_changes_still_applies_within_max_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub = SnapshotHub(debounce=0.1, max_delay=0.5)
    hub.publish(MeshConfig())
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        start = trio.current_time()

        async def churn() -> None:
            while True:
                hub.publish(CONFIG)
                await trio.sleep(0.05)

        nursery.start_soon(churn)
        await hub.wait_beyond(1)
        assert 0.5 - 1e-6 <= trio.current_time() - start <= 0.55 + 1e-6
        nursery.cancel_scope.cancel()


def test_snapshots_are_cached_per_translation_key_and_dropped_on_change() -> None:
    hub = SnapshotHub()
    hub.publish(CONFIG)
    a = hub.snapshot_for(ProxyInfo("a", "shop"))
    assert hub.snapshot_for(ProxyInfo("b", "shop")) is a
    assert hub.snapshot_for(ProxyInfo("c", "other")) is not a
    hub._apply(MeshConfig())
    assert hub.snapshot_for(ProxyInfo("a", "shop")) is not a


def _mesh(services: int, moved: int | None = None, relabeled: int | None = None) -> str:
    """Services with three workloads each; s{moved}-w0 gets another address, s{relabeled}-w0
    the next service's label (it leaves one service for another)."""
    docs = []
    for i in range(services):
        docs.append(
            "apiVersion: v1\nkind: Service\n"
            f"metadata: {{name: s{i}, namespace: ns{i % 3}}}\n"
            f"spec: {{selector: {{app: s{i}}}, ports: [{{name: http, port: 80}}]}}\n"
        )
        for j in range(3):
            address = "10.9.9.9" if (i, j) == (moved, 0) else f"10.0.{i}.{j + 1}"
            app = f"s{i + 3}" if (i, j) == (relabeled, 0) else f"s{i}"
            docs.append(
                "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
                f"metadata: {{name: s{i}-w{j}, namespace: ns{i % 3}}}\n"
                f"spec: {{address: {address}, labels: {{app: {app}}}}}\n"
            )
    return "---\n".join(docs)


@pytest.mark.parametrize(
    ("edit", "touched"),
    [({"moved": 7}, ["s7"]), ({"relabeled": 7}, ["s10", "s7"])],
    ids=["address", "label"],
)
def test_a_workload_change_retranslates_only_its_services_and_equals_a_full_build(
    edit: dict[str, int], touched: list[str]
) -> None:
    """Istio's incremental EDS: one changed workload changes its services' assignments for
    every proxy; the routes are the same objects, and the result is exactly a full
    translation's, endpoint order included (a workload keeps its place; one joining a
    service joins it where the config has it)."""
    before, _ = load_documents([("m.yaml", _mesh(30))])
    edited, _ = load_documents([("m.yaml", _mesh(30, **edit))])
    # the registry keeps unchanged resources as the same objects: only s7-w0 is new
    workloads = tuple(
        e if e.name == "s7-w0" else b
        for b, e in zip(before.workloads, edited.workloads, strict=True)
    )
    after = MeshConfig(services=before.services, workloads=workloads)
    proxy = ProxyInfo("a", "ns1")
    hub = SnapshotHub()
    hub.publish(before)
    old = hub.snapshot_for(proxy)
    hub._apply(after)
    new = hub.snapshot_for(proxy)
    names = {f"outbound|80||{n}.ns{int(n[1:]) % 3}.svc.cluster.local" for n in touched}
    assert changes(old, new, ENDPOINT) == names
    assert changes(old, new, CLUSTER) == names
    assert new.of_type(ROUTE) is old.of_type(ROUTE)
    full = SnapshotHub()
    full.publish(after)
    fresh = full.snapshot_for(proxy)
    assert fresh.version == new.version
    for type_url in (CLUSTER, ENDPOINT, LISTENER, ROUTE):
        assert {n: r.digest for n, r in fresh.of_type(type_url).items()} == {
            n: r.digest for n, r in new.of_type(type_url).items()
        }
    # anything but workloads changing is a full translation
    hub._apply(MeshConfig(services=before.services[:-1], workloads=workloads))
    assert "outbound|80||s29.ns2.svc.cluster.local" not in hub.snapshot_for(proxy).of_type(CLUSTER)


@pytest.mark.parametrize("kind", ["tcp", "http"])
def test_a_virtual_service_on_source_labels_splits_the_cache_by_those_labels(kind: str) -> None:
    extra = f"""
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: reviews-v1b, namespace: shop}}
spec: {{address: 10.0.0.3, labels: {{app: reviews, version: v1, pod: b}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: reviews-v2, namespace: shop}}
spec: {{address: 10.0.0.2, labels: {{app: reviews, version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: db, namespace: shop}}
spec:
  hosts: [reviews]
  {kind}:
  - match: [{{sourceLabels: {{version: v1}}}}]
    route: [{{destination: {{host: reviews, subset: v2}}}}]
"""
    service, workload, _, rule = BOOKINFO.split("---")
    config, problems = load_documents(
        [("b.yaml", f"{service}---{workload}---{rule}"), ("x.yaml", extra)]
    )
    assert problems == []
    hub = SnapshotHub()
    hub.publish(config)
    outbound = hub._translated  # the part shared by proxies of one kind
    v1 = outbound(ProxyInfo("a", "shop", workload="reviews-v1"))
    # only the labels the VirtualService names count: `pod` does not split the cache
    assert outbound(ProxyInfo("b", "shop", workload="reviews-v1b")) is v1
    assert outbound(ProxyInfo("c", "shop", workload="reviews-v2")) is not v1
    assert outbound(ProxyInfo("d", "shop")) is not v1
    # without such a VirtualService the labels do not matter
    hub._apply(CONFIG)
    plain = outbound(ProxyInfo("a", "shop", workload="reviews-v1"))
    assert outbound(ProxyInfo("c", "shop", workload="reviews-v2")) is plain


@pytest.mark.parametrize(
    ("old", "new", "gone", "added"),
    [
        ("abcd", "abXd", "c", "X"),  # an edit in place: found position by position
        ("abcd", "abcd", "", ""),
        ("abcd", "abcdE", "", "E"),  # lengths differ: by identity
        ("abcd", "bacd", "", ""),  # reordered, nothing replaced
        ("abcd", "bXcd", "a", "X"),  # reordered and replaced
    ],
)
def test_replaced_workloads_are_found_by_identity(
    old: str, new: str, gone: str, added: str
) -> None:
    objects = {name: object() for name in "abcdXE"}
    found = _replaced(
        tuple(objects[n] for n in old),  # type: ignore[misc]
        tuple(objects[n] for n in new),  # type: ignore[misc]
    )
    assert found == ([objects[n] for n in gone], [objects[n] for n in added])
