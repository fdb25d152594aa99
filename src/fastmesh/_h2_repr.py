"""A cheaper `repr` of HTTP/2 frame payloads, for every h2 connection in this process.

h2 logs each received frame at trace level and builds the message eagerly
(`repr(frame)`); hyperframe renders a DATA frame's payload by hex-encoding all of it and
keeping the first 20 digits. Receiving a 10k-name EDS ACK from 100 proxies thus
hex-encoded 60 MB per endpoint change: a tenth of the control plane's time. The
replacement encodes only the 10 bytes it shows and returns the very same string.
"""

from __future__ import annotations

import binascii

import hyperframe.frame

__all__ = ["install", "payload_repr"]

#: Payload bytes shown in a frame's repr (20 hex digits), as hyperframe shows them.
_SHOWN = 10


def payload_repr(data: bytes | None) -> str:
    """hyperframe's `_raw_data_repr`, without encoding what it would cut off."""
    if not data:
        return "None"
    shown = binascii.hexlify(data[:_SHOWN]).decode("ascii")
    return f"<hex:{shown}{'...' if len(data) > _SHOWN else ''}>"


def install() -> None:
    """Use `payload_repr` in hyperframe (idempotent)."""
    hyperframe.frame._raw_data_repr = payload_repr
