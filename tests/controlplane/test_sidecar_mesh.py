"""End to end: a Sidecar scopes what the control plane sends a real sidecar (Envoy and
fastmesh-proxy): the service it imports answers, a host outside its scope on the same
port gets no route (404), a port only an unimported service has is not listened on, and
the proxy's clusters lack the other services; removing the Sidecar brings them back. And
what depends on the proxy: http matches on its labels, an egress port declared TCP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import EchoServer, ProxyProcess, free_port, run_proxy

from .harness import ControlPlaneThread, ads_bootstrap, service, wait_until, workload, write_yaml

pytestmark = pytest.mark.envoy

NODE_ID = "sidecar~127.0.0.1~productpage-v1.default~default.svc.cluster.local"
REVIEWS = "reviews.default.svc.cluster.local"
DETAILS = "details.default.svc.cluster.local"
RATINGS = "ratings.default.svc.cluster.local"

#: Applies to the client through its node metadata `LABELS` (it has no WorkloadEntry).
SIDECAR = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "Sidecar",
    "metadata": {"name": "productpage", "namespace": "default"},
    "spec": {
        "workloadSelector": {"labels": {"app": "productpage"}},
        "egress": [{"hosts": [f"./{REVIEWS}"]}],
    },
}


@dataclass
class Mesh:
    config_dir: Path
    proxy: ProxyProcess
    #: reviews and details share `web`; ratings alone has `other`.
    web: int
    other: int
    http: httpx.Client

    def scope(self, *docs: dict[str, Any]) -> None:
        write_yaml(self.config_dir / "sidecar.yaml", *docs)

    def status(self, host: str, port: int) -> int | str:
        """What a call through the sidecar gets: a status, or `refused`."""
        try:
            return self.http.get(f"http://127.0.0.1:{port}/", headers={"host": host}).status_code
        except httpx.ConnectError:
            return "refused"

    def clusters(self) -> set[str]:
        """The proxy's clusters, from its admin `/clusters?format=json`."""
        status, body = self.proxy.admin_get("/clusters?format=json")
        assert status == 200, body
        return {c["name"] for c in json.loads(body).get("cluster_statuses", [])}


@pytest.fixture(scope="module", params=["envoy", "fastmesh-proxy"])
def mesh(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Mesh]:
    config_dir = tmp_path_factory.mktemp("mesh")
    web, other = free_port(), free_port()
    with (
        EchoServer("reviews-v1") as reviews,
        EchoServer("details-v1") as details,
        EchoServer("ratings-v1") as ratings,
    ):
        write_yaml(
            config_dir / "services.yaml",
            service("reviews", web),
            service("details", web),
            service("ratings", other),
            workload("reviews-v1", "reviews", "v1", reviews.port),
            workload("details-v1", "details", "v1", details.port),
            workload("ratings-v1", "ratings", "v1", ratings.port),
        )
        write_yaml(config_dir / "sidecar.yaml", SIDECAR)
        with ControlPlaneThread(config_dir) as cp:
            boot = ads_bootstrap(
                admin_port=free_port(),
                xds_port=cp.port,
                node_id=NODE_ID,
                metadata={"LABELS": {"app": "productpage", "version": "v1"}},
            )
            with (
                run_proxy(boot, binary=request.param, workdir=config_dir.parent) as proxy,
                httpx.Client(timeout=10.0) as http,
            ):
                yield Mesh(config_dir, proxy, web, other, http)


def test_a_sidecar_scoped_to_one_service_reaches_only_it(mesh: Mesh) -> None:
    mesh.scope(SIDECAR)
    wait_until("reviews to answer", lambda: mesh.status("reviews", mesh.web) == 200, timeout=30)
    wait_until(
        "the other services' clusters to go",
        lambda: (
            not mesh.clusters()
            & {f"outbound|{mesh.web}||{DETAILS}", f"outbound|{mesh.other}||{RATINGS}"}
        ),
    )
    assert f"outbound|{mesh.web}||{REVIEWS}" in mesh.clusters()
    response = mesh.http.get(f"http://127.0.0.1:{mesh.web}/", headers={"host": "reviews"})
    assert response.headers["x-upstream-name"] == "reviews-v1"
    # the same listener has no virtual host for details; nothing listens for ratings
    assert mesh.status("details", mesh.web) == 404
    assert mesh.status(DETAILS, mesh.web) == 404
    assert mesh.status("ratings", mesh.other) == "refused"


