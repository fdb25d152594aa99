"""A deliberately rude HTTP/2 client: frames built by hand (hyperframe + hpack) and written
to a raw socket, so a test can send what no well-behaved client library would.

    wire = H2Wire.connect(port)
    wire.send(wire.headers(1, "/", end_stream=False), rst(1))
    end = wire.until_goaway_or_close(timeout=5)

Writes never block for long: a peer that stops reading (HTTP/2 backpressure) shows up as
`send` returning False instead of a hung test.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import hpack
from hyperframe.frame import (
    ContinuationFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADER_LEN = 9
CANCEL = 0x8
#: RFC 9113 error codes by value, for readable assertion messages.
ERROR_NAMES = {
    0x0: "NO_ERROR",
    0x1: "PROTOCOL_ERROR",
    0x2: "INTERNAL_ERROR",
    0x3: "FLOW_CONTROL_ERROR",
    0x6: "FRAME_SIZE_ERROR",
    0x7: "REFUSED_STREAM",
    0x8: "CANCEL",
    0x9: "COMPRESSION_ERROR",
    0xB: "ENHANCE_YOUR_CALM",
}


def rst(stream_id: int, code: int = CANCEL) -> bytes:
    return RstStreamFrame(stream_id, error_code=code).serialize()


def ping(payload: bytes = b"\0" * 8, *, ack: bool = False) -> bytes:
    return PingFrame(0, opaque_data=payload, flags=["ACK"] if ack else []).serialize()


def settings(values: dict[int, int] | None = None) -> bytes:
    return SettingsFrame(0, settings=values or {}).serialize()


def continuation(stream_id: int, block: bytes, *, end_headers: bool = False) -> bytes:
    frame = ContinuationFrame(stream_id, data=block)
    if end_headers:
        frame.flags.add("END_HEADERS")
    return frame.serialize()


@dataclass
class Ending:
    """How a connection ended for the client: the GOAWAY it got (if any), and whether the
    peer closed the socket, all within the time allowed."""

    goaway: GoAwayFrame | None
    closed: bool
    seconds: float

    @property
    def ended(self) -> bool:
        return self.goaway is not None or self.closed

    def __str__(self) -> str:
        if self.goaway is None:
            how = "no GOAWAY"
        else:
            code = self.goaway.error_code
            how = f"GOAWAY {ERROR_NAMES.get(code, hex(code))}"
        return f"{how}, {'closed' if self.closed else 'still open'} after {self.seconds:.2f}s"


class H2Wire:
    """One client connection speaking HTTP/2 frames chosen by the test."""

    def __init__(self, sock: socket.socket, authority: str) -> None:
        self.sock = sock
        self.authority = authority
        self.encoder = hpack.Encoder()
        self._buf = bytearray()

    @classmethod
    def connect(
        cls, port: int, *, host: str = "127.0.0.1", initial: dict[int, int] | None = None
    ) -> H2Wire:
        """Connect and send the preface with `initial` SETTINGS."""
        sock = socket.create_connection((host, port), timeout=5)
        wire = cls(sock, f"{host}:{port}")
        wire.send(PREFACE + settings(initial))
        return wire

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> H2Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- frames ---------------------------------------------------------------------------

    def header_block(self, path: str = "/", extra: Sequence[tuple[str, str]] = ()) -> bytes:
        """An HPACK block for GET `path` (the encoder's dynamic table evolves with it)."""
        fields = [
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", self.authority),
            (":path", path),
            *extra,
        ]
        return bytes(self.encoder.encode(fields))

    def headers(
        self,
        stream_id: int,
        path: str = "/",
        *,
        end_stream: bool = True,
        end_headers: bool = True,
        extra: Sequence[tuple[str, str]] = (),
        block: bytes | None = None,
    ) -> bytes:
        if block is None:
            block = self.header_block(path, extra)
        frame = HeadersFrame(stream_id, data=block)
        if end_stream:
            frame.flags.add("END_STREAM")
        if end_headers:
            frame.flags.add("END_HEADERS")
        return frame.serialize()

    # --- I/O ------------------------------------------------------------------------------

    def send(self, *chunks: bytes, timeout: float = 2.0) -> bool:
        """Write `chunks`; False if the peer closed or stopped reading for `timeout` s."""
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(b"".join(chunks))
            return True
        except (TimeoutError, ConnectionError, OSError):
            return False

    def flood(self, frames: Iterable[bytes], *, batch: int = 256, budget_s: float = 5.0) -> int:
        """Write `frames` in batches until they run out, the peer stops taking them (closed,
        or not reading), or `budget_s` passes. Returns how many frames went out."""
        sent = 0
        pending: list[bytes] = []
        deadline = time.monotonic() + budget_s
        for frame in frames:
            pending.append(frame)
            if len(pending) >= batch:
                if not self.send(*pending, timeout=0.5):
                    return sent
                sent += len(pending)
                pending.clear()
                if time.monotonic() > deadline:
                    return sent
        if pending and self.send(*pending, timeout=0.5):
            sent += len(pending)
        return sent

    def read_frame(self, deadline: float) -> Frame | None:
        """The next frame, or None when the peer closed. TimeoutError past `deadline`."""
        while True:
            frame = self._parse()
            if frame is not None:
                return frame
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame before the deadline")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 16)
            except ConnectionResetError:
                return None
            if not data:
                return None
            self._buf += data

    def frames_until(self, deadline: float) -> Iterable[Frame]:
        """Frames as they arrive until the peer closes (or TimeoutError at `deadline`)."""
        while (frame := self.read_frame(deadline)) is not None:
            yield frame

    def until_goaway_or_close(self, timeout: float, *, need_close: bool = False) -> Ending:
        """Read (and drop) frames until a GOAWAY arrives, or the peer closes; with
        `need_close`, keep reading after the GOAWAY until the close."""
        started = time.monotonic()
        deadline = started + timeout
        goaway: GoAwayFrame | None = None
        try:
            for frame in self.frames_until(deadline):
                if isinstance(frame, GoAwayFrame):
                    goaway = frame
                    if not need_close:
                        return Ending(goaway, False, time.monotonic() - started)
        except TimeoutError:
            return Ending(goaway, False, time.monotonic() - started)
        return Ending(goaway, True, time.monotonic() - started)

    def _parse(self) -> Frame | None:
        if len(self._buf) < FRAME_HEADER_LEN:
            return None
        frame, length = Frame.parse_frame_header(memoryview(self._buf[:FRAME_HEADER_LEN]))
        if len(self._buf) < FRAME_HEADER_LEN + length:
            return None
        frame.parse_body(memoryview(self._buf[FRAME_HEADER_LEN : FRAME_HEADER_LEN + length]))
        del self._buf[: FRAME_HEADER_LEN + length]
        return frame
