"""End to end: fastmesh-proxy bootstrapped with `dynamic_resources` takes its config from this
repo's control plane over ADS, serves traffic with it, follows registry edits, NACKs what it
cannot run (and keeps serving), and rides out a control-plane restart; each over state of
the world (`api_type: GRPC`) and incremental xDS (`DELTA_GRPC`)."""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from fastmesh.cli import main as fastmesh
from fastmesh.controlplane import ProxyStatus
from tests.controlplane.harness import (
    ControlPlaneThread,
    ads_bootstrap,
    service,
    wait_until,
    workload,
    write_yaml,
)
from tests.support import EchoServer, ProxyProcess, free_port, run_proxy

NODE_ID = "sidecar~127.0.0.1~productpage-v1.default~default.svc.cluster.local"


def destination_rule(**traffic_policy: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "host": "reviews",
        "subsets": [
            {"name": "v1", "labels": {"version": "v1"}},
            {"name": "v2", "labels": {"version": "v2"}},
        ],
    }
    if traffic_policy:
        spec["trafficPolicy"] = traffic_policy
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": spec,
    }


def all_to(subset: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": {
            "hosts": ["reviews"],
            "http": [{"route": [{"destination": {"host": "reviews", "subset": subset}}]}],
        },
    }


@dataclass
class Mesh:
    config_dir: Path
    cp: ControlPlaneThread
    proxy: ProxyProcess
    port: int
    v1: EchoServer
    v2: EchoServer
    client: httpx.Client
    #: The proxy speaks incremental xDS (`api_type: DELTA_GRPC`).
    delta: bool = False

    def write_routing(self, *docs: dict[str, Any]) -> None:
        write_yaml(self.config_dir / "routing.yaml", *docs)

    def write_workloads(self, v2_port: int) -> None:
        write_yaml(
            self.config_dir / "reviews.yaml",
            service("reviews", self.port),
            workload("reviews-v1", "reviews", "v1", self.v1.port),
            workload("reviews-v2", "reviews", "v2", v2_port),
        )

    def status(self) -> ProxyStatus:
        [status] = self.cp.proxy_status()
        return status

    def upstreams(self, n: int, host: str = "reviews", port: int | None = None) -> Counter[str]:
        seen: Counter[str] = Counter()
        for _ in range(n):
            url = f"http://127.0.0.1:{port or self.port}/"
            r = self.client.get(url, headers={"host": host})
            seen[r.headers.get("x-upstream-name", str(r.status_code))] += 1
        return seen

    def ads_dump(self) -> dict[str, Any]:
        status, body = self.proxy.admin_get("/config_dump")
        assert status == 200, body
        [ads] = [c for c in json.loads(body)["configs"] if c["@type"] == "fastmesh.xds.AdsDump"]
        return dict(ads)

    def stats(self) -> dict[str, int]:
        status, body = self.proxy.admin_get("/stats?format=json")
        assert status == 200, body
        return {s["name"]: s["value"] for s in json.loads(body)["stats"]}


def synced(status: ProxyStatus) -> bool:
    return status.types == dict.fromkeys(("CDS", "EDS", "LDS", "RDS"), "SYNCED")


@pytest.fixture(scope="module", params=[False, True], ids=["sotw", "delta"])
def mesh(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Mesh]:
    config_dir = tmp_path_factory.mktemp("mesh")
    port = free_port()
    with ExitStack() as stack:
        v1 = stack.enter_context(EchoServer("reviews-v1"))
        v2 = stack.enter_context(EchoServer("reviews-v2"))
        write_yaml(config_dir / "routing.yaml", destination_rule(), all_to("v1"))
        cp = stack.enter_context(ControlPlaneThread(config_dir))
        mesh = Mesh(config_dir, cp, None, port, v1, v2, None, request.param)  # type: ignore[arg-type]
        mesh.write_workloads(v2.port)
        boot = ads_bootstrap(
            admin_port=free_port(), xds_port=cp.port, node_id=NODE_ID, delta=mesh.delta
        )
        mesh.proxy = stack.enter_context(run_proxy(boot, workdir=config_dir.parent))
        mesh.client = stack.enter_context(httpx.Client(timeout=5.0))
        yield mesh


