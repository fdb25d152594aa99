"""Run one Envoy bootstrap file under a proxy and record what a table of requests gets back.

`Rig.prepare(path)` reads a config as written for production ports and rewires it for
the test box: the admin and every listener get a free port on their own address, and
every cluster endpoint is served by an upstream we start (its port rewritten):

- clusters used by HTTP listeners get our echo server (HTTP/1.1 + h2c), named after the
  cluster, so a response says which cluster served it, whatever endpoint the LB picked;
- clusters used only by `tcp_proxy` get a TCP echo server that answers `bye\\n` after EOF;
- an endpoint with a port below 1024 stays dead: a free port nobody listens on (for 503s).

The rewired config is the same for both proxies, so both see the same ports and hosts.
"""

from __future__ import annotations

import copy
import json
import socket
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support import EchoServer, ProxyProcess, TcpEchoServer, free_port, read_until_close

Json = dict[str, Any]

HCM = "envoy.filters.network.http_connection_manager"
TCP = "envoy.filters.network.tcp_proxy"

#: Response headers whose values differ run to run: compared by presence only.
VOLATILE_RESPONSE_HEADERS = frozenset({"date", "x-envoy-upstream-service-time", "x-request-id"})
#: Request headers (as the upstream saw them) whose values differ run to run.
VOLATILE_UPSTREAM_HEADERS = frozenset({"x-request-id"})


@dataclass(frozen=True)
class Case:
    """One HTTP request sent to both proxies. `expect` is checked against Envoy too, so a
    broken rig (everything 503) cannot pass as "both agree"."""

    listener: str
    path: str
    expect: int
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = (("host", "localhost"),)
    body: bytes = b""
    http2: bool = False

    @property
    def id(self) -> str:
        host = dict(self.headers).get("host", "")
        extra = "".join(f" {k}={v[:20]}" for k, v in self.headers if k != "host")
        body = f" body={len(self.body)}B" if self.body else ""
        proto = " h2" if self.http2 else ""
        return f"{self.method} {host}{self.path}{extra}{body}{proto} @{self.listener}"


@dataclass(frozen=True)
class TcpCase:
    """Bytes written to a TCP listener, then a half-close; the answer is read until EOF.
    Envoy's answer must equal `expect` (or start with it when `exact` is false)."""

    listener: str
    payload: bytes
    expect: bytes
    exact: bool = True

    @property
    def id(self) -> str:
        return f"tcp {self.payload[:24]!r} @{self.listener}"


AnyCase = Case | TcpCase


@dataclass
class Outcome:
    """What one case got back, normalized for comparison."""

    status: int | None
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: Any = None
    raw_server: str | None = None

    def summary(self) -> Json:
        return {"status": self.status, "headers": self.headers, "body": self.body}


@dataclass
class Rig:
    """A rewired config plus the upstreams it points at. Use as a context manager."""

    source: Path
    config: Json
    listeners: dict[str, tuple[str, int, str]]  # name -> (host, port, HCM or TCP)
    server_names: dict[str, str | None]  # HTTP listener name -> configured server_name
    stack: ExitStack
    #: binary -> case id -> outcome, filled by the tests (Envoy's run is reused).
    results: dict[str, dict[str, Outcome]] = field(default_factory=dict)

    @classmethod
    def prepare(cls, source: Path) -> Rig:
        config = yaml.safe_load(source.read_text())
        stack = ExitStack()
        try:
            return cls._prepare(source, config, stack)
        except BaseException:
            stack.close()
            raise

    @classmethod
    def _prepare(cls, source: Path, config: Json, stack: ExitStack) -> Rig:
        admin = config.setdefault("admin", {}).setdefault("address", {})
        admin["socket_address"] = {"address": "127.0.0.1", "port_value": free_port()}
        static = config.get("static_resources", {})
        listeners: dict[str, tuple[str, int, str]] = {}
        server_names: dict[str, str | None] = {}
        http_clusters: set[str] = set()
        tcp_clusters: set[str] = set()
        for listener in static.get("listeners", []):
            sa = listener["address"]["socket_address"]
            host = str(sa.get("address", "127.0.0.1"))
            bind = "::1" if ":" in host else "127.0.0.1"
            sa["port_value"] = free_port(bind)
            kind = ""
            for chain in listener.get("filter_chains", []):
                for filt in chain.get("filters", []):
                    typed = filt.get("typed_config", {})
                    if filt.get("name") == HCM or "HttpConnectionManager" in typed.get("@type", ""):
                        kind = HCM
                        server_names[listener["name"]] = typed.get("server_name")
                        http_clusters |= _route_clusters(typed.get("route_config", {}))
                    elif filt.get("name") == TCP or "TcpProxy" in typed.get("@type", ""):
                        kind = TCP
                        tcp_clusters.add(typed["cluster"])
            connect_host = "::1" if ":" in host else "127.0.0.1"
            listeners[listener["name"]] = (connect_host, int(sa["port_value"]), kind)

        servers: dict[tuple[str, int], int] = {}
        for clus in static.get("clusters", []):
            name = clus["name"]
            for locality in clus.get("load_assignment", {}).get("endpoints", []):
                for lb in locality.get("lb_endpoints", []):
                    sa = lb["endpoint"]["address"]["socket_address"]
                    original = (str(sa.get("address")), int(sa.get("port_value", 0)))
                    if original not in servers:
                        servers[original] = cls._upstream(
                            stack,
                            name,
                            original[1],
                            name in tcp_clusters and name not in http_clusters,
                        )
                    sa["port_value"] = servers[original]
                    if sa.get("address") not in ("127.0.0.1", "localhost"):
                        sa["address"] = "127.0.0.1"
        return cls(source, config, listeners, server_names, stack)

    @staticmethod
    def _upstream(stack: ExitStack, cluster_name: str, port: int, tcp_only: bool) -> int:
        if port < 1024:
            return free_port()  # nobody will listen there: a dead endpoint
        if tcp_only:
            return stack.enter_context(TcpEchoServer(on_eof=b"bye\n")).port
        return stack.enter_context(EchoServer(cluster_name)).port

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    def run(self, proxy: ProxyProcess, cases: list[AnyCase]) -> dict[str, Outcome]:
        """Send every case to the running `proxy`; outcomes by case id."""
        results = {case.id: self.send(case) for case in cases}
        assert len(results) == len(cases), "two cases share an id: make them differ"
        return results

    def send(self, case: AnyCase) -> Outcome:
        host, port, _ = self.listeners[case.listener]
        if isinstance(case, TcpCase):
            with socket.create_connection((host, port), timeout=10) as sock:
                try:
                    sock.sendall(case.payload)
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass  # the proxy may already have closed (dead upstream): read what came
                return Outcome(status=None, body=read_until_close(sock))
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        with httpx.Client(http1=not case.http2, http2=case.http2, timeout=10) as client:
            resp = client.request(
                case.method,
                f"http://{netloc}{case.path}",
                headers=list(case.headers),
                content=case.body or None,
            )
        return normalize(resp)


