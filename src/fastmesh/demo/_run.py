"""The demo: start services and fastmesh-proxy, show traffic and stats, explain, wait."""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import trio

from fastmesh.demo._config import DemoPorts, render
from fastmesh.demo._http import Response, http_request, serve_http
from fastmesh.demo._services import catalog, reviews, serve_ledger

__all__ = ["main"]

_KEY_STATS = (
    "cluster.catalog_v1.upstream_rq_total",
    "cluster.catalog_v2.upstream_rq_total",
    "cluster.reviews.upstream_rq_total",
    "cluster.ledger.upstream_cx_total",
    "http.ingress_http.downstream_rq_total",
    "http.ingress_http.downstream_rq_2xx",
    "tcp.ledger.downstream_cx_total",
    "server.live",
)


def _say(text: str = "") -> None:
    print(text, flush=True)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick(preferred: int, fixed: bool) -> int:
    if fixed and _port_free(preferred):
        return preferred
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Checks:
    """Outcomes of the tour; in --smoke mode any failure makes the exit status 1."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def expect(self, ok: bool, what: str) -> None:
        if not ok:
            self.failures.append(what)
            _say(f"  !! FAILED: {what}")


async def _wait_ready(admin: int, proxy: trio.Process, log: Path, timeout: float = 30) -> None:
    deadline = trio.current_time() + timeout
    while True:
        if proxy.returncode is not None:
            raise RuntimeError(
                f"fastmesh-proxy exited with status {proxy.returncode}; its log ({log}):\n"
                + (log.read_text() if log.exists() else "")
            )
        with contextlib.suppress(OSError, trio.TooSlowError, ValueError):
            if (await http_request(admin, "/ready", timeout=1)).status == 200:
                return
        if trio.current_time() > deadline:
            raise RuntimeError(f"fastmesh-proxy not ready after {timeout}s; see {log}")
        await trio.sleep(0.05)


async def _tcp_roundtrip(port: int, line: bytes) -> bytes:
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(line)
            data = b""
            while not data.endswith(b"\n"):
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                data += chunk
            return data


def _summary(resp: Response) -> str:
    try:
        doc = resp.json()
    except ValueError:
        return resp.text.strip()
    if doc.get("service") == "catalog":
        names = [
            p["name"] + ("" if p.get("in_stock", True) else " (sold out)") for p in doc["products"]
        ]
        return f"catalog {doc['version']}: {', '.join(names)}"
    return str(doc)


async def _tour(ports: DemoPorts, checks: Checks) -> None:
    http = ports.http
    _say(f"\n== traffic through fastmesh-proxy (HTTP on :{http}, TCP on :{ports.tcp})")
    for path, headers, expect in (
        ("/catalog", {}, "v1"),
        ("/catalog", {}, "v1"),
        ("/catalog", {"x-version": "v2"}, "v2"),
        ("/reviews/1", {}, None),
        ("/healthz", {}, None),
    ):
        shown = " ".join(f"-H '{k}: {v}'" for k, v in headers.items())
        resp = await http_request(http, path, headers=headers)
        curl = f"curl {shown + ' ' if shown else ''}localhost:{http}{path}"
        _say(f"  {curl}  ->  {resp.status}  {_summary(resp)}")
        checks.expect(resp.status == 200, f"GET {path} answered {resp.status}")
        if expect is not None:
            checks.expect(
                f"catalog {expect}" in _summary(resp), f"{path} {headers} reached {expect}"
            )
        if path == "/reviews/1":
            served_by = resp.headers.get("x-served-by")
            _say(f"      response header added by the proxy: x-served-by: {served_by}")
            checks.expect(served_by == "fastmesh-demo", "x-served-by header added on /reviews")
        if path == "/healthz":
            checks.expect(resp.text == "ok\n", "/healthz answered by the proxy itself")
    reply = await _tcp_roundtrip(ports.tcp, b"hello mesh\n")
    _say(f"  tcp :{ports.tcp} 'hello mesh'  ->  {reply.decode().strip()!r}")
    checks.expect(reply == b"ledger: HELLO MESH\n", "TCP proxy round trip")

    _say(f"\n== key stats (curl -s localhost:{ports.admin}/stats)")
    stats_text = (await http_request(ports.admin, "/stats")).text
    stats = dict(line.split(": ", 1) for line in stats_text.splitlines() if ": " in line)
    for name in _KEY_STATS:
        if name in stats:
            _say(f"  {name}: {stats[name]}")
    checks.expect(stats.get("cluster.catalog_v1.upstream_rq_total") == "2", "catalog_v1 counted 2")
    prom = (await http_request(ports.admin, "/stats/prometheus")).text
    checks.expect(
        'envoy_cluster_upstream_rq_total{envoy_cluster_name="catalog_v1"} 2' in prom,
        "Prometheus exposition of catalog_v1",
    )
    clusters = (await http_request(ports.admin, "/clusters")).text
    checks.expect(
        f"catalog_v1::127.0.0.1:{ports.catalog_v1}::" in clusters, "/clusters lists hosts"
    )


async def _check_reload(ports: DemoPorts, config: Path, checks: Checks) -> None:
    _say("\n== live reload: editing the /healthz body in the YAML")
    config.write_text(
        config.read_text().replace('inline_string: "ok\\n"', 'inline_string: "reloaded\\n"')
    )
    deadline = time.monotonic() + 15
    body = ""
    while time.monotonic() < deadline:
        body = (await http_request(ports.http, "/healthz")).text
        if body == "reloaded\n":
            break
        await trio.sleep(0.1)
    _say(f"  curl localhost:{ports.http}/healthz  ->  {body.strip()!r}")
    checks.expect(body == "reloaded\n", "live reload applied the edited route")


def _walkthrough(ports: DemoPorts, config: Path, log: Path) -> str:
    h, a, t = ports.http, ports.admin, ports.tcp
    return f"""