def test_proxy_takes_its_config_over_ads_and_serves_traffic(mesh: Mesh) -> None:
    mesh.write_routing(destination_rule(), all_to("v1"))
    # /ready answered 200 only once the dynamic snapshot was applied: traffic flows at once
    assert mesh.upstreams(10) == {"reviews-v1": 10}
    wait_until("every type SYNCED", lambda: synced(mesh.status()))
    stats = mesh.stats()
    assert stats["control_plane.connected_state"] == 1
    assert stats["cluster_manager.cds.update_success"] >= 1
    assert stats["listener_manager.lds.update_success"] >= 1
    # the dynamic clusters are the engine's, with the endpoints EDS gave them
    _, clusters = mesh.proxy.admin_get("/clusters")
    assert f"outbound|{mesh.port}|v1|reviews.default.svc.cluster.local::127.0.0.1:" in clusters
    _, prometheus = mesh.proxy.admin_get("/stats/prometheus")
    assert "# TYPE envoy_control_plane_connected_state gauge" in prometheus


def test_config_dump_shows_what_ads_delivered(mesh: Mesh) -> None:
    mesh.write_routing(destination_rule(), all_to("v1"))
    wait_until("every type SYNCED", lambda: synced(mesh.status()))
    ads = mesh.ads_dump()
    assert ads["server"] == f"127.0.0.1:{mesh.cp.port}" and ads["connected"] is True
    assert ads["protocol"] == ("DELTA_GRPC" if mesh.delta else "GRPC")
    acked = mesh.status().acked
    subscriptions = ads["subscriptions"]
    assert {kind: s["version"] for kind, s in subscriptions.items()} == acked
    assert subscriptions["LDS"]["resource_names"] == [f"127.0.0.1_{mesh.port}"]
    assert subscriptions["RDS"]["resource_names"] == [str(mesh.port)]


def test_registry_edits_reach_the_proxy(mesh: Mesh) -> None:
    mesh.write_routing(destination_rule(), all_to("v1"))
    wait_until("traffic on v1", lambda: mesh.upstreams(5) == {"reviews-v1": 5})
    mesh.write_routing(destination_rule(), all_to("v2"))  # RDS
    wait_until("traffic on v2", lambda: mesh.upstreams(5) == {"reviews-v2": 5})
    with EchoServer("reviews-v2-moved") as moved:
        mesh.write_workloads(moved.port)  # EDS: the v2 workload moved
        wait_until("traffic on the moved v2", lambda: mesh.upstreams(5) == {"reviews-v2-moved": 5})
        mesh.write_workloads(mesh.v2.port)
        wait_until("traffic back on v2", lambda: mesh.upstreams(5) == {"reviews-v2": 5})
    wait_until("every type SYNCED", lambda: synced(mesh.status()))


def test_eds_and_rds_updates_are_counted_per_cluster_and_route_config(mesh: Mesh) -> None:
    """Envoy's stats of each EDS subscription (`cluster.<name>.`) and RDS subscription
    (`http.<stat_prefix>.rds.<name>.`), over either protocol."""
    mesh.write_routing(destination_rule(), all_to("v1"))
    wait_until("traffic on v1", lambda: mesh.upstreams(5) == {"reviews-v1": 5})
    eds = f"cluster.outbound|{mesh.port}|v1|reviews.default.svc.cluster.local"
    rds = f"http.outbound_127.0.0.1_{mesh.port}.rds.{mesh.port}"
    before = wait_until("EDS and RDS counted", lambda: counted(mesh.stats(), eds, rds))
    mesh.write_routing(destination_rule(), all_to("v2"))  # an RDS update
    wait_until(
        "the RDS update counted",
        lambda: mesh.stats()[f"{rds}.update_success"] > before[f"{rds}.update_success"],
    )


