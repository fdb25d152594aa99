"""The benchmark topology as files: one Envoy bootstrap shared by Envoy and fastmesh,
the equivalent haproxy.cfg, and the nginx upstream.

    load generator ──> proxy :http (HTTP/1.1 or h2c)  ──HTTP/1.1──> nginx
                       proxy :tcp  (tcp_proxy)        ──TCP───────> nginx
                       proxy :admin (/ready)

The same Envoy YAML file is passed to ``envoy -c`` and ``fastmesh-proxy -c``: that is the
drop-in claim under test. The 10k-cluster file adds 10,000 clusters and 10,000 virtual hosts.
"""

from __future__ import annotations

import importlib.util
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.resilience import add_resilience

SMALL_BODY = "hello from nginx\n"
ONE_MB = 1024 * 1024


@dataclass(frozen=True)
class Ports:
    """Loopback ports, allocated once per bench run (proxies run one at a time)."""

    nginx: int
    http: int
    tcp: int
    admin: int

    @staticmethod
    def allocate() -> Ports:
        socks: list[socket.socket] = []
        try:
            for _ in range(4):
                s = socket.socket()
                s.bind(("127.0.0.1", 0))
                socks.append(s)
            nginx, http, tcp, admin = (s.getsockname()[1] for s in socks)
        finally:
            for s in socks:
                s.close()
        return Ports(nginx=nginx, http=http, tcp=tcp, admin=admin)


def nginx_conf(workdir: Path, port: int) -> Path:
    """One nginx worker: ``/`` returns a 17-byte body, ``/1mb`` a 1 MiB file (sendfile).

    Upstream keep-alive is effectively unlimited so no proxy pays for reconnects that
    another does not.
    """
    root = workdir / "www"
    root.mkdir(parents=True, exist_ok=True)
    (root / "1mb").write_bytes(b"x" * ONE_MB)
    for d in (workdir, root):
        d.chmod(0o755)  # nginx workers drop to `nobody` when started as root
    (root / "1mb").chmod(0o644)
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""\
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/tmp_body;
    proxy_temp_path {workdir}/tmp_proxy;
    fastcgi_temp_path {workdir}/tmp_fastcgi;
    uwsgi_temp_path {workdir}/tmp_uwsgi;
    scgi_temp_path {workdir}/tmp_scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        server_name _;
        location = / {{
            default_type text/plain;
            return 200 "{SMALL_BODY.strip()}\\n";
        }}
        location = /1mb {{
            root {root};
            default_type application/octet-stream;
        }}
    }}
}}
"""
    )
    return conf


_HCM = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
    ".HttpConnectionManager"
)
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_TCP = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


def _admin(port: int) -> str:
    return f"""\
admin:
  address:
    socket_address: {{ address: 127.0.0.1, port_value: {port} }}
