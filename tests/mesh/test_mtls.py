"""Two sidecars on loopback speak mutual TLS with SPIFFE identities, end to end.

Every scenario runs with fastmesh-proxy and, where Envoy is cheap to start, with Envoy on
the same YAML; the pair test runs all four pairings, so either proxy interoperates with
the other on both sides of the hop.
"""

from __future__ import annotations

import datetime as dt
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import StartProxy
from tests.support import EchoServer, ProxyProcess, connect, read_until_close, require_binary

from ._mesh import (
    Mesh,
    Sidecar,
    Workload,
    inbound_config,
    listener_stat,
    outbound_config,
    principal_policy,
    served_serial,
    spiffe,
)

FASTMESH = "fastmesh-proxy"
ENVOY = "envoy"
BOTH = [
    pytest.param(ENVOY, marks=pytest.mark.envoy, id="envoy"),
    pytest.param(FASTMESH, id="fastmesh"),
]


def stat(proxy: ProxyProcess, name: str) -> int:
    """A counter from the admin `/stats`; 0 when the proxy has not created it yet."""
    return proxy.counter(name)


def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def mtls_get(port: int, caller: Workload, path: str = "/") -> httpx.Response:
    """One HTTP/1.1 request over a fresh mTLS connection presenting `caller`'s SVID."""
    with httpx.Client(verify=caller.client_context(), timeout=5) as client:
        return client.get(f"https://127.0.0.1:{port}{path}")


def assert_refused(port: int, caller: Workload) -> None:
    """B must refuse `caller`'s certificate. With TLS 1.3 the server judges the client
    certificate after the client's handshake is done, so the refusal shows on first read."""
    try:
        response = mtls_get(port, caller)
    except (httpx.TransportError, ssl.SSLError):
        return
    raise AssertionError(f"served {response.status_code} to {caller.uri}")


def negotiated_alpn(port: int, caller: Workload) -> str | None:
    ctx = caller.client_context()
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with connect(port) as raw, ctx.wrap_socket(raw) as tls:
        return tls.selected_alpn_protocol()


@dataclass
class Pair:
    a: ProxyProcess
    b: ProxyProcess
    a_side: Sidecar
    b_side: Sidecar

    def get(self, path: str = "/") -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.a_side.listener}{path}", timeout=5)


@pytest.fixture
def mesh(tmp_path: Path) -> Mesh:
    return Mesh(tmp_path / "mesh")


@pytest.fixture
def frontend(mesh: Mesh) -> Workload:
    return mesh.workload("frontend")


@pytest.fixture
def backend(mesh: Mesh) -> Workload:
    return mesh.workload("backend")


@pytest.fixture
def intruder(mesh: Mesh) -> Workload:
    """Same CA, same trust domain: only its SPIFFE ID is wrong."""
    return mesh.workload("intruder")


def start_pair(
    start_proxy: StartProxy,
    caller: Workload,
    backend: Workload,
    echo: EchoServer,
    *,
    a_binary: str = FASTMESH,
    b_binary: str = FASTMESH,
    peer: str | None,
) -> Pair:
    require_binary(a_binary)
    require_binary(b_binary)
    a_side, b_side = Sidecar(), Sidecar()
    b = start_proxy(inbound_config(b_side, backend, echo.port, peer=peer), binary=b_binary)
    a = start_proxy(outbound_config(a_side, caller, b_side.listener, backend.uri), binary=a_binary)
    return Pair(a, b, a_side, b_side)


@pytest.mark.parametrize(
    ("a_binary", "b_binary"),
    [
        pytest.param(FASTMESH, FASTMESH, id="fastmesh-fastmesh"),
        pytest.param(ENVOY, ENVOY, marks=pytest.mark.envoy, id="envoy-envoy"),
        pytest.param(FASTMESH, ENVOY, marks=pytest.mark.envoy, id="fastmesh-envoy"),
        pytest.param(ENVOY, FASTMESH, marks=pytest.mark.envoy, id="envoy-fastmesh"),
    ],
)
def test_traffic_flows_and_the_app_sees_the_callers_identity(
    start_proxy: StartProxy,
    frontend: Workload,
    backend: Workload,
    echo: EchoServer,
    a_binary: str,
    b_binary: str,
) -> None:
    pair = start_pair(
        start_proxy,
        frontend,
        backend,
        echo,
        a_binary=a_binary,
        b_binary=b_binary,
        peer=frontend.uri,
    )
    for _ in range(3):
        assert pair.get("/hello").status_code == 200
    seen = echo.requests[-1]
    assert seen.path == "/hello"
    xfcc = seen.header("x-forwarded-client-cert")
    assert xfcc is not None
    fields = dict(part.split("=", 1) for part in xfcc.split(";"))
    assert fields["By"] == backend.uri
    assert fields["URI"] == frontend.uri
    assert len(fields["Hash"]) == 64  # hex SHA-256 of A's certificate
    # One pooled mTLS connection carried every request, and B offers HTTP/2 over ALPN.
    assert stat(pair.b, listener_stat(pair.b_side.listener, "handshake")) == 1
    assert negotiated_alpn(pair.b_side.listener, frontend) == "h2"