== fastmesh demo is running. Try these in another terminal:

  Route by path and by header (Envoy routes, compiled Rust data path):
    curl -s localhost:{h}/catalog
    curl -s -H 'x-version: v2' localhost:{h}/catalog
    curl -si localhost:{h}/reviews/1          # note x-served-by, added by the proxy
    curl -s localhost:{h}/healthz             # answered by the proxy (direct_response)
    printf 'hello\\n' | curl -s --max-time 1 telnet://localhost:{t}   # TCP proxy to ledger

  Envoy's admin API (drop-in for dashboards and probes):
    curl -s localhost:{a}/ready
    curl -s localhost:{a}/stats/prometheus | grep envoy_cluster_upstream_rq
    curl -s localhost:{a}/clusters
    curl -s localhost:{a}/config_dump | head -40

  Live reload: edit {config}
    e.g. change the /healthz body "ok\\n" to "hi\\n", save, then:
    curl -s localhost:{h}/healthz
    curl -s localhost:{a}/stats | grep config_reload
    (break the YAML on purpose: the error names the field; the old config keeps serving)

  Proxy log: tail -f {log}
  Run the same file under real Envoy: envoy -c {config}   (if installed; stop the demo first)

Ctrl-C stops everything.
"""


async def run(smoke: bool, workdir: Path | None, concurrency: int) -> int:
    work = workdir or Path(tempfile.mkdtemp(prefix="fastmesh-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    config, log = work / "envoy.yaml", work / "proxy.log"
    checks = Checks()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            upstream = {
                "catalog_v1": await nursery.start(partial(serve_http, catalog("v1"))),
                "catalog_v2": await nursery.start(partial(serve_http, catalog("v2"))),
                "reviews": await nursery.start(partial(serve_http, reviews)),
                "ledger": await nursery.start(serve_ledger),
            }
            fixed = not smoke
            ports = DemoPorts(
                http=_pick(10000, fixed),
                tcp=_pick(10001, fixed),
                admin=_pick(9901, fixed),
                **upstream,
            )
            config.write_text(render(ports))
            _say(
                f"fastmesh demo: services catalog v1 (:{ports.catalog_v1}), catalog v2 "
                f"(:{ports.catalog_v2}), reviews (:{ports.reviews}), ledger/tcp (:{ports.ledger})"
            )
            _say(f"starting fastmesh-proxy -c {config}")
            cmd = [
                sys.executable,
                "-m",
                "fastmesh.proxy",
                "-c",
                str(config),
                "-l",
                "info",
                "--concurrency",
                str(concurrency),
                "--log-path",
                str(log),
                "--drain-time-s",
                "5",
            ]
            proxy = await trio.lowlevel.open_process(cmd, process_group=0)
            try:
                await _wait_ready(ports.admin, proxy, log)
                _say(f"fastmesh-proxy ready (pid {proxy.pid}), admin on :{ports.admin}")
                await _tour(ports, checks)
                if smoke:
                    await _check_reload(ports, config, checks)
                else:
                    _say(_walkthrough(ports, config, log))
                    async for _ in signals:
                        break
                    _say("\nstopping: fastmesh-proxy drains, then the services stop")
            except RuntimeError as exc:
                checks.failures.append(str(exc))
                _say(str(exc))
            finally:
                with trio.CancelScope(shield=True):
                    if proxy.returncode is None:
                        proxy.send_signal(signal.SIGTERM)
                        with trio.move_on_after(10):
                            await proxy.wait()
                        if proxy.returncode is None:
                            proxy.kill()
                            await proxy.wait()
                nursery.cancel_scope.cancel()
    if proxy.returncode not in (0, None):
        checks.failures.append(f"fastmesh-proxy exited with status {proxy.returncode}")
    if smoke:
        if checks.failures:
            _say(f"\nsmoke: FAILED ({len(checks.failures)}): " + "; ".join(checks.failures))
            _say(f"proxy log: {log}")
            return 1
        _say("\nsmoke: OK")
    else:
        _say("stopped.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fastmesh demo", description="fastmesh-proxy in front of small demo services."
    )
    parser.add_argument("--smoke", action="store_true", help="check everything, exit 0/1 (CI)")
    parser.add_argument("--workdir", type=Path, help="where to write envoy.yaml and proxy.log")
    parser.add_argument("--concurrency", type=int, default=1, help="proxy worker threads")
    ns = parser.parse_args(argv)
    return trio.run(run, ns.smoke, ns.workdir, ns.concurrency)
