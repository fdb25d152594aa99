"""End to end: our control plane drives a real sidecar over ADS; traffic follows Istio config.

Tests of behaviour run with Envoy and with fastmesh-proxy (`@both`); tests of what Envoy's
admin API shows (config dump, its stats) with Envoy alone."""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from fastmesh.cli import main as fastmesh
from fastmesh.controlplane import CLUSTER, ENDPOINT, LISTENER, ROUTE, load_directory
from fastmesh.controlplane._server import Stream
from fastmesh.controlplane._translate import translate_snapshot
from tests.support import EchoServer, ProxyProcess, TcpEchoServer, free_port, run_proxy

from .harness import ControlPlaneThread, ads_bootstrap, service, wait_until, workload, write_yaml

pytestmark = pytest.mark.envoy

NODE_ID = "sidecar~127.0.0.1~productpage-v1.default~default.svc.cluster.local"
HOST = "reviews.default.svc.cluster.local"


def virtual_service(http: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": {"hosts": ["reviews"], "http": http},
    }


DESTINATION_RULE = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "DestinationRule",
    "metadata": {"name": "reviews", "namespace": "default"},
    "spec": {
        "host": "reviews",
        "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}},
        "subsets": [
            {"name": "v1", "labels": {"version": "v1"}},
            {"name": "v2", "labels": {"version": "v2"}},
        ],
    },
}


def to(subset: str, weight: int | None = None) -> dict[str, Any]:
    dest: dict[str, Any] = {"destination": {"host": "reviews", "subset": subset}}
    if weight is not None:
        dest["weight"] = weight
    return dest


JASON_TO_V2 = {"match": [{"headers": {"end-user": {"exact": "jason"}}}], "route": [to("v2")]}
CANARY = {"route": [to("v1", 90), to("v2", 10)]}


@dataclass
class Mesh:
    config_dir: Path
    cp: ControlPlaneThread
    envoy: ProxyProcess
    port: int
    v1: EchoServer
    v2: EchoServer
    client: httpx.Client

    def write_routing(self, *docs: dict[str, Any]) -> None:
        write_yaml(self.config_dir / "routing.yaml", *docs)

    def stream(self) -> Stream:
        """The one ADS stream (call from the control plane's thread: `cp.call`)."""
        [stream] = self.cp.plane.server.streams.values()
        return stream

    def wait_synced(self) -> str:
        """Until Envoy has ACKed, for every type, what the files on disk translate to."""
        proxy = self.cp.call(lambda: self.stream().session.proxy)
        assert proxy is not None
        version = translate_snapshot(load_directory(self.config_dir)[0], proxy).version

        def synced() -> bool:
            s = self.stream().session
            return (
                s.snapshot is not None
                and s.snapshot.version == version
                and len(s.types) == 4
                and all(t.status == "SYNCED" for t in s.types.values())
            )

        try:
            wait_until(f"Envoy to ACK version {version}", lambda: self.cp.call(synced))
        except AssertionError as exc:
            exc.add_note(f"proxy status: {self.cp.proxy_status()}")
            raise
        return version

    def get(self, path: str = "/", **headers: str) -> httpx.Response:
        return self.client.get(
            f"http://127.0.0.1:{self.port}{path}", headers={"host": "reviews", **headers}
        )

    def upstreams(self, n: int, **headers: str) -> Counter[str]:
        seen: Counter[str] = Counter()
        for _ in range(n):
            response = self.get(**headers)
            assert response.status_code == 200, response.text
            seen[response.headers["x-upstream-name"]] += 1
        return seen


def config_dump(mesh: Mesh) -> dict[str, Any]:
    status, body = mesh.envoy.admin_get("/config_dump")
    assert status == 200, body
    result: dict[str, Any] = json.loads(body)
    return result


#: Run a test with each sidecar (the `mesh` fixture's parameter; Envoy when not given).
both = pytest.mark.parametrize("mesh", ["envoy", "fastmesh-proxy"], indirect=True)


