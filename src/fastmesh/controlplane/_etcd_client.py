"""A small etcd 3 client over its HTTP/JSON gateway (`/v3/...`): unary calls on httpx (trio
via anyio), the streaming watch on h11 over a trio stream (no async generators to leak).

Only what the registry needs: range, put, delete, leases (grant, keep-alive, revoke) and a
streaming watch. Keys and values travel base64-encoded; revisions and lease ids are int64s
that the gateway spells as JSON strings. Requests go to one endpoint of the cluster and move
to the next when it cannot be reached, so a dead member costs one retry, not an outage.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import h11
import httpx
import trio

__all__ = [
    "EtcdClient",
    "EtcdError",
    "EtcdUnavailable",
    "KeyValue",
    "WatchCompacted",
    "WatchEvent",
    "WatchStream",
    "prefix_end",
]

log = logging.getLogger("fastmesh.controlplane.etcd")

Json = dict[str, Any]

#: gRPC metadata `hasleader=true` (via the gateway): a member cut off from the leader refuses
#: the call instead of serving stale data or a watch that never fires.
_HEADERS = {"Grpc-Metadata-hasleader": "true"}


class EtcdError(Exception):
    """etcd answered with an error (such as `requested lease not found`)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class EtcdUnavailable(EtcdError):
    """No endpoint of the cluster answered."""


