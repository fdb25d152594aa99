"""End to end: real Envoy on incremental (delta) ADS. Config arrives and serves; each change
sends only the resources that changed (or `removed_resources`); a NACK is not retried; a
reconnecting Envoy that already holds everything is sent nothing new."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from fastmesh.controlplane import CLUSTER, ENDPOINT, LISTENER, ROUTE
from fastmesh.controlplane._delta import DeltaSession, Sent
from tests.support import EchoServer, ProxyProcess, free_port, run_proxy

from .harness import ControlPlaneThread, ads_bootstrap, service, wait_until, workload, write_yaml
from .test_envoy_ads import DESTINATION_RULE, NODE_ID, to, virtual_service

pytestmark = pytest.mark.envoy


@dataclass
class Mesh:
    config_dir: Path
    cp: ControlPlaneThread
    envoy: ProxyProcess
    port: int
    v1: EchoServer
    v2: EchoServer
    client: httpx.Client

    def session(self) -> DeltaSession:
        [stream] = self.cp.plane.server.streams.values()
        assert isinstance(stream.session, DeltaSession)
        return stream.session

    def sent(self) -> list[Sent]:
        return self.cp.call(lambda: list(self.session().sent))

    def synced(self) -> bool:
        [status] = self.cp.proxy_status()
        return status.protocol == "delta" and set(status.types.values()) == {"SYNCED"}

    def answered_by(self) -> str:
        r = self.client.get(f"http://127.0.0.1:{self.port}/", headers={"host": "reviews"})
        return str(r.headers.get("x-upstream-name", "")) if r.status_code == 200 else ""

    def after(self, mark: int, what: str) -> list[Sent]:
        """The responses sent since `mark` once Envoy is SYNCED again."""
        wait_until(what, lambda: len(self.sent()) > mark and self.synced())
        return self.sent()[mark:]


def reviews(mesh_dir: Path, port: int, v1: int, v2: int) -> None:
    write_yaml(
        mesh_dir / "reviews.yaml",
        service("reviews", port),
        workload("reviews-v1", "reviews", "v1", v1),
        workload("reviews-v2", "reviews", "v2", v2),
    )


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    config_dir = tmp_path_factory.mktemp("delta")
    port = free_port()
    with ExitStack() as stack:
        v1 = stack.enter_context(EchoServer("reviews-v1"))
        v2 = stack.enter_context(EchoServer("reviews-v2"))
        reviews(config_dir, port, v1.port, v2.port)
        write_yaml(
            config_dir / "routing.yaml", DESTINATION_RULE, virtual_service([{"route": [to("v1")]}])
        )
        cp = stack.enter_context(ControlPlaneThread(config_dir))
        boot = ads_bootstrap(admin_port=free_port(), xds_port=cp.port, node_id=NODE_ID, delta=True)
        envoy = stack.enter_context(run_proxy(boot, binary="envoy", workdir=config_dir.parent))
        client = stack.enter_context(httpx.Client(timeout=10.0))
        mesh = Mesh(config_dir, cp, envoy, port, v1, v2, client)
        wait_until("Envoy SYNCED over delta", mesh.synced)
        yield mesh


def test_envoy_takes_everything_over_delta_and_serves(mesh: Mesh) -> None:
    assert mesh.cp.call(lambda: set(mesh.session().types)) == {CLUSTER, ENDPOINT, LISTENER, ROUTE}
    wait_until("traffic on v1", lambda: mesh.answered_by() == "reviews-v1")


def test_a_route_edit_sends_only_that_route_config(mesh: Mesh) -> None:
    mark = len(mesh.sent())
    write_yaml(
        mesh.config_dir / "routing.yaml", DESTINATION_RULE, virtual_service([{"route": [to("v2")]}])
    )
    sent = mesh.after(mark, "the edit to be sent and ACKed")
    assert [(s.type_url, s.resources, s.removed) for s in sent] == [(ROUTE, (str(mesh.port),), ())]
    wait_until("traffic on v2", lambda: mesh.answered_by() == "reviews-v2")


def test_one_moved_endpoint_sends_one_assignment(mesh: Mesh) -> None:
    with EchoServer("reviews-v2-moved") as moved:
        mark = len(mesh.sent())
        reviews(mesh.config_dir, mesh.port, mesh.v1.port, moved.port)
        sent = mesh.after(mark, "the endpoint change to be sent and ACKed")
        changed = [(s.type_url, s.resources) for s in sent]
        v2 = f"outbound|{mesh.port}|v2|reviews.default.svc.cluster.local"
        default = f"outbound|{mesh.port}||reviews.default.svc.cluster.local"
        # the subset's assignment, and the service's own (it holds every workload)
        assert changed == [(ENDPOINT, tuple(sorted((default, v2))))]
        wait_until("traffic on the moved v2", lambda: mesh.answered_by() == "reviews-v2-moved")
        reviews(mesh.config_dir, mesh.port, mesh.v1.port, mesh.v2.port)
        wait_until("traffic back on v2", lambda: mesh.answered_by() == "reviews-v2")


def test_a_removed_service_is_sent_as_removed_resources(mesh: Mesh) -> None:
    ratings_port = free_port()
    with EchoServer("ratings-v1") as ratings:
        write_yaml(
            mesh.config_dir / "ratings.yaml",
            service("ratings", ratings_port),
            workload("ratings-v1", "ratings", "v1", ratings.port),
        )
        cluster = f"outbound|{ratings_port}||ratings.default.svc.cluster.local"
        wait_until("the ratings cluster", lambda: cluster in mesh.envoy.admin_get("/clusters")[1])
        mark = len(mesh.sent())
        (mesh.config_dir / "ratings.yaml").unlink()
        sent = mesh.after(mark, "the removal to be sent and ACKed")
        removed = {(s.type_url, name) for s in sent for name in s.removed}
        assert (CLUSTER, cluster) in removed
        assert (LISTENER, f"127.0.0.1_{ratings_port}") in removed
        assert all(not s.resources for s in sent if s.type_url in (CLUSTER, LISTENER))
    assert cluster not in mesh.envoy.admin_get("/clusters")[1]
    assert f"127.0.0.1_{ratings_port}" not in mesh.envoy.admin_get("/listeners")[1]


def test_a_nack_is_recorded_and_not_retried(mesh: Mesh) -> None:
    bad = {"match": [{"uri": {"regex": "/(unclosed"}}], "route": [to("v2")]}
    write_yaml(
        mesh.config_dir / "routing.yaml",
        DESTINATION_RULE,
        virtual_service([bad, {"route": [to("v1")]}]),
    )

    def nacked() -> bool:
        [status] = mesh.cp.proxy_status()
        return status.types.get("RDS") == "NACK"

    wait_until("Envoy to NACK the routes", nacked)
    count = len(mesh.sent())
    assert "missing )" in mesh.cp.proxy_status()[0].nacks[-1][2]
    assert mesh.answered_by() == "reviews-v2"  # the last good routes serve
    write_yaml(mesh.config_dir / "other.yaml")  # any config event: the bad content stays unsent
    assert not wait_until_or_none(lambda: len(mesh.sent()) > count)
    write_yaml(
        mesh.config_dir / "routing.yaml", DESTINATION_RULE, virtual_service([{"route": [to("v1")]}])
    )
    wait_until("the fix to be ACKed", mesh.synced)
    wait_until("traffic on v1", lambda: mesh.answered_by() == "reviews-v1")


def wait_until_or_none(check: Callable[[], bool], seconds: float = 1.0) -> bool:
    """Whether `check` turns true within `seconds` (to assert that nothing happens)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_a_reconnecting_envoy_gets_nothing_it_already_holds(tmp_path: Path) -> None:
    port, xds_port = free_port(), free_port()
    with EchoServer("reviews-v1") as v1, EchoServer("reviews-v2") as v2, ExitStack() as stack:
        reviews(tmp_path, port, v1.port, v2.port)
        write_yaml(
            tmp_path / "routing.yaml", DESTINATION_RULE, virtual_service([{"route": [to("v1")]}])
        )
        boot = ads_bootstrap(admin_port=free_port(), xds_port=xds_port, node_id=NODE_ID, delta=True)
        first = stack.enter_context(ControlPlaneThread(tmp_path, port=xds_port))
        stack.enter_context(run_proxy(boot, binary="envoy", workdir=tmp_path.parent))
        wait_until(
            "a first sync", lambda: set(first.proxy_status()[0].types.values()) == {"SYNCED"}
        )
        first.stop()
        second = stack.enter_context(ControlPlaneThread(tmp_path, port=xds_port))

        def synced() -> bool:
            status = second.proxy_status()
            return (
                bool(status)
                and len(status[0].types) == 4
                and status[0].types.keys()
                == {k for k, v in status[0].types.items() if v == "SYNCED"}
            )

        def session_sent() -> list[Sent]:
            [stream] = second.plane.server.streams.values()
            assert isinstance(stream.session, DeltaSession)
            return list(stream.session.sent)

        wait_until("Envoy to reconnect and sync", synced)
        sent = second.call(session_sent)
        # Envoy said what it holds (initial_resource_versions): no resource is sent again
        assert all(not s.resources and not s.removed for s in sent), sent
        assert {s.type_url for s in sent} >= {CLUSTER, LISTENER}  # answered, empty