@pytest.fixture(scope="module")
def mesh(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Mesh]:
    binary = getattr(request, "param", "envoy")
    config_dir = tmp_path_factory.mktemp("mesh")
    port = free_port()
    with (
        EchoServer("reviews-v1") as v1,
        EchoServer("reviews-v2") as v2,
    ):
        write_yaml(
            config_dir / "reviews.yaml",
            service("reviews", port),
            workload("reviews-v1", "reviews", "v1", v1.port),
            workload("reviews-v2", "reviews", "v2", v2.port),
        )
        write_yaml(config_dir / "routing.yaml", DESTINATION_RULE)
        with ControlPlaneThread(config_dir) as cp:
            boot = ads_bootstrap(admin_port=free_port(), xds_port=cp.port, node_id=NODE_ID)
            with (
                run_proxy(boot, binary=binary, workdir=config_dir.parent) as envoy,
                httpx.Client(timeout=10.0) as client,
            ):
                yield Mesh(config_dir, cp, envoy, port, v1, v2, client)


def test_envoy_acks_every_type_and_its_config_dump_matches(mesh: Mesh) -> None:
    mesh.write_routing(DESTINATION_RULE)
    mesh.wait_synced()
    [status] = mesh.cp.proxy_status()
    assert status.node_id == NODE_ID
    assert status.types == {"CDS": "SYNCED", "EDS": "SYNCED", "LDS": "SYNCED", "RDS": "SYNCED"}
    assert status.nacks == ()

    def ours() -> tuple[dict[str, set[str]], dict[str, str]]:
        session = mesh.stream().session
        assert session.snapshot is not None
        names = {t: set(session.snapshot.of_type(t)) for t in (CLUSTER, LISTENER, ROUTE)}
        return names, {t: s.acked_version for t, s in session.types.items()}

    names, acked = mesh.cp.call(ours)
    dump = {c["@type"].rsplit(".", 1)[1]: c for c in config_dump(mesh)["configs"]}
    clusters = dump["ClustersConfigDump"]
    assert clusters["version_info"] == acked[CLUSTER]
    assert {c["cluster"]["name"] for c in clusters["dynamic_active_clusters"]} == names[CLUSTER]
    assert "dynamic_warming_clusters" not in clusters
    listeners = dump["ListenersConfigDump"]
    assert listeners["version_info"] == acked[LISTENER]
    assert {x["name"] for x in listeners["dynamic_listeners"]} == names[LISTENER]
    assert all("active_state" in x for x in listeners["dynamic_listeners"])
    [route] = dump["RoutesConfigDump"]["dynamic_route_configs"]
    assert {route["route_config"]["name"]} == names[ROUTE] == {str(mesh.port)}
    assert route["version_info"] == acked[ROUTE]

    def endpoints_healthy() -> bool:
        clusters = mesh.envoy.admin_get("/clusters")[1]
        return (
            f"outbound|{mesh.port}|v1|{HOST}::127.0.0.1:{mesh.v1.port}::health_flags::healthy"
            in clusters
            and f"outbound|{mesh.port}|v2|{HOST}::127.0.0.1:{mesh.v2.port}::health_flags::healthy"
            in clusters
        )

    wait_until("both subsets' endpoints in Envoy /clusters", endpoints_healthy)


@both
def test_requests_reach_both_workloads_without_a_virtual_service(mesh: Mesh) -> None:
    mesh.write_routing(DESTINATION_RULE)
    mesh.wait_synced()
    # no VirtualService: the service's own cluster, balanced over both workloads
    wait_until("both versions to answer", lambda: len(mesh.upstreams(40)) == 2)
    # every name a client in the namespace may use routes to the service
    for host in (HOST, f"reviews.default:{mesh.port}", "reviews.default.svc"):
        assert (
            mesh.client.get(f"http://127.0.0.1:{mesh.port}/", headers={"host": host}).status_code
            == 200
        )


@both
def test_weighted_canary_and_header_route(mesh: Mesh) -> None:
    mesh.write_routing(DESTINATION_RULE, virtual_service([JASON_TO_V2, CANARY]))
    mesh.wait_synced()
    wait_until(
        "jason to reach v2 only",
        lambda: mesh.upstreams(20, **{"end-user": "jason"}) == {"reviews-v2": 20},
    )

    seen = mesh.upstreams(1000)
    assert set(seen) == {"reviews-v1", "reviews-v2"}
    share = seen["reviews-v2"] / 1000
    assert abs(share - 0.10) < 0.04, seen  # 4 standard deviations of a 1000-request binomial
    assert mesh.upstreams(50, **{"end-user": "jason"}) == {"reviews-v2": 50}
    assert mesh.upstreams(20, **{"end-user": "mallory"}).keys() <= {"reviews-v1", "reviews-v2"}


