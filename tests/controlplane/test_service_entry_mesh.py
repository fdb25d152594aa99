"""End to end: ServiceEntry hosts reached through a sidecar the control plane drives, with
Envoy sidecars and with fastmesh sidecars: a STATIC entry routed and split by a
VirtualService, a DNS entry resolved by the sidecar, a MESH_EXTERNAL entry spoken to in
plaintext while a mesh service gets mTLS (the mesh has a CA)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from fastmesh.ca import CertificateAuthority, SpiffeId
from fastmesh.controlplane import ControlPlane
from fastmesh.controlplane._sds import SecretIssuer
from tests.support import EchoServer, ProxyProcess, free_port, run_proxy
from tests.support.proxy import Binary

from .harness import (
    ControlPlaneThread,
    account_sidecar,
    service,
    wait_until,
    workload,
    write_yaml,
)

pytestmark = pytest.mark.envoy

Json = dict[str, Any]
TD = "cluster.local"
CLIENT = SpiffeId(TD, "default", "productpage")
#: The client sidecar's outbound address (the server sidecar's: 127.0.0.4).
CLIENT_ADDRESS = "127.0.0.2"


def entry(name: str, spec: Json) -> Json:
    return istio("ServiceEntry", name, spec)


def istio(kind: str, name: str, spec: Json) -> Json:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }


@dataclass
class Mesh:
    binary: Binary
    cp: ControlPlaneThread
    client: ProxyProcess
    config_dir: Path
    #: host -> the port clients call it on (each entry and the mesh service its own).
    ports: dict[str, int]
    backends: dict[str, EchoServer]
    http: httpx.Client

    def call(self, host: str, authority: str = "", **headers: str) -> httpx.Response:
        """Through the client sidecar's outbound listener for `host`'s port (Host: `host`,
        or `authority`)."""
        url = f"http://{CLIENT_ADDRESS}:{self.ports[host]}/"
        return self.http.get(url, headers={"host": authority or host, **headers})

    def ok(self, host: str) -> httpx.Response:
        """Until a call to `host` answers 200 (config is pushed asynchronously)."""

        def answered() -> httpx.Response | None:
            response = self.call(host)
            return response if response.status_code == 200 else None

        return wait_until(f"{host} to answer 200", answered, timeout=20)

    def upstreams(self, host: str, n: int, **headers: str) -> Counter[str]:
        seen: Counter[str] = Counter()
        for _ in range(n):
            response = self.call(host, **headers)
            assert response.status_code == 200, response.text
            seen[response.headers["x-upstream-name"]] += 1
        return seen


def mesh_config(ports: dict[str, int], backends: dict[str, EchoServer], inbound: int) -> list[Json]:
    static = entry(
        "backend",
        {
            "hosts": ["backend.example.com"],
            "location": "MESH_INTERNAL",
            "resolution": "STATIC",
            "ports": [{"number": ports["backend.example.com"], "name": "http", "protocol": "HTTP"}],
            "endpoints": [
                {
                    "address": "127.0.0.1",
                    "ports": {"http": backends[version].port},
                    "labels": {"version": version},
                }
                for version in ("v1", "v2")
            ],
        },
    )
    dns = entry(
        "local",
        {
            "hosts": ["localhost"],
            "resolution": "DNS",
            "ports": [
                {
                    "number": ports["localhost"],
                    "name": "http",
                    "protocol": "HTTP",
                    "targetPort": backends["dns"].port,
                }
            ],
        },
    )
    external = entry(
        "external",
        {
            "hosts": ["api.external.test"],
            "location": "MESH_EXTERNAL",
            "resolution": "STATIC",
            "ports": [{"number": ports["api.external.test"], "name": "http", "protocol": "HTTP"}],
            "endpoints": [
                {
                    "address": "127.0.0.1",
                    "ports": {"http": backends["external"].port},
                    "labels": {"security.istio.io/tlsMode": "istio"},
                }
            ],
        },
    )
    return [
        service("reviews", ports["reviews"]),
        workload("reviews-v1", "reviews", "v1", inbound),
        static,
        dns,
        external,
    ]


ROUTING = [
    istio(
        "DestinationRule",
        "backend",
        {
            "host": "backend.example.com",
            "subsets": [
                {"name": "v1", "labels": {"version": "v1"}},
                {"name": "v2", "labels": {"version": "v2"}},
            ],
        },
    ),
    istio(
        "VirtualService",
        "backend",
        {
            "hosts": ["backend.example.com"],
            "http": [
                {
                    "match": [{"headers": {"end-user": {"exact": "jason"}}}],
                    "route": [{"destination": {"host": "backend.example.com", "subset": "v2"}}],
                },
                {
                    "route": [
                        {
                            "destination": {"host": "backend.example.com", "subset": "v1"},
                            "weight": 75,
                        },
                        {
                            "destination": {"host": "backend.example.com", "subset": "v2"},
                            "weight": 25,
                        },
                    ]
                },
            ],
        },
    ),
]


@pytest.fixture(scope="module", params=["envoy", "fastmesh-proxy"])
def mesh(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Mesh]:
    binary: Binary = request.param
    base = tmp_path_factory.mktemp("entries")
    ca, _ = CertificateAuthority.init(base / "ca", TD)
    config_dir = base / "mesh"
    config_dir.mkdir()
    hosts = ("reviews", "backend.example.com", "localhost", "api.external.test")
    # bound by both sidecars' outbound listeners, on their own addresses
    ports = {host: free_port(CLIENT_ADDRESS, "127.0.0.4") for host in hosts}
    inbound = free_port()
    with ExitStack() as stack:
        backends = {
            name: stack.enter_context(EchoServer(name))
            for name in ("reviews", "v1", "v2", "dns", "external")
        }
        write_yaml(config_dir / "mesh.yaml", *mesh_config(ports, backends, inbound))
        write_yaml(config_dir / "routing.yaml", *ROUTING)
        cp = ControlPlaneThread(config_dir)
        cp.plane = ControlPlane(cp.registry, debounce=0.05, secrets=SecretIssuer(ca))
        stack.enter_context(cp)
        server = account_sidecar(
            "reviews",
            cp.port,
            "127.0.0.4",
            WORKLOAD_NAME="reviews-v1",
            FASTMESH_APP_PORTS={"http": backends["reviews"].port},
        )
        stack.enter_context(run_proxy(server, binary=binary, workdir=base))
        client = account_sidecar("productpage", cp.port, CLIENT_ADDRESS)
        client_proxy = stack.enter_context(run_proxy(client, binary=binary, workdir=base))
        http = stack.enter_context(httpx.Client(timeout=5.0))
        mesh = Mesh(binary, cp, client_proxy, config_dir, ports, backends, http)
        wait_until(
            "the mesh service through both sidecars", lambda: mesh.call("reviews").is_success
        )
        yield mesh


def test_a_static_entry_is_routed_and_split_by_its_virtual_service(mesh: Mesh) -> None:
    wait_until(
        "jason to reach v2 only",
        lambda: mesh.upstreams("backend.example.com", 10, **{"end-user": "jason"}) == {"v2": 10},
    )
    seen = mesh.upstreams("backend.example.com", 400)
    assert set(seen) == {"v1", "v2"}, seen
    assert abs(seen["v2"] / 400 - 0.25) < 0.09, seen  # 4 standard deviations of a binomial
    # the entry's port is named in the Host too, as Istio's domains allow
    port = mesh.ports["backend.example.com"]
    authority = f"backend.example.com:{port}"
    response = mesh.call("backend.example.com", authority, **{"end-user": "jason"})
    assert response.headers["x-upstream-name"] == "v2"


def test_a_dns_entry_is_resolved_by_the_sidecar(mesh: Mesh) -> None:
    response = mesh.ok("localhost")
    assert response.headers["x-upstream-name"] == "dns"
    assert mesh.backends["dns"].requests[-1].header("host") == "localhost"


def test_an_external_entry_is_plaintext_while_the_mesh_service_is_mtls(mesh: Mesh) -> None:
    # its endpoint says it has a sidecar, yet MESH_EXTERNAL means no auto mTLS (as in Istio):
    # a TLS handshake would fail against the plaintext app
    response = mesh.ok("api.external.test")
    assert response.headers["x-upstream-name"] == "external"
    # the mesh service's app sees the client identity its sidecar verified: mTLS on that hop
    assert mesh.call("reviews").status_code == 200
    xfcc = mesh.backends["reviews"].requests[-1].header("x-forwarded-client-cert") or ""
    assert f"URI={CLIENT.uri}" in xfcc.split(";"), xfcc


def test_a_none_entry_is_original_dst_which_a_fastmesh_sidecar_refuses(mesh: Mesh) -> None:
    """Resolution NONE is Envoy's ORIGINAL_DST cluster, as Istio makes it; fastmesh-proxy
    has no original-destination load balancer and NACKs it, saying so (docs/controlplane.md)."""
    port = free_port()
    none = entry(
        "passthrough",
        {"hosts": ["*.none.test"], "ports": [{"number": port, "name": "tcp", "protocol": "TCP"}]},
    )
    write_yaml(mesh.config_dir / "none.yaml", none)
    client = f"sidecar~{CLIENT_ADDRESS}~productpage-v1.default~default.svc.cluster.local"

    def cds() -> tuple[str, list[str]]:
        """The client sidecar's CDS status and its CDS NACK messages."""
        [status] = [s for s in mesh.cp.proxy_status() if s.node_id == client]
        return status.types["CDS"], [m for kind, _, m in status.nacks if kind == "CDS"]

    refusal = "ORIGINAL_DST is not supported by fastmesh"
    try:
        if mesh.binary == "envoy":
            cluster = f"outbound|{port}||*.none.test::observability_name"
            wait_until(
                "Envoy to take the ORIGINAL_DST cluster",
                lambda: cluster in mesh.client.admin_get("/clusters")[1],
            )
            assert cds() == ("SYNCED", [])
        else:
            wait_until("fastmesh-proxy to NACK CDS", lambda: any(refusal in m for m in cds()[1]))
    finally:
        (mesh.config_dir / "none.yaml").unlink()
    wait_until("CDS to be in sync again", lambda: cds()[0] == "SYNCED")
    assert mesh.ok("api.external.test").headers["x-upstream-name"] == "external"