@pytest.mark.parametrize("b_binary", BOTH)
def test_a_caller_with_the_wrong_spiffe_id_is_refused_at_the_handshake(
    start_proxy: StartProxy,
    intruder: Workload,
    frontend: Workload,
    backend: Workload,
    echo: EchoServer,
    b_binary: str,
) -> None:
    # The intruder's sidecar pins the right server; the server pins the frontend only.
    pair = start_pair(start_proxy, intruder, backend, echo, b_binary=b_binary, peer=frontend.uri)
    assert pair.get().status_code == 503
    assert_refused(pair.b_side.listener, intruder)
    assert echo.requests == []
    assert stat(pair.b, listener_stat(pair.b_side.listener, "fail_verify_san")) >= 2
    assert mtls_get(pair.b_side.listener, frontend).status_code == 200


@pytest.mark.parametrize("a_binary", BOTH)
def test_a_server_with_the_wrong_spiffe_id_is_refused_by_the_caller(
    start_proxy: StartProxy,
    frontend: Workload,
    intruder: Workload,
    echo: EchoServer,
    a_binary: str,
) -> None:
    """The intruder serves B's port with a valid SVID of the mesh; A pins the backend."""
    require_binary(a_binary)
    a_side, b_side = Sidecar(), Sidecar()
    start_proxy(inbound_config(b_side, intruder, echo.port))
    backend_uri = spiffe("backend").uri
    a = start_proxy(
        outbound_config(a_side, frontend, b_side.listener, backend_uri), binary=a_binary
    )
    response = httpx.get(f"http://127.0.0.1:{a_side.listener}/", timeout=5)
    assert response.status_code == 503
    assert echo.requests == []
    assert stat(a, "cluster.inbound_b.ssl.fail_verify_san") >= 1


@pytest.mark.parametrize("b_binary", BOTH)
def test_an_expired_certificate_is_refused(
    start_proxy: StartProxy,
    frontend: Workload,
    backend: Workload,
    echo: EchoServer,
    b_binary: str,
) -> None:
    require_binary(b_binary)
    side = Sidecar()
    b = start_proxy(inbound_config(side, backend, echo.port, peer=frontend.uri), binary=b_binary)
    cert = frontend.renew(ttl=dt.timedelta(seconds=1))
    # Verifiers compare whole seconds: wait until the expiry is a full second behind.
    expired_at = cert.not_valid_after_utc + dt.timedelta(seconds=1)
    eventually(lambda: dt.datetime.now(dt.UTC) > expired_at, timeout=5)
    assert_refused(side.listener, frontend)
    assert echo.requests == []
    assert stat(b, listener_stat(side.listener, "fail_verify_error")) == 1


@pytest.mark.parametrize("b_binary", BOTH)
def test_plaintext_to_a_strict_listener_gets_no_http_answer(
    start_proxy: StartProxy, frontend: Workload, backend: Workload, echo: EchoServer, b_binary: str
) -> None:
    require_binary(b_binary)
    side = Sidecar()
    start_proxy(inbound_config(side, backend, echo.port, peer=frontend.uri), binary=b_binary)
    with connect(side.listener) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nhost: b\r\n\r\n")
        answer = read_until_close(sock)
    assert not answer.startswith(b"HTTP/")
    assert echo.requests == []