def rds_reloads(mesh: Mesh) -> int:
    """Envoy's count of route config reloads for our listener port (RDS pushes it applied)."""
    _, stats = mesh.envoy.admin_get(f"/stats?filter=rds\\.{mesh.port}\\.config_reload$")
    [line] = [line for line in stats.splitlines() if line.strip()]
    return int(line.rsplit(":", 1)[1])


def test_config_edit_is_pushed_live_without_restarting_envoy(mesh: Mesh) -> None:
    pid = mesh.envoy.pid
    mesh.write_routing(DESTINATION_RULE, virtual_service([{"route": [to("v1")]}]))
    mesh.wait_synced()
    wait_until("all traffic on v1", lambda: mesh.upstreams(30) == {"reviews-v1": 30})
    reloads = rds_reloads(mesh)

    mesh.write_routing(DESTINATION_RULE, virtual_service([{"route": [to("v2")]}]))
    mesh.wait_synced()
    wait_until("all traffic on v2", lambda: mesh.upstreams(30) == {"reviews-v2": 30})
    assert mesh.envoy.pid == pid and mesh.envoy.alive()
    assert rds_reloads(mesh) == reloads + 1  # one push, applied in place


def test_nack_is_recorded_and_the_fix_is_accepted(mesh: Mesh) -> None:
    mesh.write_routing(DESTINATION_RULE, virtual_service([{"route": [to("v1")]}]))
    mesh.wait_synced()
    bad_regex = {"match": [{"uri": {"regex": "/(unclosed"}}], "route": [to("v2")]}
    mesh.write_routing(DESTINATION_RULE, virtual_service([bad_regex, {"route": [to("v1")]}]))

    def nacked() -> Any:
        [status] = mesh.cp.proxy_status()
        return status.types.get("RDS") == "NACK" and status

    status = wait_until("Envoy to NACK the routes", nacked)
    sent = mesh.cp.call(lambda: mesh.stream().session.types[ROUTE].responses)
    kind, _, message = status.nacks[-1]
    assert kind == "RDS" and "missing )" in message and "/(unclosed" in message, status.nacks
    # Envoy keeps serving the last good routes, and the rejected ones are not sent again
    assert mesh.upstreams(10) == {"reviews-v1": 10}
    assert mesh.cp.call(lambda: mesh.stream().session.types[ROUTE].responses) == sent
    assert mesh.cp.proxy_status()[0].types["RDS"] == "NACK"

    mesh.write_routing(DESTINATION_RULE, virtual_service([{"route": [to("v2")]}]))
    mesh.wait_synced()
    wait_until("the fixed routes to apply", lambda: mesh.upstreams(10) == {"reviews-v2": 10})


def test_every_type_url_is_served(mesh: Mesh) -> None:
    types = mesh.cp.call(lambda: set(mesh.stream().session.types))
    assert types == {CLUSTER, ENDPOINT, LISTENER, ROUTE}


