"""The etcd commands as deployed, each a process: `fastmesh controlplane register` holding a
workload, and end to end `serve --etcd` on a real etcd cluster with two registered workloads
and a real Envoy routing to them; one registrar is killed, its lease expires, and Envoy's
traffic moves away from it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
import trio

from fastmesh.cli import main as fastmesh
from fastmesh.controlplane._etcd_client import EtcdClient
from fastmesh.controlplane._etcd_keys import service_key
from tests.support import EchoServer, free_port, run_proxy, socket_address, wait_for_port

from .etcd_harness import EtcdCluster, etcd_cluster
from .harness import ads_bootstrap, service, wait_until

NODE = "sidecar~127.0.0.1~client.default~default.svc.cluster.local"
PROXY_STATUS = [sys.executable, "-m", "fastmesh.controlplane", "proxy-status", "--json"]


@contextmanager
def process(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m fastmesh.controlplane ARGV...`, killed on exit if still running."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fastmesh.controlplane", *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def register(endpoints: list[str], id: str, port: int, ttl: int = 2) -> list[str]:
    return [
        "register",
        "--etcd",
        ",".join(endpoints),
        "--name",
        "reviews",
        "--id",
        id,
        "--address",
        "127.0.0.1",
        "--label",
        "app=reviews",
        "--port",
        f"http={port}",
        "--ttl",
        str(ttl),
    ]


def endpoint_ports(admin_port: int) -> set[int]:
    """The ports of the sidecar's endpoints of the reviews cluster (admin `/clusters`)."""
    text = httpx.get(f"http://127.0.0.1:{admin_port}/clusters?format=json").text
    ports = set()
    for cluster in json.loads(text).get("cluster_statuses", []):
        if "reviews" in cluster["name"]:
            for host in cluster.get("host_statuses", []):
                ports.add(int(host["address"]["socket_address"]["port_value"]))
    return ports


def serve(endpoints: list[str], port: int) -> list[str]:
    return ["serve", "--etcd", ",".join(endpoints), "--port", str(port), "--debounce", "0.02"]


def put_service(endpoints: list[str], port: int) -> None:
    """The `reviews` service, on `port`, into etcd."""

    async def put() -> None:
        async with EtcdClient(endpoints) as client:
            await client.put(
                service_key("default", "reviews"), json.dumps(service("reviews", port))
            )

    trio.run(put)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    c = etcd_cluster(tmp_path_factory.mktemp("etcd"))
    yield c
    c.stop()


def keys(endpoints: list[str], prefix: str = "/fastmesh/") -> list[str]:
    async def read() -> list[str]:
        async with EtcdClient(endpoints) as client:
            return [kv.key for kv in (await client.range_prefix(prefix))[1]]

    return trio.run(read)


def test_register_holds_the_workload_until_sigterm_revokes_it(
    cluster: EtcdCluster, tmp_path: Path
) -> None:
    argv = [*register(cluster.endpoints, "x", 8080, ttl=30), "--prefix", "/cli-test/"]
    with process(argv, tmp_path / "r.log") as proc:
        key = "/cli-test/workloads/default/reviews/x"
        wait_until("the registration", lambda: keys(cluster.endpoints, "/cli-test/") == [key])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    # gone at once, not after the 30 s TTL
    assert keys(cluster.endpoints, "/cli-test/") == []
    assert "registered (lease " in (tmp_path / "r.log").read_text()


def test_register_rejects_a_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        fastmesh(["controlplane", *register(["127.0.0.1:1"], "x", 0)])
    assert "expected NAME=PORT (1-65535), got 'http=0'" in capsys.readouterr().err


