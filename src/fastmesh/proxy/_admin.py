"""The admin listener: Envoy's admin endpoints over a tiny HTTP/1.1 server on trio.

Bodies and status codes follow Envoy 1.40, so probes, scrapers and scripts written
for Envoy's admin work unchanged. Admin traffic never touches the engine's data path.
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import trio

from fastmesh.config._compile import redact_private_keys
from fastmesh.observe import (
    format_clusters_json,
    format_clusters_text,
    format_prometheus,
    format_stats_json,
    format_stats_text,
)

if TYPE_CHECKING:
    from fastmesh.proxy._server import ProxyServer

__all__ = ["ENDPOINTS", "Response", "handle", "serve_admin"]

log = logging.getLogger("fastmesh.proxy.admin")

MAX_HEAD = 64 * 1024
IDLE_TIMEOUT_S = 60.0
TEXT = "text/plain; charset=UTF-8"
JSON = "application/json"


@dataclass
class Response:
    status: int
    body: str
    content_type: str = TEXT


Query = dict[str, list[str]]
Handler = Callable[["ProxyServer", Query], Awaitable[Response]]


@dataclass(frozen=True)
class Endpoint:
    path: str
    help: str
    handler: Handler
    post_only: bool = False


def _param(query: Query, name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


async def _ready(server: ProxyServer, query: Query) -> Response:
    state = server.server_state
    return Response(200 if state.name == "LIVE" else 503, f"{state.name}\n")


async def _stats(server: ProxyServer, query: Query) -> Response:
    stats = server.stats()
    filter_re = _param(query, "filter")
    used_only = "usedonly" in query
    try:
        if _param(query, "format") == "json":
            return Response(
                200, format_stats_json(stats, filter_re=filter_re, used_only=used_only), JSON
            )
        if _param(query, "format") == "prometheus":
            return await _prometheus(server, query)
        return Response(200, format_stats_text(stats, filter_re=filter_re, used_only=used_only))
    except re.error as exc:  # a bad ?filter= regex
        return Response(400, f"Invalid regex: {exc}\n")


async def _prometheus(server: ProxyServer, query: Query) -> Response:
    body = format_prometheus(server.stats(), used_only="usedonly" in query)
    return Response(200, body, "text/plain; version=0.0.4; charset=UTF-8")


async def _clusters(server: ProxyServer, query: Query) -> Response:
    clusters = server.clusters()
    if _param(query, "format") == "json":
        return Response(200, format_clusters_json(clusters), JSON)
    return Response(200, format_clusters_text(clusters))


async def _listeners(server: ProxyServer, query: Query) -> Response:
    listening = server.listening()
    if _param(query, "format") == "json":
        rows = [
            {"name": name, "local_address": {"socket_address": _socket_address(addr)}}
            for name, addr in sorted(listening.items())
        ]
        return Response(200, json.dumps({"listener_statuses": rows}, indent=1) + "\n", JSON)
    return Response(200, "".join(f"{n}::{a}\n" for n, a in sorted(listening.items())))


def _socket_address(address: str) -> dict[str, Any]:
    host, _, port = address.rpartition(":")
    return {"address": host.strip("[]"), "port_value": int(port or 0)}


def _rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


async def _config_dump(server: ProxyServer, query: Query) -> Response:
    cfg = server.config
    if cfg is None:
        return Response(503, "no config loaded\n")
    # The bootstrap and the snapshot are spliced in as the JSON text kept for them:
    # parsing and re-encoding a 10k-cluster config would take hundreds of MB.
    bootstrap = cfg.bootstrap_json(*server.node())
    snapshot = redact_private_keys(cfg.snapshot_json())
    dump = {
        "configs": [
            {
                "@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
                "bootstrap": _BOOTSTRAP_SLOT,
                "last_updated": _rfc3339(cfg.loaded_at),
            },
            {
                "@type": "fastmesh.native.SnapshotDump",
                "source": cfg.source,
                "version": cfg.version,
                "snapshot": _SNAPSHOT_SLOT,
                "last_updated": _rfc3339(cfg.loaded_at),
                "last_reload_error": server.last_reload_error,
            },
        ]
    }
    if server.dynamic is not None:
        dump["configs"].append(
            {"@type": "fastmesh.xds.AdsDump", **server.dynamic.client.describe()}
        )
    head, _, tail = json.dumps(dump, indent=1).partition(json.dumps(_BOOTSTRAP_SLOT))
    mid, _, tail = tail.partition(json.dumps(_SNAPSHOT_SLOT))
    return Response(200, "".join([head, bootstrap, mid, snapshot, tail, "\n"]), JSON)


_BOOTSTRAP_SLOT = "\x00bootstrap"
_SNAPSHOT_SLOT = "\x00snapshot"


async def _server_info(server: ProxyServer, query: Query) -> Response:
    from fastmesh import __version__
    from fastmesh.proxy._server import describe

    node_id, node_cluster = server.node()
    uptime = f"{server.uptime_s()}s"
    info = {
        "version": f"fastmesh/{__version__}",
        "state": server.server_state.name,
        "uptime_current_epoch": uptime,
        "uptime_all_epochs": uptime,
        "hot_restart_version": "disabled",
        "command_line_options": describe(server.options),
        "node": {"id": node_id, "cluster": node_cluster},
    }
    return Response(200, json.dumps(info, indent=1) + "\n", JSON)


async def _quit(server: ProxyServer, query: Query) -> Response:
    server.request_stop("admin /quitquitquit")
    return Response(200, "OK\n")


async def _hc_fail(server: ProxyServer, query: Query) -> Response:
    server.health_check_failed = True
    return Response(200, "OK\n")


async def _hc_ok(server: ProxyServer, query: Query) -> Response:
    server.health_check_failed = False
    return Response(200, "OK\n")


async def _help(server: ProxyServer, query: Query) -> Response:
    return Response(200, _command_list("admin commands are:"))


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("/", "Admin home page (this list)", _help),
    Endpoint("/clusters", "upstream cluster status (format: text or json)", _clusters),
    Endpoint("/config_dump", "dump the bootstrap as loaded and the native snapshot", _config_dump),
    Endpoint("/healthcheck/fail", "cause the server to fail health checks", _hc_fail, True),
    Endpoint("/healthcheck/ok", "cause the server to pass health checks", _hc_ok, True),
    Endpoint("/help", "print out list of admin commands", _help),
    Endpoint("/listeners", "print listener info (format: text or json)", _listeners),
    Endpoint("/quitquitquit", "exit the server (gracefully: drain, then exit)", _quit, True),
    Endpoint("/ready", "print server state, return 200 if LIVE, otherwise return 503", _ready),
    Endpoint("/server_info", "print server version/status information", _server_info),
    Endpoint("/stats", "print server stats (format: text, json or prometheus; filter)", _stats),
    Endpoint("/stats/prometheus", "print server stats in prometheus format", _prometheus),
)
_BY_PATH = {e.path: e for e in ENDPOINTS}


def _command_list(head: str) -> str:
    lines = [head]
    for e in ENDPOINTS:
        lines.append(f"  {e.path}{' (POST)' if e.post_only else ''}: {e.help}")
    return "\n".join(lines) + "\n"


async def handle(server: ProxyServer, method: str, target: str) -> Response:
    """Answer one admin request (`method`, request-target with query)."""
    parts = urlsplit(target)
    endpoint = _BY_PATH.get(parts.path)
    if endpoint is None:
        return Response(404, _command_list("invalid path. admin commands are:"))
    if endpoint.post_only and method != "POST":
        return Response(405, f"Method {method} not allowed, POST required.")
    return await endpoint.handler(server, parse_qs(parts.query, keep_blank_values=True))


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_REASONS |= {431: "Request Header Fields Too Large", 503: "Service Unavailable"}


def _encode(resp: Response, *, keep_alive: bool, head_only: bool) -> bytes:
    body = resp.body.encode()
    headers = [
        f"HTTP/1.1 {resp.status} {_REASONS.get(resp.status, 'Unknown')}",
        f"content-type: {resp.content_type}",
        "cache-control: no-cache, max-age=0",
        "x-content-type-options: nosniff",
        f"date: {email.utils.formatdate(usegmt=True)}",
        "server: fastmesh",
        f"content-length: {len(body)}",
    ]
    if not keep_alive:
        headers.append("connection: close")
    return "\r\n".join(headers).encode() + b"\r\n\r\n" + (b"" if head_only else body)


async def _connection(server: ProxyServer, stream: trio.SocketStream) -> None:
    buffer = bytearray()
    try:
        while True:
            with trio.move_on_after(IDLE_TIMEOUT_S):
                while b"\r\n\r\n" not in buffer and len(buffer) <= MAX_HEAD:
                    chunk = await stream.receive_some(16384)
                    if not chunk:
                        return
                    buffer += chunk
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    await stream.send_all(
                        _encode(
                            Response(431, "headers too large\n"), keep_alive=False, head_only=False
                        )
                    )
                return
            head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
            del buffer[: end + 4]
            try:
                method, target, version = head[0].split(" ")
            except ValueError:
                await stream.send_all(
                    _encode(Response(400, "bad request\n"), keep_alive=False, head_only=False)
                )
                return
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            while len(buffer) < length:
                chunk = await stream.receive_some(16384)
                if not chunk:
                    return
                buffer += chunk
            del buffer[:length]
            connection = headers.get("connection", "").lower()
            keep_alive = version == "HTTP/1.1" and connection != "close"
            if version == "HTTP/1.0" and connection == "keep-alive":
                keep_alive = True
            resp = await handle(server, method, target)
            log.debug("%s %s -> %d", method, target, resp.status)
            await stream.send_all(_encode(resp, keep_alive=keep_alive, head_only=method == "HEAD"))
            if not keep_alive:
                return
    except (trio.BrokenResourceError, trio.ClosedResourceError, ValueError):
        return
    finally:
        await trio.aclose_forcefully(stream)


async def serve_admin(
    server: ProxyServer,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on `host:port` (0 = any free port); report the bound `(ip, port)` once listening."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()
    address = (str(bound[0]), int(bound[1]))
    log.info("admin address: %s:%d", *address)
    task_status.started(address)

    async def on_connection(stream: trio.SocketStream) -> None:
        await _connection(server, stream)

    await trio.serve_listeners(on_connection, listeners)