@both
def test_registry_edits_push_endpoints_and_new_services_live(mesh: Mesh) -> None:
    """A workload moving (EDS) and a new service on a new port (CDS, EDS, LDS, RDS)."""
    mesh.write_routing(DESTINATION_RULE, virtual_service([{"route": [to("v2")]}]))
    mesh.wait_synced()
    ratings_port = free_port()
    with EchoServer("reviews-v2-moved") as moved, EchoServer("ratings-v1") as ratings:
        write_yaml(
            mesh.config_dir / "reviews.yaml",
            service("reviews", mesh.port),
            workload("reviews-v1", "reviews", "v1", mesh.v1.port),
            workload("reviews-v2", "reviews", "v2", moved.port),
        )
        write_yaml(
            mesh.config_dir / "ratings.yaml",
            service("ratings", ratings_port),
            workload("ratings-v1", "ratings", "v1", ratings.port),
        )
        mesh.wait_synced()
        wait_until(
            "v2 traffic on the moved workload",
            lambda: mesh.upstreams(20) == {"reviews-v2-moved": 20},
        )

        def ratings_answers() -> bool:
            r = mesh.client.get(f"http://127.0.0.1:{ratings_port}/", headers={"host": "ratings"})
            return r.status_code == 200 and r.headers["x-upstream-name"] == "ratings-v1"

        wait_until("the new ratings listener to route", ratings_answers)
        (mesh.config_dir / "ratings.yaml").unlink()
        write_yaml(
            mesh.config_dir / "reviews.yaml",
            service("reviews", mesh.port),
            workload("reviews-v1", "reviews", "v1", mesh.v1.port),
            workload("reviews-v2", "reviews", "v2", mesh.v2.port),
        )
        mesh.wait_synced()
        wait_until(
            "v2 traffic back on the first workload",
            lambda: mesh.upstreams(20) == {"reviews-v2": 20},
        )
    wait_until(
        "the ratings listener to go",
        lambda: f"127.0.0.1_{ratings_port}" not in mesh.envoy.admin_get("/listeners")[1],
    )


@both
def test_timeout_and_retries_of_a_virtual_service_are_enforced(mesh: Mesh) -> None:
    slow = {
        "match": [{"uri": {"prefix": "/delay/"}}],
        "route": [to("v1")],
        "timeout": "200ms",
        "retries": {"attempts": 0},
    }
    flaky = {
        "match": [{"uri": {"exact": "/status/503"}}],
        "route": [to("v1")],
        "retries": {"attempts": 2, "retryOn": "503"},
    }
    mesh.write_routing(DESTINATION_RULE, virtual_service([slow, flaky, {"route": [to("v2")]}]))
    mesh.wait_synced()
    wait_until(
        "the new routes",
        lambda: mesh.get("/status/503").headers.get("x-upstream-name") == "reviews-v1",
    )

    before = sum(r.path == "/status/503" for r in mesh.v1.requests)
    response = mesh.get("/status/503")
    assert response.status_code == 503
    assert sum(r.path == "/status/503" for r in mesh.v1.requests) == before + 3  # 1 + 2 retries

    response = mesh.get("/delay/3000")
    assert response.status_code == 504 and response.text == "upstream request timeout"
    assert mesh.get("/delay/10").status_code == 200


def test_envoy_keeps_serving_without_the_control_plane_and_resyncs_when_it_returns(
    tmp_path: Path,
) -> None:
    port, xds_port = free_port(), free_port()
    config_dir = tmp_path / "mesh"
    config_dir.mkdir()
    with EchoServer("reviews-v1") as v1, EchoServer("reviews-v2") as v2, ExitStack() as stack:
        write_yaml(
            config_dir / "reviews.yaml",
            service("reviews", port),
            workload("reviews-v1", "reviews", "v1", v1.port),
            workload("reviews-v2", "reviews", "v2", v2.port),
        )
        routing = config_dir / "routing.yaml"
        write_yaml(routing, DESTINATION_RULE, virtual_service([{"route": [to("v1")]}]))
        boot = ads_bootstrap(admin_port=free_port(), xds_port=xds_port, node_id=NODE_ID)
        first = stack.enter_context(ControlPlaneThread(config_dir, port=xds_port))
        stack.enter_context(run_proxy(boot, binary="envoy", workdir=tmp_path))
        client = stack.enter_context(httpx.Client(timeout=10.0))
        first.stop()

        def answered_by() -> str:
            r = client.get(f"http://127.0.0.1:{port}/", headers={"host": "reviews"})
            return r.headers.get("x-upstream-name", "") if r.status_code == 200 else ""

        assert {answered_by() for _ in range(10)} == {"reviews-v1"}  # served from what it has
        write_yaml(routing, DESTINATION_RULE, virtual_service([{"route": [to("v2")]}]))
        second = stack.enter_context(ControlPlaneThread(config_dir, port=xds_port))
        wait_until("Envoy to reconnect", second.proxy_status)
        wait_until("the config made while away", lambda: answered_by() == "reviews-v2")
        wait_until(
            "every type SYNCED again",
            lambda: [set(p.types.values()) for p in second.proxy_status()] == [{"SYNCED"}],
        )