def test_without_the_sidecar_every_service_is_sent_again(mesh: Mesh) -> None:
    mesh.scope(SIDECAR)
    wait_until(
        "details to be out of scope", lambda: mesh.status("details", mesh.web) == 404, timeout=30
    )
    mesh.scope()  # no Sidecar: the whole mesh
    wait_until("ratings to answer", lambda: mesh.status("ratings", mesh.other) == 200)
    wait_until("details to answer", lambda: mesh.status("details", mesh.web) == 200)
    assert {
        f"outbound|{mesh.web}||{REVIEWS}",
        f"outbound|{mesh.web}||{DETAILS}",
        f"outbound|{mesh.other}||{RATINGS}",
    } <= mesh.clusters()
    mesh.scope(SIDECAR)
    wait_until("ratings to go again", lambda: mesh.status("ratings", mesh.other) == "refused")
    assert mesh.status("reviews", mesh.web) == 200


def _upstream(mesh: Mesh, host: str, port: int) -> str:
    """Which echo server answers a call through the sidecar ("" when none does), on a
    connection of its own (one a TCP proxy forwarded stays with its upstream)."""
    headers = {"host": host, "connection": "close"}
    try:
        response = mesh.http.get(f"http://127.0.0.1:{port}/", headers=headers)
    except httpx.TransportError:
        return ""
    return str(response.headers.get("x-upstream-name", ""))


def test_http_matches_apply_by_the_proxys_source_labels(mesh: Mesh) -> None:
    """The client's node `LABELS` are app=productpage: the match naming them routes reviews
    to ratings, the one naming other labels is not in its route config."""
    vs = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": {
            "hosts": ["reviews"],
            "http": [
                {"match": [{"sourceLabels": {"app": "nobody"}}], "route": [_to("details")]},
                {"match": [{"sourceLabels": {"app": "productpage"}}], "route": [_to("ratings")]},
                {"route": [_to("reviews")]},
            ],
        },
    }
    mesh.scope(SIDECAR)
    write_yaml(mesh.config_dir / "vs.yaml", vs)
    try:
        wait_until(
            "reviews to go to ratings",
            lambda: _upstream(mesh, "reviews", mesh.web) == "ratings-v1",
            timeout=30,
        )
    finally:
        write_yaml(mesh.config_dir / "vs.yaml")
    wait_until(
        "reviews to be reviews again", lambda: _upstream(mesh, "reviews", mesh.web) == "reviews-v1"
    )


def _to(name: str) -> dict[str, Any]:
    return {"destination": {"host": name}}


def test_an_egress_port_declared_tcp_is_a_tcp_proxy(mesh: Mesh) -> None:
    """reviews' port declared TCP: the listener forwards bytes to reviews whatever the
    request's Host (no virtual hosts, so no 404 for details)."""
    egress = [{"port": {"number": mesh.web, "protocol": "TCP"}, "hosts": [f"./{REVIEWS}"]}]
    tcp = {
        **SIDECAR,
        "spec": {"workloadSelector": {"labels": {"app": "productpage"}}, "egress": egress},
    }
    mesh.scope(tcp)
    try:
        wait_until(
            "details' Host to reach reviews",
            lambda: _upstream(mesh, "details", mesh.web) == "reviews-v1",
            timeout=30,
        )
    finally:
        mesh.scope(SIDECAR)
    # (a kept-alive connection to the TCP proxy would stay with reviews: a fresh one each)
    wait_until("the HTTP listener again", lambda: _upstream(mesh, "details", mesh.web) == "")
    assert mesh.status("details", mesh.web) == 404