"""


def _cluster(name: str, port: int) -> str:
    return f"""\
  - name: {name}
    type: STATIC
    connect_timeout: 1s
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: 127.0.0.1, port_value: {port} }}
"""


def _http_listener(port: int, virtual_hosts: str) -> str:
    return f"""\
  - name: http
    address:
      socket_address: {{ address: 127.0.0.1, port_value: {port} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {_HCM}
          stat_prefix: ingress_http
          codec_type: AUTO
          route_config:
            name: local
            virtual_hosts:
{virtual_hosts}          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": {_ROUTER}
"""


def _vhost(name: str, domain: str, cluster: str) -> str:
    return f"""\
            - name: {name}
              domains: ["{domain}"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: {cluster} }}
"""


def envoy_bootstrap(workdir: Path, ports: Ports) -> Path:
    """HTTP listener (codec AUTO: HTTP/1.1 and h2c prior knowledge) and a tcp_proxy
    listener, both to one STATIC cluster `nginx` spoken to over HTTP/1.1 (the default)."""
    text = (
        _admin(ports.admin)
        + "static_resources:\n  listeners:\n"
        + _http_listener(ports.http, _vhost("backend", "*", "nginx"))
        + f"""\
  - name: tcp
    address:
      socket_address: {{ address: 127.0.0.1, port_value: {ports.tcp} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": {_TCP}
          stat_prefix: tcp
          cluster: nginx
"""
        + "  clusters:\n"
        + _cluster("nginx", ports.nginx)
    )
    path = workdir / "envoy.yaml"
    path.write_text(text)
    return path


def envoy_bootstrap_resilient(workdir: Path, ports: Ports) -> Path:
    """`envoy_bootstrap` plus retries on the route and circuit breakers, outlier detection
    and an HTTP health check (nginx's `/`) on the cluster: bench/resilience.py."""
    plain = yaml.safe_load(envoy_bootstrap(workdir, ports).read_text())
    path = workdir / "envoy-resilient.yaml"
    path.write_text(yaml.safe_dump(add_resilience(plain, health_path="/"), sort_keys=False))
    return path


def _generator() -> Any:
    """src/fastmesh/config/_generate.py, the translator's synthetic-bootstrap generator,
    loaded by path: it needs only PyYAML, so the Envoy and HAProxy rows work even before
    the fastmesh package (and its native engine) is installed."""
    path = Path(__file__).resolve().parent.parent / "src/fastmesh/config/_generate.py"
    spec = importlib.util.spec_from_file_location("fastmesh_bench_generate", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


SCALE_PROBE_PATH = "/healthz"  # every generated virtual host answers it with a direct 200


def scale_host(i: int) -> str:
    """The Host of generated virtual host ``i`` (see _generate.py)."""
    return f"svc{i}.mesh.local"


def envoy_bootstrap_10k(workdir: Path, ports: Ports, n: int) -> Path:
    """``n`` clusters (2 STATIC endpoints each, a quarter HTTP/2) and ``n`` virtual hosts of
    3 routes each (header match + prefix rewrite, direct response, default), from the
    translator's generator so the translator benchmark and this RSS row load the same shape.
    """
    path = workdir / f"envoy-{n}.yaml"
    _generator().write_bootstrap(path, n, n, port=ports.http, admin_port=ports.admin)
    return path


def _haproxy_global(workers: int) -> str:
    return f"""\
global
    nbthread {workers}
    maxconn 8000

defaults
    mode http
    timeout connect 1s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
    option http-keep-alive
    # Any idle upstream connection may carry any request, as Envoy's per-worker pools do.
    http-reuse always

frontend admin
    bind 127.0.0.1:{{admin}}
    http-request return status 200 content-type text/plain string "LIVE" if {{ path /ready }}
    http-request return status 404
"""


def haproxy_cfg(workdir: Path, ports: Ports, workers: int) -> Path:
    """The same topology for HAProxy: `nbthread N` stands for `--concurrency N`.

    A clear-text HTTP frontend without `proto` accepts HTTP/1.1 and detects the h2c
    prior-knowledge preface, like Envoy's codec AUTO."""
    text = (
        _haproxy_global(workers).replace("{admin}", str(ports.admin))
        + f"""
frontend http
    bind 127.0.0.1:{ports.http}
    default_backend nginx

frontend tcp
    mode tcp
    bind 127.0.0.1:{ports.tcp}
    default_backend nginx_tcp

backend nginx
    server s1 127.0.0.1:{ports.nginx}

backend nginx_tcp
    mode tcp
    server s1 127.0.0.1:{ports.nginx}
"""
    )
    path = workdir / f"haproxy-{workers}.cfg"
    path.write_text(text)
    return path


def haproxy_cfg_10k(workdir: Path, ports: Ports, workers: int, n: int) -> Path:
    """The nearest HAProxy shape of envoy_bootstrap_10k: ``n`` backends of the same 2
    servers, chosen by Host through a map (HAProxy's virtual-host lookup), `/healthz`
    answered directly. Per-route header rules and rewrites are not mirrored."""
    hosts = workdir / f"hosts-{n}.map"
    hosts.write_text(
        "".join(
            f"{scale_host(i)} service_{i}\n{scale_host(i)}:8080 service_{i}\n" for i in range(n)
        )
    )
    backends = []
    for i in range(n):
        balance = "roundrobin" if i % 2 else "leastconn"
        servers = "".join(
            f"    server e{e} 10.{(i >> 8) & 255}.{i & 255}.{e + 1}:{8080 + e} weight {1 + e}\n"
            for e in range(2)
        )
        backends.append(f"\nbackend service_{i}\n    balance {balance}\n{servers}")
    text = (
        _haproxy_global(workers).replace("{admin}", str(ports.admin))
        + f"""
frontend http
    bind 127.0.0.1:{ports.http}
    http-request return status 200 content-type text/plain string ok if {{ path /healthz }}
    use_backend %[req.hdr(host),lower,map({hosts})]
"""
        + "".join(backends)
    )
    path = workdir / f"haproxy-{workers}-{n}.cfg"
    path.write_text(text)
    return path
