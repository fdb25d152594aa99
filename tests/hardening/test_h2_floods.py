"""HTTP/2 floods over raw sockets: each attack connection is cut off (GOAWAY or close) or
starved of reads (backpressure) within seconds, the proxy's memory stays bounded, no attack
stream reaches the upstream, and a well-behaved client is served all along.

A flood is sent for a few seconds at most, in volumes far above the RSS bound, so a proxy
that buffered what it was sent would fail the memory check.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.support import BINARY_PARAMS

from ._h2wire import Ending, H2Wire, continuation, ping, rst, settings
from ._topology import Front, rss_kib, running_front

#: How much a flood may grow the proxy's RSS, KiB. Floods send far more than this.
RSS_GROWTH_LIMIT_KIB = 48 * 1024
#: Longest a well-behaved request may take while a flood is on.
GOOD_CLIENT_LATENCY_S = 3.0


@pytest.fixture(scope="module", params=BINARY_PARAMS)
def front(request: pytest.FixtureRequest) -> Iterator[Front]:
    with running_front(request.param, max_concurrent_streams=100) as f:
        yield f


@dataclass
class GoodClient:
    """Requests `/good` over HTTP/1.1, one after another, while a flood runs."""

    port: int
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while True:  # at least once, and once more after the flood
                started = time.monotonic()
                try:
                    r = client.get(f"http://127.0.0.1:{self.port}/good")
                    if r.status_code != 200:
                        self.failures.append(f"status {r.status_code}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                self.latencies.append(time.monotonic() - started)
                if self.stop.wait(0.05):
                    break


@dataclass(frozen=True)
class Outcome:
    """How a flood went for the attacker."""

    sent: int
    end: Ending
    #: The proxy stopped taking the flood (stopped reading, or closed) before its budget.
    starved: bool

    @property
    def cut(self) -> bool:
        """Told to go away, closed, or no longer read from."""
        return self.end.ended or self.starved

    def __str__(self) -> str:
        return f"{self.sent} frames sent, {'starved' if self.starved else 'all taken'}, {self.end}"


def attack(front: Front, frames: Callable[[H2Wire], Iterator[bytes]]) -> Outcome:
    """Run one flood with a good client alongside, and check memory and the good client."""
    before = rss_kib(front.proxy.pid)
    good = GoodClient(front.ports.http)
    worker = threading.Thread(target=good.run)
    worker.start()
    try:
        with H2Wire.connect(front.ports.http) as wire:
            budget_s = 4.0
            started = time.monotonic()
            sent = wire.flood(frames(wire), budget_s=budget_s)
            # The flood stopped early: the proxy stopped reading it, or closed.
            starved = time.monotonic() - started < budget_s
            end = wire.until_goaway_or_close(timeout=2.0)
            grown = rss_kib(front.proxy.pid) - before
    finally:
        good.stop.set()
        worker.join(timeout=15)
    assert grown < RSS_GROWTH_LIMIT_KIB, f"RSS grew {grown} KiB under the flood"
    assert good.latencies, "the good client never got an answer"
    assert not good.failures, good.failures
    assert max(good.latencies) < GOOD_CLIENT_LATENCY_S, good.latencies
    assert front.proxy.alive()
    return Outcome(sent, end, starved)


def stream_ids() -> Iterator[int]:
    return itertools.count(1, 2)


def test_rapid_reset_is_cut_off(front: Front) -> None:
    """CVE-2023-44487: HEADERS then RST_STREAM, as fast as possible. The connection is
    told to go away, and only a few of the cancelled requests reach the upstream."""
    before = len(front.upstream.requests)

    def frames(wire: H2Wire) -> Iterator[bytes]:
        for sid in itertools.islice(stream_ids(), 200_000):
            yield wire.headers(sid, "/reset") + rst(sid)

    outcome = attack(front, frames)
    assert outcome.end.ended, outcome
    forwarded = len(front.upstream.requests) - before
    assert forwarded < 1000, f"{forwarded} reset streams reached the upstream: {outcome}"


def test_continuation_flood_is_cut_off(front: Front) -> None:
    """HEADERS without END_HEADERS, then CONTINUATION frames that never end the block."""

    def frames(wire: H2Wire) -> Iterator[bytes]:
        yield wire.headers(1, "/cont", end_headers=False)
        filler = literal(b"x-flood", b"a" * 1000)
        while True:
            yield continuation(1, filler)

    outcome = attack(front, frames)
    assert outcome.end.ended, outcome
    assert not any(r.path == "/cont" for r in front.upstream.requests)


def test_hpack_bomb_is_refused(front: Front) -> None:
    """One 4 KB header goes into the HPACK dynamic table, then every request repeats it by
    index (one byte each): 16 KB blocks that decode to 64 MB of headers."""
    big = b"b" * 4000
    authority = f"127.0.0.1:{front.ports.http}".encode()
    base = b"\x82\x86\x84" + b"\x01" + hpack_int(len(authority), 7) + authority  # GET http /

    def frames(wire: H2Wire) -> Iterator[bytes]:
        insert = b"\x40" + hpack_int(6, 7) + b"x-bomb" + hpack_int(len(big), 7) + big
        yield wire.headers(1, block=base + insert)
        bomb = base + b"\xbe" * 16_000  # index 62: the first dynamic table entry
        for sid in itertools.islice(stream_ids(), 1, 5_000):
            yield wire.headers(sid, block=bomb)

    outcome = attack(front, frames)
    assert outcome.cut, outcome
    bombed = [r for r in front.upstream.requests if r.path == "/" and "x-bomb" in dict(r.headers)]
    assert len(bombed) <= 1, "a bomb's decoded headers reached the upstream"


@pytest.mark.parametrize(
    "control",
    [pytest.param(settings, id="settings"), pytest.param(ping, id="ping")],
)
def test_control_frame_flood_is_starved_or_cut_off(
    front: Front, control: Callable[[], bytes]
) -> None:
    """SETTINGS or PING frames, each owed an ACK, from a client that never reads the ACKs:
    the proxy must not queue ACKs without bound (Envoy closes at 10000 queued control
    frames; fastmesh's h2 stops reading until its ACKs are written)."""
    one = control()

    def frames(wire: H2Wire) -> Iterator[bytes]:
        while True:
            yield one

    outcome = attack(front, frames)
    assert outcome.cut, outcome


#: HTTP/2 `connection_keepalive` (interval, timeout) of `keepalive_front`, seconds.
KEEPALIVE_S = (1.0, 1.0)
#: Allowed past interval + timeout for the flood to fill the buffers and the machine's load.
KEEPALIVE_SLACK_S = 4.0
#: What counts the close: fastmesh's keepalive; Envoy closes sooner, at nghttp2's limit on
#: queued ACKs (no counter of its own), so its local-close count stands in.
CLOSED_BY = {
    "fastmesh-proxy": "http2.keepalive_timeout",
    "envoy": "http.ingress.downstream_cx_destroy_local",
}


@pytest.fixture(scope="module", params=BINARY_PARAMS)
def keepalive_front(request: pytest.FixtureRequest) -> Iterator[Front]:
    with running_front(request.param, keepalive_s=KEEPALIVE_S) as f:
        yield f


@pytest.mark.parametrize(
    "control",
    [pytest.param(settings, id="settings"), pytest.param(ping, id="ping")],
)
def test_control_frame_flood_is_closed_with_keepalive(
    keepalive_front: Front, control: Callable[[], bytes]
) -> None:
    """With `connection_keepalive`, the client that floods control frames and never reads
    is closed, not just starved: its ACKs back up, the proxy reads no more, and its PING
    goes unanswered for interval + timeout."""
    front = keepalive_front
    counter = CLOSED_BY[front.binary]
    before = front.proxy.counter(counter)
    with H2Wire.connect(front.ports.http) as wire:
        started = time.monotonic()
        wire.flood(itertools.repeat(control()), budget_s=10.0)
        deadline = started + sum(KEEPALIVE_S) + KEEPALIVE_SLACK_S
        while front.proxy.counter(counter) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        took = time.monotonic() - started
        assert front.proxy.counter(counter) == before + 1, f"not closed after {took:.1f}s"
        end = wire.until_goaway_or_close(timeout=10.0, need_close=True)
    assert end.closed, end


def hpack_int(value: int, prefix_bits: int) -> bytes:
    """RFC 7541 5.1 integer with an N-bit prefix (flag bits of the first byte left 0)."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([value])
    out = bytearray([limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal(name: bytes, value: bytes) -> bytes:
    """A literal header field without indexing, new name (RFC 7541 6.2.2)."""
    return b"\x00" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value