def listener_kinds(config: Json) -> dict[str, str]:
    """Listener name -> HCM or TCP (its network filter), for a bootstrap dict."""
    kinds = {}
    for listener in config.get("static_resources", {}).get("listeners", []):
        for chain in listener.get("filter_chains", []):
            for filt in chain.get("filters", []):
                typed = filt.get("typed_config", {}).get("@type", "")
                if filt.get("name") == HCM or "HttpConnectionManager" in typed:
                    kinds[listener["name"]] = HCM
                elif filt.get("name") == TCP or "TcpProxy" in typed:
                    kinds[listener["name"]] = TCP
    return kinds


def _route_clusters(route_config: Json) -> set[str]:
    out: set[str] = set()
    for vhost in route_config.get("virtual_hosts", []):
        for r in vhost.get("routes", []):
            cluster = r.get("route", {}).get("cluster")
            if cluster:
                out.add(cluster)
    return out


def normalize(resp: httpx.Response) -> Outcome:
    headers: dict[str, list[str]] = {}
    raw_server = None
    for key, value in resp.headers.multi_items():
        name = key.lower()
        if name == "server":
            raw_server = value
        if name in VOLATILE_RESPONSE_HEADERS:
            value = "<present>"
        headers.setdefault(name, []).append(value)
    body: Any = resp.content.decode(errors="replace")
    is_echo_json = resp.headers.get("content-type") == "application/json"
    if "x-upstream-name" in headers and is_echo_json and "content-length" in headers:
        # The echo's length follows from what the upstream saw, which is compared field by
        # field below: a length mismatch would only repeat that difference (HEAD included).
        headers["content-length"] = ["<echo body>"]
    if "x-upstream-name" in headers and is_echo_json and resp.content:
        doc = json.loads(resp.content)
        seen = doc.get("headers", {})
        for name in VOLATILE_UPSTREAM_HEADERS & seen.keys():
            seen[name] = "<present>"
        body = doc
    return Outcome(resp.status_code, headers, body, raw_server)


def diff(envoy: Outcome, fastmesh: Outcome) -> list[str]:
    """Human-readable differences, empty when they agree."""
    out = []
    if envoy.status != fastmesh.status:
        out.append(f"status: envoy {envoy.status}, fastmesh {fastmesh.status}")
    for name in sorted(envoy.headers.keys() | fastmesh.headers.keys()):
        e, f = envoy.headers.get(name), fastmesh.headers.get(name)
        if e != f:
            out.append(f"response header {name}: envoy {e}, fastmesh {f}")
    if isinstance(envoy.body, dict) and isinstance(fastmesh.body, dict):
        e_doc, f_doc = copy.deepcopy(envoy.body), copy.deepcopy(fastmesh.body)
        e_seen, f_seen = e_doc.pop("headers", {}), f_doc.pop("headers", {})
        for name in sorted(e_seen.keys() | f_seen.keys()):
            if e_seen.get(name) != f_seen.get(name):
                out.append(
                    f"upstream saw header {name}: envoy {e_seen.get(name)!r}, "
                    f"fastmesh {f_seen.get(name)!r}"
                )
        for key in sorted(e_doc.keys() | f_doc.keys()):
            if e_doc.get(key) != f_doc.get(key):
                out.append(
                    f"upstream saw {key}: envoy {e_doc.get(key)!r}, fastmesh {f_doc.get(key)!r}"
                )
    elif envoy.body != fastmesh.body:
        out.append(f"body: envoy {envoy.body!r:.300}, fastmesh {fastmesh.body!r:.300}")
    return out