class WatchCompacted(EtcdError):
    """The watch's start revision was compacted away: read everything again."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"revision compacted (now {compact_revision})")
        self.compact_revision = compact_revision


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    mod_revision: int
    lease: int = 0


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """A PUT (`value` set) or DELETE (`deleted`) of `key` at `revision`."""

    key: str
    value: bytes
    revision: int
    deleted: bool


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def _unb64(text: str | None) -> bytes:
    return base64.b64decode(text or "")


def prefix_end(prefix: str) -> bytes:
    """The `range_end` that makes a range or watch cover every key starting with `prefix`."""
    raw = bytearray(prefix.encode())
    while raw:
        if raw[-1] < 0xFF:
            raw[-1] += 1
            return bytes(raw)
        raw.pop()
    return b"\0"


def _kv(raw: Json) -> KeyValue:
    return KeyValue(
        _unb64(raw.get("key")).decode(),
        _unb64(raw.get("value")),
        int(raw.get("mod_revision", 0)),
        int(raw.get("lease", 0)),
    )


def _check(body: Json) -> Json:
    if "error" in body:
        raise EtcdError(str(body.get("message") or body["error"]), int(body.get("code", 0)))
    return body


class EtcdClient:
    """`endpoints` like `http://127.0.0.1:2379`; use as `async with EtcdClient(...) as c`."""

    def __init__(
        self, endpoints: Sequence[str], *, timeout: float = 3.0, retry_for: float = 5.0
    ) -> None:
        if not endpoints:
            raise ValueError("no etcd endpoints")
        self.endpoints = [e if "://" in e else f"http://{e}" for e in endpoints]
        self.timeout = timeout
        #: How long `call` keeps trying while no member can serve (a leader election
        #: after a member dies takes about one election timeout, ~1 s by default).
        self.retry_for = retry_for
        self._current = 0
        self._http = httpx.AsyncClient(timeout=timeout, headers=_HEADERS)

    async def __aenter__(self) -> EtcdClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def endpoint(self) -> str:
        """The endpoint requests go to first."""
        return self.endpoints[self._current]

    def rotate(self) -> None:
        """Send the next requests to the next endpoint."""
        self._current = (self._current + 1) % len(self.endpoints)

    async def call(self, path: str, body: Json) -> Json:
        """POST `body` to `/v3/<path>`; the decoded answer.

        Tries each endpoint in turn; when none can serve (unreachable, or "no leader"
        during an election) goes round again with capped back-off until `retry_for`
        seconds have passed, then raises `EtcdUnavailable` with the last round's errors.
        """
        deadline = trio.current_time() + self.retry_for
        backoff = 0.05
        while True:
            errors: list[str] = []
            for _ in self.endpoints:
                url = f"{self.endpoint}/v3/{path}"
                try:
                    response = await self._http.post(url, json=body)
                    answer = response.json()
                except (httpx.TransportError, ValueError) as exc:
                    errors.append(f"{self.endpoint}: {exc or type(exc).__name__}")
                    self.rotate()
                    continue
                if response.status_code >= 500 or answer.get("code") == 14:  # 14: UNAVAILABLE
                    errors.append(f"{self.endpoint}: {answer.get('message', response.status_code)}")
                    self.rotate()
                    continue
                return _check(answer)
            if trio.current_time() + backoff > deadline:
                raise EtcdUnavailable("etcd unreachable: " + "; ".join(errors))
            await trio.sleep(backoff)
            backoff = min(backoff * 2, 0.5)

    async def range_prefix(self, prefix: str) -> tuple[int, list[KeyValue]]:
        """Every key under `prefix`, and the store revision they were read at."""
        answer = await self.call(
            "kv/range", {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))}
        )
        revision = int(answer["header"]["revision"])
        return revision, [_kv(raw) for raw in answer.get("kvs", [])]

    async def put(self, key: str, value: str | bytes, *, lease: int = 0) -> int:
        """Write `key`; the revision of the write."""
        body: Json = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        answer = await self.call("kv/put", body)
        return int(answer["header"]["revision"])

    async def delete(self, key: str, *, prefix: bool = False) -> int:
        """Delete `key` (every key under it with `prefix`); how many were deleted."""
        body: Json = {"key": _b64(key)}
        if prefix:
            body["range_end"] = _b64(prefix_end(key))
        answer = await self.call("kv/deleterange", body)
        return int(answer.get("deleted", 0))

    async def grant(self, ttl: int) -> int:
        """A new lease of `ttl` seconds; its id."""
        answer = await self.call("lease/grant", {"TTL": str(ttl)})
        return int(answer["ID"])

    async def keepalive(self, lease: int) -> int:
        """Renew `lease` once; its new TTL, 0 when it no longer exists (it expired)."""
        answer = await self.call("lease/keepalive", {"ID": str(lease)})
        return int(answer.get("result", {}).get("TTL", 0))

    async def revoke(self, lease: int) -> None:
        """End `lease` now: every key written with it is deleted."""
        try:
            await self.call("lease/revoke", {"ID": str(lease)})
        except EtcdError as exc:
            if "not found" not in str(exc):
                raise

    async def health(self, endpoint: str) -> bool:
        """Whether `endpoint` says it is healthy (it has a leader)."""
        try:
            response = await self._http.get(f"{endpoint}/health")
            return bool(response.json().get("health") == "true")
        except (httpx.TransportError, ValueError):
            return False

    @asynccontextmanager
    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[WatchStream]:
        """A watch of every change under `prefix` from `start_revision` on, on the current
        endpoint: `await stream.next_events()` for each batch.

        Raises `EtcdUnavailable` when the endpoint cannot be reached or the stream breaks
        (`rotate` to try the next one; resume from the last event's revision + 1) and
        `WatchCompacted` when `start_revision` is gone.
        """
        body = {
            "create_request": {
                "key": _b64(prefix),
                "range_end": _b64(prefix_end(prefix)),
                "start_revision": str(start_revision),
            }
        }
        url = httpx.URL(self.endpoint)
        host, port = url.host, url.port or 2379
        try:
            with trio.fail_after(self.timeout):
                stream = await trio.open_tcp_stream(host, port)
        except (OSError, trio.TooSlowError) as exc:
            raise EtcdUnavailable(f"{self.endpoint}: {exc or type(exc).__name__}") from exc
        async with stream:
            watch = WatchStream(self.endpoint, stream)
            try:
                with trio.fail_after(self.timeout):
                    await watch.start(host, port, json.dumps(body).encode())
            except trio.TooSlowError as exc:
                raise EtcdUnavailable(f"{self.endpoint}: watch: no answer") from exc
            yield watch


class WatchStream:
    """One `/v3/watch` call, streamed over HTTP/1.1 (h11 on a trio stream): the gateway sends
    one JSON message per line in a chunked response."""

    def __init__(self, endpoint: str, stream: trio.abc.Stream) -> None:
        self.endpoint = endpoint
        self._stream = stream
        self._h11 = h11.Connection(h11.CLIENT)
        self._buffer = b""

    async def start(self, host: str, port: int, body: bytes) -> None:
        """Send the request; read the response head."""
        headers = [
            ("Host", f"{host}:{port}"),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            *_HEADERS.items(),
        ]
        try:
            await self._stream.send_all(
                self._h11.send(h11.Request(method="POST", target="/v3/watch", headers=headers))
                + (self._h11.send(h11.Data(data=body)) or b"")
                + (self._h11.send(h11.EndOfMessage()) or b"")
            )
            event = await self._next_event()
        except (OSError, trio.BrokenResourceError, h11.ProtocolError) as exc:
            raise EtcdUnavailable(f"{self.endpoint}: watch: {exc}") from exc
        if not isinstance(event, h11.Response) or event.status_code != 200:
            raise EtcdUnavailable(f"{self.endpoint}: watch: unexpected answer {event!r}")

    async def _next_event(self) -> object:
        while True:
            event = self._h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            self._h11.receive_data(bytes(await self._stream.receive_some(65536)))

    async def next_events(self) -> list[WatchEvent]:
        """The next non-empty batch of changes."""
        while True:
            while b"\n" not in self._buffer:
                try:
                    event = await self._next_event()
                except (OSError, trio.BrokenResourceError, h11.ProtocolError) as exc:
                    raise EtcdUnavailable(f"{self.endpoint}: watch: {exc}") from exc
                if isinstance(event, h11.Data):
                    self._buffer += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    raise EtcdUnavailable(f"{self.endpoint}: watch stream ended")
            line, _, self._buffer = self._buffer.partition(b"\n")
            if line.strip():
                try:
                    message = json.loads(line)
                except ValueError as exc:
                    raise EtcdUnavailable(f"{self.endpoint}: watch: bad JSON: {exc}") from exc
                events = _watch_events(_check(message))
                if events:
                    return events


def _watch_events(message: Json) -> list[WatchEvent]:
    result: Json = message.get("result", {})
    compacted = int(result.get("compact_revision", 0))
    if compacted:
        raise WatchCompacted(compacted)
    if result.get("canceled"):
        raise EtcdError(f"watch canceled: {result.get('cancel_reason', '')}")
    events = []
    for raw in result.get("events", []):
        kv = _kv(raw.get("kv", {}))
        deleted = raw.get("type") == "DELETE"
        events.append(WatchEvent(kv.key, kv.value, kv.mod_revision, deleted))
    return events
