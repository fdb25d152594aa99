"""The demo's Envoy bootstrap: plain Envoy v3 YAML (it runs under real Envoy too)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DemoPorts", "render"]


@dataclass(frozen=True)
class DemoPorts:
    http: int
    tcp: int
    admin: int
    catalog_v1: int
    catalog_v2: int
    reviews: int
    ledger: int


_HCM = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
    ".HttpConnectionManager"
)
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_TCP = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"

TEMPLATE = """\
# fastmesh demo: an Envoy bootstrap that fastmesh-proxy runs (and so would `envoy -c`).
# Edit this file while the demo runs: fastmesh-proxy re-reads it within a second and
# applies it live; a broken edit is rejected (see the log) and the old config keeps serving.
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}

static_resources:
  listeners:
  - name: http
    address: {{socket_address: {{address: 127.0.0.1, port_value: {http}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {hcm}
          stat_prefix: ingress_http
          route_config:
            name: demo
            virtual_hosts:
            - name: shop
              domains: ["*"]
              routes:
              # Answered by the proxy itself.
              - match: {{prefix: /healthz}}
                direct_response: {{status: 200, body: {{inline_string: "ok\\n"}}}}
              # Route by header: `x-version: v2` reaches catalog v2.
              - match:
                  prefix: /catalog
                  headers:
                  - name: x-version
                    string_match: {{exact: v2}}
                route: {{cluster: catalog_v2}}
              # Route by path.
              - match: {{prefix: /catalog}}
                route: {{cluster: catalog_v1}}
              - match: {{prefix: /reviews}}
                route: {{cluster: reviews}}
                response_headers_to_add:
                - header: {{key: x-served-by, value: fastmesh-demo}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": {router}}}
  # A TCP proxy: raw bytes to the ledger service.
  - name: tcp
    address: {{socket_address: {{address: 127.0.0.1, port_value: {tcp}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": {tcp_type}
          stat_prefix: ledger
          cluster: ledger

  clusters:
{clusters}
"""

_CLUSTER = """\
  - name: {name}
    type: STATIC
    connect_timeout: 1s
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}
"""


def render(ports: DemoPorts) -> str:
    """The demo bootstrap YAML for these ports."""
    clusters = "".join(
        _CLUSTER.format(name=name, port=port)
        for name, port in (
            ("catalog_v1", ports.catalog_v1),
            ("catalog_v2", ports.catalog_v2),
            ("reviews", ports.reviews),
            ("ledger", ports.ledger),
        )
    )
    return TEMPLATE.format(
        admin=ports.admin,
        http=ports.http,
        tcp=ports.tcp,
        hcm=_HCM,
        router=_ROUTER,
        tcp_type=_TCP,
        clusters=clusters.rstrip("\n"),
    )