def counted(stats: dict[str, int], *prefixes: str) -> dict[str, int] | None:
    """`stats` once each subscription of `prefixes` has had a successful update."""
    if all(stats.get(f"{p}.update_success", 0) >= 1 for p in prefixes):
        return stats
    return None


def test_a_removed_service_leaves_the_proxy(mesh: Mesh) -> None:
    port = free_port()
    cluster = f"outbound|{port}||ratings.default.svc.cluster.local"
    with EchoServer("ratings-v1") as ratings:
        write_yaml(
            mesh.config_dir / "ratings.yaml",
            service("ratings", port),
            workload("ratings-v1", "ratings", "v1", ratings.port),
        )
        wait_until(
            "traffic to ratings",
            lambda: mesh.upstreams(3, "ratings", port) == {"ratings-v1": 3},
        )
        assert cluster in mesh.ads_dump()["subscriptions"]["CDS"]["resource_names"]
        (mesh.config_dir / "ratings.yaml").unlink()  # CDS, EDS, LDS and RDS lose it

        def gone() -> bool:
            subscriptions = mesh.ads_dump()["subscriptions"]
            return (
                cluster not in subscriptions["CDS"]["resource_names"]
                and cluster not in subscriptions["EDS"]["resource_names"]
                and f"127.0.0.1_{port}" not in subscriptions["LDS"]["resource_names"]
                and str(port) not in subscriptions["RDS"]["resource_names"]
            )

        wait_until("ratings gone from what ADS delivered", gone)
        _, clusters = mesh.proxy.admin_get("/clusters")
        assert cluster not in clusters
        with pytest.raises(httpx.TransportError):  # its listener is closed
            mesh.upstreams(1, "ratings", port)
    mesh.write_routing(destination_rule(), all_to("v1"))
    wait_until("traffic on v1", lambda: mesh.upstreams(5) == {"reviews-v1": 5})
    wait_until("every type SYNCED", lambda: synced(mesh.status()))


def test_proxy_status_command_shows_the_proxy_synced(
    mesh: Mesh, capsys: pytest.CaptureFixture[str]
) -> None:
    mesh.write_routing(destination_rule(), all_to("v1"))
    wait_until("every type SYNCED", lambda: synced(mesh.status()))
    assert fastmesh(["controlplane", "proxy-status", "--server", f"127.0.0.1:{mesh.cp.port}"]) == 0
    header, row, *_ = capsys.readouterr().out.splitlines()
    assert header.split()[:5] == ["NAME", "CDS", "LDS", "EDS", "RDS"]
    assert row.split()[:5] == [NODE_ID, "SYNCED", "SYNCED", "SYNCED", "SYNCED"]
    assert mesh.status().protocol == ("delta" if mesh.delta else "SotW")


def test_a_cluster_the_translator_refuses_is_nacked_and_the_old_config_serves(
    mesh: Mesh,
) -> None:
    mesh.write_routing(destination_rule(), all_to("v1"))
    wait_until("every type SYNCED", lambda: synced(mesh.status()))
    wait_until("traffic on v1", lambda: mesh.upstreams(5) == {"reviews-v1": 5})
    rejected = mesh.stats()["cluster_manager.cds.update_rejected"]
    # Istio's maxRequestsPerConnection becomes a cluster field fastmesh does not support
    pool = {"http": {"maxRequestsPerConnection": 3}}
    mesh.write_routing(destination_rule(connectionPool=pool), all_to("v2"))

    def nacked() -> ProxyStatus | None:
        status = mesh.status()
        return status if status.types["CDS"] == "NACK" else None

    status = wait_until("the CDS NACK", nacked)
    kind, _, reason = status.nacks[-1]
    assert kind == "CDS" and "max_requests_per_connection" in reason, status.nacks
    assert mesh.stats()["cluster_manager.cds.update_rejected"] > rejected
    # the routes to v2 came with it, but the last good snapshot (all to v1) keeps serving:
    # a snapshot is applied whole or not at all
    assert mesh.upstreams(10) == {"reviews-v1": 10}

    mesh.write_routing(destination_rule(), all_to("v2"))
    wait_until("the fix is ACKed", lambda: synced(mesh.status()))
    wait_until("traffic on v2", lambda: mesh.upstreams(5) == {"reviews-v2": 5})