@pytest.mark.envoy
@pytest.mark.parametrize("binary", ["envoy", "fastmesh-proxy"])
def test_traffic_moves_away_from_a_workload_whose_lease_expired(
    cluster: EtcdCluster, tmp_path: Path, binary: str
) -> None:
    xds_port, port, admin_port = free_port(), free_port(), free_port()
    endpoints = cluster.endpoints
    with ExitStack() as stack:
        a = stack.enter_context(EchoServer("reviews-a"))
        b = stack.enter_context(EchoServer("reviews-b"))

        put_service(endpoints, port)
        cp = stack.enter_context(process(serve(endpoints, xds_port), tmp_path / "cp.log"))
        stack.enter_context(process(register(endpoints, "a", a.port), tmp_path / "a.log"))
        doomed = stack.enter_context(process(register(endpoints, "b", b.port), tmp_path / "b.log"))
        wait_for_port(xds_port, timeout=15)
        boot = ads_bootstrap(admin_port=admin_port, xds_port=xds_port, node_id=NODE)
        stack.enter_context(run_proxy(boot, binary=binary, workdir=tmp_path))
        client = stack.enter_context(httpx.Client())

        def served_by() -> str:
            r = client.get(f"http://127.0.0.1:{port}/", headers={"host": "reviews"})
            return r.headers.get("x-upstream-name", "") if r.status_code == 200 else ""

        wait_until(
            "both workloads in the sidecar",
            lambda: endpoint_ports(admin_port) == {a.port, b.port},
        )
        wait_until("a request served by b", lambda: served_by() == "reviews-b")

        doomed.send_signal(signal.SIGKILL)  # no revoke: only the lease's TTL removes it
        doomed.wait()
        wait_until("b's lease to expire", lambda: endpoint_ports(admin_port) == {a.port})
        assert {served_by() for _ in range(20)} == {"reviews-a"}

        cp.send_signal(signal.SIGTERM)
        assert cp.wait(timeout=10) == 0
    output = (tmp_path / "cp.log").read_text()
    assert "serving ADS on 127.0.0.1" in output
    assert "ERROR" not in output, output


@pytest.mark.envoy
@pytest.mark.parametrize("binary", ["envoy", "fastmesh-proxy"])
def test_a_killed_replica_leaves_the_sidecar_serving_and_it_resyncs_from_another(
    cluster: EtcdCluster, tmp_path: Path, binary: str
) -> None:
    """Two control-plane replicas on one etcd; the sidecar's xDS cluster names both. The one
    it talks to is SIGKILLed: it keeps serving, reconnects to the other, and a workload
    registered afterwards reaches it through the survivor."""
    ports = [free_port(), free_port()]
    port, admin_port = free_port(), free_port()
    endpoints = cluster.endpoints
    with ExitStack() as stack:
        a = stack.enter_context(EchoServer("reviews-a"))
        b = stack.enter_context(EchoServer("reviews-b"))

        put_service(endpoints, port)
        replicas = [
            stack.enter_context(process(serve(endpoints, p), tmp_path / f"cp{i}.log"))
            for i, p in enumerate(ports)
        ]
        stack.enter_context(process(register(endpoints, "a", a.port), tmp_path / "a.log"))
        for p in ports:
            wait_for_port(p, timeout=15)
        boot = ads_bootstrap(admin_port=admin_port, xds_port=ports[0], node_id=NODE)
        [xds] = boot["static_resources"]["clusters"]
        lb = xds["load_assignment"]["endpoints"][0]["lb_endpoints"]
        lb.append({"endpoint": {"address": socket_address(ports[1])}})
        stack.enter_context(run_proxy(boot, binary=binary, workdir=tmp_path))
        client = stack.enter_context(httpx.Client())

        def served_by() -> str:
            """The upstream that answered, or what went wrong (for the assertion's message)."""
            r = client.get(f"http://127.0.0.1:{port}/", headers={"host": "reviews"})
            if r.status_code != 200:
                return f"HTTP {r.status_code}: {r.text[:80]}"
            return str(r.headers.get("x-upstream-name", ""))

        def connected_to() -> int | None:
            """The index of the replica the sidecar streams from (its proxy-status)."""
            for i, p in enumerate(ports):
                status = subprocess.run(
                    [*PROXY_STATUS, "--server", f"127.0.0.1:{p}"],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if status.returncode == 0 and json.loads(status.stdout):
                    return i
            return None

        wait_until("a request served by a", lambda: served_by() == "reviews-a")
        wait_until("the sidecar on a replica", lambda: connected_to() is not None)
        first = connected_to()
        assert first is not None
        replicas[first].send_signal(signal.SIGKILL)
        replicas[first].wait()
        served = [served_by() for _ in range(10)]
        assert set(served) == {"reviews-a"}, served  # serving without it

        stack.enter_context(process(register(endpoints, "b", b.port), tmp_path / "b.log"))
        wait_until(
            "the new workload, through the other replica",
            lambda: endpoint_ports(admin_port) == {a.port, b.port},
            timeout=30,
        )
        assert connected_to() == 1 - first
