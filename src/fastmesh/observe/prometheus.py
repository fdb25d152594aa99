"""Envoy's `/stats/prometheus` text format, as a pure function.

Metric names and labels follow Envoy's default tag extraction, so dashboards and alerts
written for Envoy (and Istio sidecars) work unchanged. The metric prefix is `envoy_` on
purpose: `cluster.catalog.upstream_rq_200` becomes
`envoy_cluster_upstream_rq{envoy_response_code="200",envoy_cluster_name="catalog"}`.

Extracted (a subset of Envoy's `TagNames`):

| stat pattern                          | label                              |
| ------------------------------------- | ---------------------------------- |
| `cluster.<name>.`                     | `envoy_cluster_name`               |
| `http.<stat_prefix>.`                 | `envoy_http_conn_manager_prefix`   |
| `listener.<ip>_<port>.` (or `<name>.`)| `envoy_listener_address`           |
| `listener.<address>.worker_<N>.`      | `envoy_worker_id`                  |
| `tcp.<stat_prefix>.`                  | `envoy_tcp_prefix`                 |
| `..._rq_<3 digits>`                   | `envoy_response_code`              |
| `..._rq_<digit>xx`                    | `envoy_response_code_class`        |
| `listener.<address>.ssl.ciphers.<c>`  | `envoy_ssl_cipher`                 |
| `cluster.<name>.ssl.ciphers.<c>`      | `cipher_suite` (Envoy's own name)  |
| `....ssl.curves.<c>`                  | `envoy_ssl_curve`                  |
| `....ssl.sigalgs.<s>`                 | `envoy_ssl_sigalg`                 |
| `....ssl.versions.<v>`                | `envoy_ssl_version`                |
| `....ssl.certificate.<name>.expiration_unix_time_seconds` | `envoy_tls_certificate` |
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from fastmesh.observe.admin_text import is_gauge

__all__ = ["extract_tags", "format_prometheus", "prometheus_name"]

# Envoy's listener address: an IPv4 `1.2.3.4_80` or bracketed IPv6 `[::1]_80`.
_LISTENER = re.compile(r"^listener\.((?:[_.\d]+|[_\[\]a-fA-F\d:]+))\.(.+)$")
_PREFIXED = (
    ("cluster", "envoy_cluster_name"),
    ("http", "envoy_http_conn_manager_prefix"),
    ("listener", "envoy_listener_address"),
    ("tcp", "envoy_tcp_prefix"),
)
# A listener's per-worker stats: `listener.<address>.worker_<N>.<stat>`.
_WORKER = re.compile(r"^worker_(\d+)\.(.+)$")
_CODE = re.compile(r"_rq_(\d{3})$")
_CODE_CLASS = re.compile(r"_rq_(\d)xx$")
_INVALID = re.compile(r"[^a-zA-Z0-9_]")
# A TLS context's per-parameter counters; the value may contain dots (`TLSv1.3`).
_SSL_PARAM = re.compile(r"^(listener|cluster)\..+?\.ssl\.(ciphers|curves|sigalgs|versions)\.(.+)$")
_SSL_LABELS = {
    ("listener", "ciphers"): "envoy_ssl_cipher",
    ("cluster", "ciphers"): "cipher_suite",
    ("listener", "curves"): "envoy_ssl_curve",
    ("cluster", "curves"): "envoy_ssl_curve",
    ("listener", "sigalgs"): "envoy_ssl_sigalg",
    ("cluster", "sigalgs"): "envoy_ssl_sigalg",
    ("listener", "versions"): "envoy_ssl_version",
    ("cluster", "versions"): "envoy_ssl_version",
}
# A TLS context's certificate expiry gauge; a certificate (secret) name may contain dots.
_SSL_CERT = re.compile(
    r"^(?:listener|cluster)\..+?\.ssl\.certificate\.(.+)\.expiration_unix_time_seconds$"
)


def extract_tags(stat: str) -> tuple[str, list[tuple[str, str]]]:
    """Split an Envoy stat name into its tag-extracted name and `(label, value)` pairs."""
    tags: list[tuple[str, str]] = []
    name = stat
    if (m := _CODE.search(name)) is not None:
        tags.append(("envoy_response_code", m.group(1)))
        name = name[: m.start()] + "_rq"
    elif (m := _CODE_CLASS.search(name)) is not None:
        tags.append(("envoy_response_code_class", m.group(1)))
        name = name[: m.start()] + "_rq_xx"
    elif (m := _SSL_PARAM.match(name)) is not None:
        tags.append((_SSL_LABELS[m.group(1), m.group(2)], m.group(3)))
        name = name[: m.start(3) - 1]
    elif (m := _SSL_CERT.match(name)) is not None:
        tags.append(("envoy_tls_certificate", m.group(1)))
        name = name[: m.start(1)] + "expiration_unix_time_seconds"
    head, _, rest = name.partition(".")
    for prefix, label in _PREFIXED:
        if head != prefix or not rest:
            continue
        lm = _LISTENER.match(name) if prefix == "listener" else None
        if lm is not None:
            value, tail = lm.group(1), lm.group(2)
        else:
            value, sep, tail = rest.partition(".")
            if not sep:
                break
        if prefix == "listener" and (wm := _WORKER.match(tail)) is not None:
            tags.append(("envoy_worker_id", wm.group(1)))
            tail = f"worker_{wm.group(2)}"
        tags.append((label, value))
        name = f"{prefix}.{tail}"
        break
    return name, tags


def prometheus_name(stat: str) -> str:
    """The Prometheus metric name Envoy gives `stat` (tags removed, `envoy_` prefix)."""
    return "envoy_" + _INVALID.sub("_", extract_tags(stat)[0])


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_prometheus(
    stats: Mapping[str, int],
    *,
    gauge: Callable[[str], bool] = is_gauge,
    used_only: bool = False,
) -> str:
    """Render `stats` as Envoy does at `/stats/prometheus`: counters first, then gauges; each
    metric once as `# TYPE <name> counter|gauge` followed by its samples."""
    families: dict[tuple[bool, str], list[tuple[str, int]]] = {}
    for stat, value in stats.items():
        if used_only and not value:
            continue
        name, tags = extract_tags(stat)
        metric = "envoy_" + _INVALID.sub("_", name)
        labels = ",".join(f'{k}="{_escape(v)}"' for k, v in tags)
        families.setdefault((gauge(stat), metric), []).append((labels, value))
    out: list[str] = []
    for (is_g, metric), samples in sorted(families.items()):
        out.append(f"# TYPE {metric} {'gauge' if is_g else 'counter'}")
        out.extend(f"{metric}{{{labels}}} {value}" for labels, value in sorted(samples))
    return "".join(line + "\n" for line in out)