def test_a_broken_edit_of_the_bootstrap_file_does_not_block_xds_updates(mesh: Mesh) -> None:
    original = mesh.proxy.config_path.read_text()
    failures = mesh.stats()["server.config_reload_failure"]
    nacks = len(mesh.status().nacks)
    mesh.proxy.write_config("static_resources: [")
    try:
        wait_until(
            "the reload to be rejected",
            lambda: mesh.stats()["server.config_reload_failure"] > failures,
        )
        # ADS updates are translated with the bootstrap as last loaded, not the broken file
        mesh.write_routing(destination_rule(), all_to("v2"))
        wait_until("traffic on v2", lambda: mesh.upstreams(5) == {"reviews-v2": 5})
        assert len(mesh.status().nacks) == nacks
    finally:
        mesh.proxy.write_config(original)


def test_a_snapshot_the_engine_refuses_is_nacked_and_the_old_config_serves(mesh: Mesh) -> None:
    mesh.write_routing(destination_rule(), all_to("v1"))
    wait_until("traffic on v1", lambda: mesh.upstreams(5) == {"reviews-v1": 5})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # a new service whose outbound listener cannot bind: the translator accepts it, the
        # engine refuses the snapshot; the response that completed it is NACKed
        write_yaml(
            mesh.config_dir / "blocked.yaml",
            service("blocked", port),
            workload("blocked-v1", "blocked", "v1", mesh.v1.port),
        )

        def refused() -> tuple[str, str, str] | None:
            nacks = mesh.status().nacks
            return nacks[-1] if nacks and "the engine refused" in nacks[-1][2] else None

        _, _, reason = wait_until("the NACK of the unbindable listener", refused)
        assert f"127.0.0.1:{port}" in reason, reason
        assert mesh.upstreams(10) == {"reviews-v1": 10}
        (mesh.config_dir / "blocked.yaml").unlink()


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_proxy_keeps_serving_without_the_control_plane_and_reconnects(
    tmp_path: Path, delta: bool
) -> None:
    port, xds_port = free_port(), free_port()
    config_dir = tmp_path / "mesh"
    config_dir.mkdir()
    with ExitStack() as stack:
        v1 = stack.enter_context(EchoServer("reviews-v1"))
        v2 = stack.enter_context(EchoServer("reviews-v2"))
        write_yaml(config_dir / "routing.yaml", destination_rule(), all_to("v1"))
        first = stack.enter_context(ControlPlaneThread(config_dir, port=xds_port))
        mesh = Mesh(config_dir, first, None, port, v1, v2, None, delta)  # type: ignore[arg-type]
        mesh.write_workloads(v2.port)
        boot = ads_bootstrap(
            admin_port=free_port(), xds_port=xds_port, node_id=NODE_ID, delta=delta
        )
        mesh.proxy = stack.enter_context(run_proxy(boot, workdir=tmp_path))
        mesh.client = stack.enter_context(httpx.Client(timeout=5.0))
        assert mesh.upstreams(5) == {"reviews-v1": 5}
        first.stop()

        wait_until("connected_state 0", lambda: mesh.stats()["control_plane.connected_state"] == 0)
        assert mesh.upstreams(10) == {"reviews-v1": 10}  # served from what it has
        mesh.write_routing(destination_rule(), all_to("v2"))
        mesh.cp = stack.enter_context(ControlPlaneThread(config_dir, port=xds_port))
        wait_until("the proxy to reconnect and sync", lambda: synced(mesh.status()))
        wait_until("the config made while away", lambda: mesh.upstreams(5) == {"reviews-v2": 5})
        assert mesh.stats()["control_plane.connected_state"] == 1