def test_proxy_status_command_shows_envoy_synced(
    mesh: Mesh, capsys: pytest.CaptureFixture[str]
) -> None:
    mesh.write_routing(DESTINATION_RULE)
    mesh.wait_synced()
    assert fastmesh(["controlplane", "proxy-status", "--server", f"127.0.0.1:{mesh.cp.port}"]) == 0
    header, row, *rest = capsys.readouterr().out.splitlines()
    assert header.split() == ["NAME", "CDS", "LDS", "EDS", "RDS", "XDS", "PEER"]
    assert row.split()[:6] == [NODE_ID, "SYNCED", "SYNCED", "SYNCED", "SYNCED", "SotW"]
    assert all(line.startswith("NACK ") for line in rest)  # earlier tests may have NACKed

    assert (
        fastmesh(
            ["controlplane", "proxy-status", "--json", "--server", f"127.0.0.1:{mesh.cp.port}"]
        )
        == 0
    )
    [entry] = json.loads(capsys.readouterr().out)
    assert entry["node_id"] == NODE_ID and set(entry["acked"]) == {"CDS", "EDS", "LDS", "RDS"}


@both
def test_redirect_rewrite_headers_query_match_and_faults(mesh: Mesh) -> None:
    http: list[dict[str, Any]] = [
        {
            "match": [{"uri": {"prefix": "/old"}}],
            "redirect": {"uri": "/new", "authority": "example.com", "redirectCode": 308},
        },
        {
            "match": [{"uri": {"prefix": "/api/"}, "queryParams": {"debug": {"exact": "1"}}}],
            "rewrite": {"uri": "/v2/"},
            "headers": {
                "request": {"set": {"x-env": "canary"}, "remove": ["x-drop"]},
                "response": {"set": {"x-served-by": "fastmesh"}},
            },
            "route": [to("v1")],
        },
        {
            "match": [{"uri": {"prefix": "/teapot"}}],
            "fault": {"abort": {"httpStatus": 418}},
            "route": [to("v1")],
        },
        {
            "match": [{"uri": {"prefix": "/slow"}}],
            "fault": {"delay": {"fixedDelay": "10ms"}},
            "route": [to("v1")],
        },
        {"route": [to("v2")]},
    ]
    mesh.write_routing(DESTINATION_RULE, virtual_service(http))
    mesh.wait_synced()
    wait_until("the new routes", lambda: mesh.get("/old/x").status_code == 308)

    redirect = mesh.get("/old/x")
    assert redirect.headers["location"] == "http://example.com/new"

    api = mesh.get("/api/items?debug=1", **{"x-drop": "secret"})
    assert api.status_code == 200 and api.headers["x-served-by"] == "fastmesh"
    seen = api.json()
    assert (seen["name"], seen["path"]) == ("reviews-v1", "/v2/items?debug=1")
    assert seen["headers"]["x-env"] == "canary" and "x-drop" not in seen["headers"]
    assert mesh.get("/api/items?debug=0").headers["x-upstream-name"] == "reviews-v2"

    before = len(mesh.v1.requests)
    teapot = mesh.get("/teapot")
    assert teapot.status_code == 418 and "x-upstream-name" not in teapot.headers
    assert len(mesh.v1.requests) == before  # aborted in Envoy, never forwarded

    def delays() -> int:
        _, stats = mesh.envoy.admin_get("/stats?filter=fault\\.delays_injected$")
        return sum(int(line.rsplit(":", 1)[1]) for line in stats.splitlines() if line.strip())

    injected = delays()
    assert mesh.get("/slow").headers["x-upstream-name"] == "reviews-v1"
    assert delays() == injected + 1