@pytest.mark.parametrize("b_binary", BOTH)
def test_permissive_mode_serves_mtls_and_plaintext_on_one_port(
    start_proxy: StartProxy, frontend: Workload, backend: Workload, echo: EchoServer, b_binary: str
) -> None:
    require_binary(b_binary)
    side = Sidecar()
    config = inbound_config(side, backend, echo.port, peer=frontend.uri, mode="permissive")
    start_proxy(config, binary=b_binary)

    assert mtls_get(side.listener, frontend, "/tls").status_code == 200
    assert httpx.get(f"http://127.0.0.1:{side.listener}/plain", timeout=5).status_code == 200

    by_path = {r.path: r.header("x-forwarded-client-cert") for r in echo.requests}
    assert f"URI={frontend.uri}" in (by_path["/tls"] or "")
    assert by_path["/plain"] is None  # no client certificate: SANITIZE_SET only removes


@pytest.mark.parametrize("b_binary", BOTH)
@pytest.mark.parametrize("action", ["ALLOW", "DENY"])
def test_rbac_on_the_verified_identity(
    start_proxy: StartProxy,
    frontend: Workload,
    intruder: Workload,
    backend: Workload,
    echo: EchoServer,
    b_binary: str,
    action: str,
) -> None:
    """Both callers pass the handshake (no SAN pin); RBAC alone tells them apart: ALLOW
    lists the frontend, DENY lists the intruder."""
    require_binary(b_binary)
    side = Sidecar()
    listed = frontend if action == "ALLOW" else intruder
    rules = principal_policy(action, listed.uri)
    b = start_proxy(inbound_config(side, backend, echo.port, rbac=rules), binary=b_binary)

    assert mtls_get(side.listener, frontend).status_code == 200
    denied = mtls_get(side.listener, intruder)
    assert (denied.status_code, denied.text) == (403, "RBAC: access denied")
    assert len(echo.requests) == 1
    assert stat(b, "http.inbound.rbac.allowed") == 1
    assert stat(b, "http.inbound.rbac.denied") == 1


@pytest.mark.parametrize("b_binary", BOTH)
def test_network_rbac_closes_the_connection_of_an_unlisted_identity(
    start_proxy: StartProxy,
    frontend: Workload,
    intruder: Workload,
    backend: Workload,
    echo: EchoServer,
    b_binary: str,
) -> None:
    require_binary(b_binary)
    side = Sidecar()
    rules = principal_policy("ALLOW", frontend.uri)
    b = start_proxy(inbound_config(side, backend, echo.port, network_rbac=rules), binary=b_binary)

    assert mtls_get(side.listener, frontend).status_code == 200
    with pytest.raises(httpx.TransportError):
        mtls_get(side.listener, intruder)
    assert len(echo.requests) == 1
    assert stat(b, "inbound_tcp.rbac.allowed") == 1
    assert stat(b, "inbound_tcp.rbac.denied") == 1


class Stream:
    """Requests in a loop until stopped: through sidecar A (its pooled mTLS connection)
    and straight to B on a fresh mTLS connection each (a new handshake each time)."""

    def __init__(self, pair: Pair, caller: Workload) -> None:
        self.pair = pair
        self.caller = caller
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _send(self, direct: bool) -> httpx.Response:
        return mtls_get(self.pair.b_side.listener, self.caller) if direct else self.pair.get()

    def _run(self) -> None:
        while not self._stop.is_set():
            for direct in (False, True):
                try:
                    status = self._send(direct).status_code
                except (httpx.HTTPError, ssl.SSLError) as exc:
                    self.failures.append(repr(exc))
                    continue
                if status == 200:
                    self.ok += 1
                else:
                    self.failures.append(f"status {status}")

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_rotated_certificates_are_picked_up_without_a_failed_request(
    start_proxy: StartProxy,
    frontend: Workload,
    backend: Workload,
    echo: EchoServer,
) -> None:
    """fastmesh only: Envoy reloads certificates from SDS, not from a file a static
    `tls_certificates` names."""
    pair = start_pair(start_proxy, frontend, backend, echo, peer=frontend.uri)
    old = served_serial(pair.b_side.listener, frontend)
    with Stream(pair, frontend) as stream:
        eventually(lambda: stream.ok >= 20)
        new = int(backend.renew().serial_number)
        frontend.renew()
        eventually(lambda: served_serial(pair.b_side.listener, frontend) == new)
        before = stream.ok
        eventually(lambda: stream.ok >= before + 20)
    assert new != old
    assert stream.failures == []
