"""Turns bench/results/latest.json into the README table (Markdown) and a PNG chart."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROXIES = ("fastmesh", "envoy", "haproxy")
NOISY_OTHER_UTIL = 0.25  # CPUs used by other tenants during a run that make it suspect
COLORS = {"fastmesh": "#1b9e77", "envoy": "#7570b3", "haproxy": "#d95f02", "direct": "#999999"}


@dataclass(frozen=True)
class Row:
    """One table row: which median to show, how, and the target for fastmesh/envoy."""

    label: str
    scenario: str
    metric: str
    higher_is_better: bool
    fmt: Callable[[dict[str, float]], str]
    target_ratio: float | None = None  # fastmesh/envoy must be >= (or <=) this
    target_abs: float | None = None  # fastmesh value must be <= this (MB)


def _num(key: str, digits: int = 0) -> Callable[[dict[str, float]], str]:
    def f(m: dict[str, float]) -> str:
        v = m.get(key)
        return "—" if v is None else f"{v:,.{digits}f}"

    return f


def _lat(m: dict[str, float]) -> str:
    if "p99_ms" not in m:
        return "—"
    return f"{m.get('p50_ms', 0):.2f} / {m.get('p90_ms', 0):.2f} / {m['p99_ms']:.2f}"


def _mb(m: dict[str, float]) -> str:
    if "rps" not in m:
        return "—"
    return f"{m['rps']:,.0f} ({m.get('mbps', 0):,.0f} MiB/s)"


ROWS = (
    Row("HTTP/1.1 keep-alive, req/s (wrk, 32 conns)", "http1", "rps", True, _num("rps"), 2.5),
    Row(
        "HTTP/2 h2c, req/s (h2load 32 conns x 10 streams; upstream HTTP/1.1)",
        "http2",
        "rps",
        True,
        _num("rps"),
        2.0,
    ),
    Row(
        "1,000 req/s fixed: latency p50 / p90 / p99 ms (fortio, 16 conns)",
        "latency",
        "p99_ms",
        False,
        _lat,
        0.5,
    ),
    Row(
        "1,000 req/s fixed: proxy CPU µs per request",
        "latency",
        "cpu_us_per_req",
        False,
        _num("cpu_us_per_req", 1),
        0.4,
    ),
    Row(
        "HTTP/1.1 with retries, breakers, outlier detection, health checks (never "
        "triggered), req/s (wrk, 32 conns)",
        "http1_resilient",
        "rps",
        True,
        _num("rps"),
    ),
    Row(
        "Mesh hop: sidecar A -> mTLS HTTP/2 -> sidecar B -> nginx, req/s (wrk, 32 conns)",
        "mesh_hop",
        "rps",
        True,
        _num("rps"),
    ),
    Row(
        "Mesh hop at 1,000 req/s fixed: latency p50 / p90 / p99 ms (fortio, 16 conns)",
        "mesh_latency",
        "p99_ms",
        False,
        _lat,
    ),
    Row(
        "Mesh hop at 1,000 req/s fixed: both sidecars' CPU µs per request",
        "mesh_latency",
        "cpu_us_per_req",
        False,
        _num("cpu_us_per_req", 1),
    ),
    Row(
        "New mTLS handshakes/s on one listener (openssl s_time -new, client SVID)",
        "tls_handshakes",
        "rps",
        True,
        _num("rps"),
    ),
    Row("TCP proxy, req/s (wrk through tcp_proxy)", "tcp", "rps", True, _num("rps")),
    Row("1 MiB body, req/s (MiB/s) (wrk, 32 conns)", "body_1mb", "rps", True, _mb),
    Row(
        "Peak RSS idle, MB (VmHWM)",
        "rss",
        "idle_hwm_mb",
        False,
        _num("idle_hwm_mb", 1),
        target_abs=20,
    ),
    Row("Peak RSS after the load above, MB", "rss", "load_hwm_mb", False, _num("load_hwm_mb", 1)),
    Row(
        "Peak RSS with N clusters + N virtual hosts, MB",
        "scale",
        "hwm_mb",
        False,
        _num("hwm_mb", 1),
        target_abs=80,
    ),
)


LOAD_BOUND = 0.9  # the load side's one CPU this busy: the proxy was not the limit


def _load_bound(meta: dict[str, Any], workers: str, m: dict[str, float]) -> bool:
    """True when the load generator + nginx filled the one CPU they were pinned to, so the
    proxy may be faster than this number shows (only meaningful for throughput rows)."""
    pin = meta.get("pinning_cpus", {}).get(workers, {})
    load = pin.get("load")
    if not load or "," in load or "-" in load or "rps" not in m or m.get("rps", 0) < 2000:
        return False
    return m.get("nginx_util", 0.0) + m.get("loadgen_util", 0.0) >= LOAD_BOUND


def _cell(summary: dict[str, Any], row: Row, workers: str, proxy: str) -> dict[str, float]:
    return dict(summary.get(row.scenario, {}).get(workers, {}).get(proxy, {}))


def _target(row: Row, ratio: float | None, fm: dict[str, float], scale_n: int) -> str:
    if row.target_ratio is not None:
        sign = ">=" if row.higher_is_better else "<="
        if ratio is None:
            return f"{sign} {row.target_ratio:g}x: n/a"
        hit = ratio >= row.target_ratio if row.higher_is_better else ratio <= row.target_ratio
        return f"{sign} {row.target_ratio:g}x: {'hit' if hit else 'MISS'}"
    if row.target_abs is not None:
        if row.scenario == "scale" and scale_n != 10_000:
            return f"<= {row.target_abs:g} MB at 10,000: n/a"
        v = fm.get(row.metric)
        if v is None:
            return f"<= {row.target_abs:g} MB: n/a"
        return f"<= {row.target_abs:g} MB: {'hit' if v <= row.target_abs else 'MISS'}"
    return ""


def markdown(doc: dict[str, Any]) -> str:
    summary: dict[str, Any] = doc["summary"]
    meta: dict[str, Any] = doc["meta"]
    workers = [str(w) for w in meta["plan"]["workers"]]
    n = meta["plan"]["scale_n"]
    lines = [
        "| scenario | workers | fastmesh | envoy | haproxy | fastmesh / envoy | target "
        "| nginx direct |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for row in ROWS:
        for w in workers:
            cells = {p: _cell(summary, row, w, p) for p in PROXIES}
            fm, ev = cells["fastmesh"].get(row.metric), cells["envoy"].get(row.metric)
            ratio = fm / ev if fm is not None and ev else None
            direct = _cell(summary, row, w, "direct")
            label = row.label.replace("N clusters", f"{n:,} clusters").replace(
                "N virtual", f"{n:,} virtual"
            )
            lines.append(
                f"| {label} | {w} | "
                + " | ".join(
                    row.fmt(cells[p]) + (" †" if _load_bound(meta, w, cells[p]) else "")
                    for p in PROXIES
                )
                + f" | {'—' if ratio is None else f'{ratio:.2f}x'}"
                + f" | {_target(row, ratio, cells['fastmesh'], n)}"
                + f" | {row.fmt(direct) if direct and row.metric in ('rps', 'p99_ms') else ''} |"
            )
    v = meta["versions"]
    pins = "; ".join(f"{w} worker(s): {d}" for w, d in meta["pinning"].items())
    rounds = meta["plan"]["rounds"]
    lines += [
        "",
        f"Medians of {rounds} alternating round(s) ({meta['mode']} mode, {meta['date']}, "
        f"{meta['cpus']} CPUs: {v['cpu']}). {pins}. Same Envoy YAML for `envoy` and "
        "`fastmesh-proxy` (`--concurrency N`), HAProxy `nbthread N`; one nginx worker "
        "upstream, HTTP/1.1 keep-alive to it. CPU per request is utime+stime of the whole "
        "proxy process (fastmesh: Python included) from /proc over the fortio run. "
        "`nginx direct` is the load side alone (the ceiling any proxy row can reach). "
        f"† = the load generator + nginx kept their CPU >= {LOAD_BOUND:.0%} busy: the load "
        "side, not the proxy, was the limit, so the proxy may be faster than shown.",
        "",
        f"Envoy {_envoy_version(v['envoy'])}, "
        f"{v['haproxy'].split(' - ')[0]}, nginx {v['nginx'].split('/')[-1]}, "
        f"{v['wrk'].split(' Copyright')[0]}, {v['h2load']}, fortio {v['fortio']}.",
    ]
    runs = [r for r in doc.get("runs", []) if "other_util" in r.get("metrics", {})]
    noisy = [r for r in runs if r["metrics"]["other_util"] > NOISY_OTHER_UTIL]
    if runs:
        worst = max(r["metrics"]["other_util"] for r in runs)
        lines += [
            "",
            f"Foreign load: {len(noisy)} of {len(runs)} measured runs saw more than "
            f"{NOISY_OTHER_UTIL:g} CPU used by processes outside the benchmark (worst "
            f"{worst:.2f} CPU); see `other_util` in latest.json. Medians damp, not remove, it.",
        ]
    if doc.get("failures"):
        lines += ["", "Failures:"] + [f"- {f.splitlines()[0]}" for f in doc["failures"]]
    return "\n".join(lines) + "\n"


def _envoy_version(text: str) -> str:
    m = re.search(r"version: \S*?/(\d+\.\d+\.\d+)/", text)
    return m.group(1) if m else text


def write_markdown(doc: dict[str, Any], path: Path) -> None:
    path.write_text(markdown(doc))


def write_chart(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    summary: dict[str, Any] = doc["summary"]
    workers = [str(w) for w in doc["meta"]["plan"]["workers"]]

    def val(scenario: str, w: str, proxy: str, metric: str) -> float:
        return float(summary.get(scenario, {}).get(w, {}).get(proxy, {}).get(metric, 0.0))

    panels: list[tuple[str, list[tuple[str, str, str]], str, bool]] = [
        (
            "Throughput, req/s (higher is better)",
            [
                (f"{lbl}\n{w}w", sc, w)
                for sc, lbl in (
                    ("http1", "HTTP/1.1"),
                    ("http2", "HTTP/2"),
                    ("tcp", "TCP"),
                    ("mesh_hop", "mesh hop"),
                )
                for w in workers
            ],
            "rps",
            False,
        ),
        (
            "1 MiB body, MiB/s (higher is better)",
            [(f"{w} worker(s)", "body_1mb", w) for w in workers],
            "mbps",
            False,
        ),
        (
            "p99 latency at 1,000 req/s, ms (lower is better)",
            [(f"{w} worker(s)", "latency", w) for w in workers],
            "p99_ms",
            False,
        ),
        (
            "Proxy CPU per request at 1,000 req/s, µs (lower is better)",
            [(f"{w} worker(s)", "latency", w) for w in workers],
            "cpu_us_per_req",
            False,
        ),
        (
            "Peak RSS, MB (log; lower is better)",
            [(f"idle {w}w", "rss", w) for w in workers[:1]]
            + [(f"after load {w}w", "rss", w) for w in workers[:1]]
            + [
                (f"{int(doc['meta']['plan']['scale_n']):,} clusters {w}w", "scale", w)
                for w in workers
            ],
            "",
            True,
        ),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(18, 10))
    flat = list(axes.flat)
    width = 0.26
    for ax, (title, groups, metric, logy) in zip(flat, panels, strict=False):
        for i, proxy in enumerate(PROXIES):
            ys = []
            for _, sc, w in groups:
                m = metric
                if not m:  # the RSS panel mixes metrics by group
                    m = "hwm_mb" if sc == "scale" else "idle_hwm_mb"
                ys.append(val(sc, w, proxy, m))
            if not metric:
                ys = [
                    val(sc, w, proxy, "load_hwm_mb") if lbl.startswith("after") else y
                    for (lbl, sc, w), y in zip(groups, ys, strict=True)
                ]
            xs = [g + (i - 1) * width for g in range(len(groups))]
            bars = ax.bar(xs, ys, width, label=proxy, color=COLORS[proxy])
            for b, y in zip(bars, ys, strict=True):
                if y:
                    txt = f"{y / 1000:.1f}k" if y >= 1000 else f"{y:.3g}"
                    ax.annotate(
                        txt,
                        (b.get_x() + b.get_width() / 2, y),
                        ha="center",
                        va="bottom",
                        fontsize=6.5,
                        xytext=(0, 1),
                        textcoords="offset points",
                    )
        if metric in ("rps", "mbps"):  # the load side alone: the most any proxy can reach
            for g, (_, sc, w) in enumerate(groups):
                ceiling = val(sc, w, "direct", metric)
                if ceiling:
                    ax.hlines(
                        ceiling,
                        g - 1.5 * width,
                        g + 1.5 * width,
                        colors=COLORS["direct"],
                        linestyles="dashed",
                        label="nginx direct" if g == 0 else None,
                    )
        ax.set_xticks(range(len(groups)), [g[0] for g in groups], fontsize=8)
        ax.set_title(title, fontsize=10)
        if logy:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1, 2, 5)))
            ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}"))
            ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.margins(y=0.15)
        ax.grid(axis="y", alpha=0.3)
    flat[0].legend(fontsize=9)
    # last panel: fastmesh / envoy ratios against the targets
    ax = flat[5]
    ratio_rows = [
        ("H1 req/s", "http1", "rps", 2.5, True),
        ("H2 req/s", "http2", "rps", 2.0, True),
        ("p99", "latency", "p99_ms", 0.5, False),
        ("CPU/req", "latency", "cpu_us_per_req", 0.4, False),
    ]
    labels, ratios, targets, hits = [], [], [], []
    for lbl, sc, m, tgt, higher in ratio_rows:
        for w in workers:
            fm, ev = val(sc, w, "fastmesh", m), val(sc, w, "envoy", m)
            r = fm / ev if fm and ev else 0.0
            labels.append(f"{lbl}\n{w}w")
            ratios.append(r)
            targets.append(tgt)
            hits.append(r > 0 and (r >= tgt if higher else r <= tgt))
    xs = list(range(len(labels)))
    ax.bar(xs, ratios, 0.6, color=["#1b9e77" if h else "#e7298a" for h in hits])
    ax.scatter(xs, targets, marker="_", s=400, color="black", zorder=3, label="target")
    ax.axhline(1.0, color=COLORS["envoy"], lw=1, ls="--", label="envoy = 1")
    for x, r in zip(xs, ratios, strict=True):
        if r:
            ax.annotate(
                f"{r:.2f}x",
                (x, r),
                ha="center",
                va="bottom",
                fontsize=7,
                xytext=(0, 1),
                textcoords="offset points",
            )
    ax.set_xticks(xs, labels, fontsize=7)
    ax.set_title("fastmesh / envoy vs target (green = hit; p99, CPU at 1,000 req/s)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    meta = doc["meta"]
    fig.suptitle(
        f"fastmesh vs Envoy vs HAProxy, nginx upstream, loopback, {meta['cpus']} CPUs — "
        f"medians of {meta['plan']['rounds']} round(s), {meta['mode']} mode, {meta['date']}",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