def test_destination_rule_traffic_policy_is_accepted_and_applied(mesh: Mesh) -> None:
    rule = json.loads(json.dumps(DESTINATION_RULE))
    rule["spec"]["trafficPolicy"] = {
        "loadBalancer": {"consistentHash": {"httpHeaderName": "x-user"}},
        "connectionPool": {"tcp": {"maxConnections": 7}, "http": {"maxRetries": 2}},
        "outlierDetection": {"consecutive5xxErrors": 3, "interval": "5s"},
    }
    mesh.write_routing(rule)  # no VirtualService: the service's own cluster, both workloads
    mesh.wait_synced()
    cluster = f"outbound|{mesh.port}||{HOST}"

    def breakers_applied() -> bool:
        clusters = mesh.envoy.admin_get("/clusters")[1]
        return f"{cluster}::default_priority::max_connections::7" in clusters

    wait_until("Envoy to apply the circuit breakers", breakers_applied)
    clusters = mesh.envoy.admin_get("/clusters")[1]
    assert f"{cluster}::default_priority::max_retries::2" in clusters
    [dumped] = [
        c["cluster"]
        for c in next(
            x for x in config_dump(mesh)["configs"] if x["@type"].endswith("ClustersConfigDump")
        )["dynamic_active_clusters"]
        if c["cluster"]["name"] == cluster
    ]
    assert dumped["lb_policy"] == "RING_HASH"
    assert dumped["outlier_detection"]["consecutive_5xx"] == 3

    # consistent hashing: each user sticks to one workload; together they use both
    wait_until("both workloads in the ring", lambda: len(mesh.upstreams(40)) == 2)
    chosen = {}
    for user in (f"user-{i}" for i in range(16)):
        seen = mesh.upstreams(8, **{"x-user": user})
        assert len(seen) == 1, (user, seen)
        chosen[user] = next(iter(seen))
    assert set(chosen.values()) == {"reviews-v1", "reviews-v2"}


def settled(what: str, count: Callable[[], int], *, quiet: float = 0.5) -> int:
    """`count()` once it stopped changing for `quiet` seconds (fire-and-forget traffic)."""
    last = [-1]

    def still() -> bool:
        now = count()
        same = now == last[0]
        last[0] = now
        if not same:
            time.sleep(quiet)
        return same

    wait_until(what, still, timeout=30.0)
    return last[0]


@both
def test_mirror_copies_requests_to_the_mirror_subset(mesh: Mesh) -> None:
    def mirrored(prefix: str) -> int:
        return sum(r.path.startswith(prefix) for r in mesh.v2.requests)

    mirror = {"host": "reviews", "subset": "v2"}
    mesh.write_routing(DESTINATION_RULE, virtual_service([{"route": [to("v1")], "mirror": mirror}]))
    mesh.wait_synced()
    wait_until(
        "the mirror to apply",
        lambda: mesh.get("/mirror/probe").status_code == 200 and mirrored("/mirror/probe"),
    )
    for i in range(50):
        assert mesh.get(f"/mirror/all/{i}").headers["x-upstream-name"] == "reviews-v1"
    assert settled("the copies to arrive", lambda: mirrored("/mirror/all/")) == 50
    copy = next(r for r in mesh.v2.requests if r.path.startswith("/mirror/all/"))
    assert copy.header("host") == "reviews-shadow"  # Envoy's mark on shadow traffic

    half = {"route": [to("v1")], "mirror": mirror, "mirrorPercentage": {"value": 50.0}}
    mesh.write_routing(DESTINATION_RULE, virtual_service([half]))
    mesh.wait_synced()
    n = 400
    for i in range(n):
        assert mesh.get(f"/mirror/half/{i}").status_code == 200
    copies = settled("the copies to arrive", lambda: mirrored("/mirror/half/"))
    assert abs(copies - n / 2) <= 50, copies  # 5 standard deviations of a 400-draw binomial


