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
    """Feed it DATA bytes as they arrive; it returns each complete message once."""

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self._buffer = bytearray()
        self._max = max_message

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        out: list[bytes] = []
        while len(self._buffer) >= _PREFIX.size:
            flag, length = _PREFIX.unpack_from(self._buffer)
            if flag != 0:
                raise FrameError("compressed gRPC messages are not supported")
            if length > self._max:
                raise FrameError(f"gRPC message of {length} bytes exceeds {self._max}")
            end = _PREFIX.size + length
            if len(self._buffer) < end:
                break
            out.append(bytes(self._buffer[_PREFIX.size : end]))
            del self._buffer[:end]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete message still buffered (0 at a clean end of stream)."""
        return len(self._buffer)


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
