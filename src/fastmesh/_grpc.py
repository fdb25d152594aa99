"""gRPC over HTTP/2, sans-IO: message framing (5-byte prefix) and the header/trailer sets.

Shared by the control plane (server side) and fastmesh-proxy's ADS client, which must not
import the control plane (it would load PyYAML and the registry into the sidecar)."""

from __future__ import annotations

import struct

__all__ = [
    "CONTENT_TYPE",
    "FrameError",
    "MessageDecoder",
    "Status",
    "encode_message",
    "message_prefix",
    "response_headers",
    "trailers",
]

CONTENT_TYPE = "application/grpc"
#: Refuse single messages above this (a DiscoveryRequest is small; 64 MiB is generous).
MAX_MESSAGE = 64 * 1024 * 1024
_PREFIX = struct.Struct(">BI")


class Status:
    """The gRPC status codes fastmesh answers with."""

    OK = 0
    CANCELLED = 1
    INVALID_ARGUMENT = 3
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14


class FrameError(ValueError):
    """The peer sent something that is not a stream of uncompressed gRPC messages."""


def encode_message(payload: bytes) -> bytes:
    """One length-prefixed message: flag 0 (uncompressed), 4-byte big-endian length, bytes."""
    return message_prefix(len(payload)) + payload


def message_prefix(size: int) -> bytes:
    """The 5 bytes before a message of `size` bytes (sent apart from a shared payload)."""
    return _PREFIX.pack(0, size)


class MessageDecoder:
    """Feed it DATA bytes as they arrive; it returns each complete message once.

    A 10k-service push is one message of several MiB in 16 KiB frames: the pieces are kept
    as they came and joined once, when the message is whole (one buffer grown per frame,
    then sliced, cost the xDS client more than decoding the protobuf)."""

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        #: Where the message being received ends, once its prefix is in.
        self._end: int | None = None
        self._max = max_message

    def feed(self, data: bytes) -> list[bytes]:
        if data:
            self._chunks.append(data)
            self._size += len(data)
        out: list[bytes] = []
        while True:
            if self._end is None:
                if self._size < _PREFIX.size:
                    break
                self._end = _PREFIX.size + self._length(self._head())
            if self._size < self._end:
                break
            out.append(self._take(self._end))
        return out

    def _take(self, end: int) -> bytes:
        """The message now whole at the front, copied once (fresh MiBs are dear); what
        follows it stays buffered."""
        chunks, extra = self._chunks, self._size - end
        last = chunks[-1]
        rest = last[len(last) - extra :] if extra else b""
        if extra:
            chunks[-1] = last[: len(last) - extra]
        chunks[0] = chunks[0][_PREFIX.size :]
        message = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._chunks = [rest] if rest else []
        self._size, self._end = len(rest), None
        return message

    def _head(self) -> bytes:
        if len(self._chunks[0]) < _PREFIX.size:
            self._chunks = [b"".join(self._chunks)]
        return self._chunks[0]

    def _length(self, head: bytes) -> int:
        flag, length = _PREFIX.unpack_from(head)
        if flag != 0:
            raise FrameError("compressed gRPC messages are not supported")
        if length > self._max:
            raise FrameError(f"gRPC message of {length} bytes exceeds {self._max}")
        return int(length)

    @property
    def pending(self) -> int:
        """Bytes of an incomplete message still buffered (0 at a clean end of stream)."""
        return self._size


def response_headers() -> list[tuple[str, str]]:
    return [(":status", "200"), ("content-type", CONTENT_TYPE)]


def trailers(status: int, message: str = "") -> list[tuple[str, str]]:
    out = [("grpc-status", str(status))]
    if message:
        out.append(("grpc-message", _percent_encode(message)))
    return out


def _percent_encode(text: str) -> str:
    """gRPC's grpc-message encoding: printable ASCII except '%' as-is, the rest %XX of UTF-8."""
    return "".join(
        chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}" for b in text.encode()
    )