@both
def test_cors_preflight_is_answered_per_the_policy(mesh: Mesh) -> None:
    policy = {
        "allowOrigins": [{"exact": "https://good.example"}, {"prefix": "https://ok."}],
        "allowMethods": ["GET", "POST"],
        "allowHeaders": ["x-token"],
        "exposeHeaders": ["x-trace"],
        "maxAge": "60s",
        "allowCredentials": True,
    }
    mesh.write_routing(
        DESTINATION_RULE, virtual_service([{"corsPolicy": policy, "route": [to("v1")]}])
    )
    mesh.wait_synced()

    def preflight(origin: str) -> httpx.Response:
        return mesh.client.options(
            f"http://127.0.0.1:{mesh.port}/api",
            headers={
                "host": "reviews",
                "origin": origin,
                "access-control-request-method": "POST",
            },
        )

    wait_until(
        "the CORS policy to apply",
        lambda: "access-control-allow-origin" in preflight("https://good.example").headers,
    )
    before = len(mesh.v1.requests)
    for origin in ("https://good.example", "https://ok.example"):
        answer = preflight(origin)
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == origin
        assert answer.headers["access-control-allow-methods"] == "GET,POST"
        assert answer.headers["access-control-allow-headers"] == "x-token"
        assert answer.headers["access-control-max-age"] == "60"
        assert answer.headers["access-control-allow-credentials"] == "true"
    assert len(mesh.v1.requests) == before  # answered by the sidecar

    refused = preflight("https://evil.example")
    assert "access-control-allow-origin" not in refused.headers
    assert refused.headers["x-upstream-name"] == "reviews-v1"  # forwarded, as Istio's default

    simple = mesh.get("/api", origin="https://good.example")
    assert simple.headers["x-upstream-name"] == "reviews-v1"
    assert simple.headers["access-control-allow-origin"] == "https://good.example"
    assert simple.headers["access-control-expose-headers"] == "x-trace"
    assert (
        "access-control-allow-origin" not in mesh.get("/api", origin="https://evil.example").headers
    )
    # unmatchedPreflights: IGNORE answers the others here too, without allowing the origin
    policy["unmatchedPreflights"] = "IGNORE"
    mesh.write_routing(
        DESTINATION_RULE, virtual_service([{"corsPolicy": policy, "route": [to("v1")]}])
    )
    mesh.wait_synced()
    wait_until(
        "IGNORE to apply",
        lambda: "x-upstream-name" not in preflight("https://evil.example").headers,
    )
    before = len(mesh.v1.requests)
    ignored = preflight("https://evil.example")
    assert ignored.status_code == 200 and "access-control-allow-origin" not in ignored.headers
    assert len(mesh.v1.requests) == before


def tcp_answer(port: int) -> str:
    """Which TCP workload answered a new connection through the sidecar on `port`."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"ping\n")
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return data.removeprefix(b"ping\n").decode()


@both
def test_tcp_routes_split_connections_by_weight(mesh: Mesh) -> None:
    db_port = free_port()
    rule = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {
            "host": "db",
            "subsets": [
                {"name": "v1", "labels": {"version": "v1"}},
                {"name": "v2", "labels": {"version": "v2"}},
            ],
        },
    }

    def tcp_split(v1: int, v2: int) -> dict[str, Any]:
        return {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {
                "hosts": ["db"],
                "tcp": [
                    {
                        "route": [
                            {"destination": {"host": "db", "subset": "v1"}, "weight": v1},
                            {"destination": {"host": "db", "subset": "v2"}, "weight": v2},
                        ]
                    }
                ],
            },
        }

    def answers(n: int) -> Counter[str]:
        return Counter(tcp_answer(db_port) for _ in range(n))

    with (
        TcpEchoServer(on_eof=b"db-v1") as v1,
        TcpEchoServer(on_eof=b"db-v2") as v2,
    ):
        write_yaml(
            mesh.config_dir / "db.yaml",
            service("db", db_port, port_name="tcp"),
            workload("db-v1", "db", "v1", v1.port, port_name="tcp"),
            workload("db-v2", "db", "v2", v2.port, port_name="tcp"),
        )
        try:
            mesh.write_routing(DESTINATION_RULE, rule, tcp_split(100, 0))
            mesh.wait_synced()
            wait_until("all connections on v1", lambda: answers(10) == {"db-v1": 10})
            mesh.write_routing(DESTINATION_RULE, rule, tcp_split(0, 100))
            mesh.wait_synced()
            wait_until("all connections on v2", lambda: answers(10) == {"db-v2": 10})
            mesh.write_routing(DESTINATION_RULE, rule, tcp_split(80, 20))
            mesh.wait_synced()
            wait_until("v1 in the split", lambda: answers(10)["db-v1"] > 0)
            seen = answers(200)
            assert set(seen) == {"db-v1", "db-v2"}, seen
            assert abs(seen["db-v2"] / 200 - 0.2) <= 0.12, seen  # > 4 standard deviations
        finally:
            (mesh.config_dir / "db.yaml").unlink()
            mesh.write_routing(DESTINATION_RULE)
            mesh.wait_synced()
