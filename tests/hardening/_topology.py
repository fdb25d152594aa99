"""The topology every hardening test uses: one HTTP listener (HTTP/1.1 or h2c by preface)
in front of one upstream, optionally a tcp_proxy listener too, and the proxy's RSS."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import (
    ProxyProcess,
    bootstrap,
    cluster,
    free_port,
    http_listener,
    prefix,
    require_binary,
    route,
    run_proxy,
    tcp_listener,
    virtual_host,
)

from ._upstreams import RecordingUpstream

Json = dict[str, Any]


@dataclass(frozen=True)
class Ports:
    http: int
    admin: int
    tcp: int

    @classmethod
    def fresh(cls) -> Ports:
        return cls(free_port(), free_port(), free_port())


def hcm_of(listener: Json) -> Json:
    """The http_connection_manager config inside a listener built by `http_listener`."""
    typed: Json = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return typed


def front_config(
    ports: Ports,
    upstream_port: int,
    *,
    tcp_upstream_port: int | None = None,
    request_headers_timeout_s: float | None = None,
    max_concurrent_streams: int | None = None,
    keepalive_s: tuple[float, float] | None = None,
    idle_timeout_s: float | None = None,
    codec_type: str = "AUTO",
) -> Json:
    """`/` forwarded to cluster `up`; vhost `internal.example` answers 403 directly, so a
    request routed by one host and forwarded with another shows up. `keepalive_s`: HTTP/2
    `connection_keepalive` (interval, timeout), without jitter. `idle_timeout_s`: the
    connection idle timeout (`common_http_protocol_options.idle_timeout`)."""
    vhosts = [
        virtual_host(
            "internal", ["internal.example"], [route(prefix("/"), direct=(403, "internal\n"))]
        ),
        virtual_host("all", ["*"], [route(prefix("/"), cluster="up")]),
    ]
    listener = http_listener(
        "ingress", ports.http, vhosts, stat_prefix="ingress", codec_type=codec_type
    )
    hcm = hcm_of(listener)
    if request_headers_timeout_s is not None:
        hcm["request_headers_timeout"] = f"{request_headers_timeout_s}s"
    if idle_timeout_s is not None:
        hcm["common_http_protocol_options"] = {"idle_timeout": f"{idle_timeout_s}s"}
    h2: Json = {}
    if max_concurrent_streams is not None:
        h2["max_concurrent_streams"] = max_concurrent_streams
    if keepalive_s is not None:
        interval, timeout = keepalive_s
        h2["connection_keepalive"] = {
            "interval": f"{interval}s",
            "timeout": f"{timeout}s",
            "interval_jitter": {"value": 0},
        }
    if h2:
        hcm["http2_protocol_options"] = h2
    listeners = [listener]
    clusters = [cluster("up", [("127.0.0.1", upstream_port)])]
    if tcp_upstream_port is not None:
        listeners.append(tcp_listener("tcp", ports.tcp, "tcp_up"))
        clusters.append(cluster("tcp_up", [("127.0.0.1", tcp_upstream_port)]))
    return bootstrap(admin_port=ports.admin, listeners=listeners, clusters=clusters)


@dataclass
class Front:
    """A proxy running `front_config` in front of a recording upstream."""

    binary: str
    proxy: ProxyProcess
    ports: Ports
    upstream: RecordingUpstream


@contextmanager
def running_front(binary: str, **config: Any) -> Iterator[Front]:
    """`binary` serving `front_config(..., **config)` in front of a fresh recording upstream."""
    require_binary(binary)
    with RecordingUpstream() as up:
        ports = Ports.fresh()
        with run_proxy(front_config(ports, up.port, **config), binary=binary) as proxy:
            yield Front(binary, proxy, ports, up)


def rss_kib(pid: int) -> int:
    """Resident set size of `pid`, KiB (VmRSS from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")
