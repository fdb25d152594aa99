"""gRPC message framing, sans-IO."""

from __future__ import annotations

import pytest

from fastmesh._grpc import (
    FrameError,
    MessageDecoder,
    Status,
    encode_message,
    response_headers,
    trailers,
)


def test_encode_prefixes_flag_and_big_endian_length() -> None:
    assert encode_message(b"abc") == b"\x00\x00\x00\x00\x03abc"
    assert encode_message(b"") == b"\x00\x00\x00\x00\x00"


def test_decoder_reassembles_messages_split_anywhere() -> None:
    stream = encode_message(b"first") + encode_message(b"") + encode_message(b"x" * 70000)
    for step in (1, 2, 3, 5, 7, 4096, 16384, len(stream)):
        decoder = MessageDecoder()
        out: list[bytes] = []
        for i in range(0, len(stream), step):
            out += decoder.feed(stream[i : i + step])
        assert out == [b"first", b"", b"x" * 70000]
        assert decoder.pending == 0


def test_decoder_refuses_compressed_and_oversized_messages() -> None:
    with pytest.raises(FrameError, match="compressed"):
        MessageDecoder().feed(b"\x01\x00\x00\x00\x01a")
    with pytest.raises(FrameError, match="exceeds 10"):
        MessageDecoder(max_message=10).feed(b"\x00\x00\x00\x00\x0b")


def test_headers_and_trailers() -> None:
    assert response_headers() == [(":status", "200"), ("content-type", "application/grpc")]
    assert trailers(Status.OK) == [("grpc-status", "0")]
    assert trailers(Status.INVALID_ARGUMENT, "bad 100% é") == [
        ("grpc-status", "3"),
        ("grpc-message", "bad 100%25 %C3%A9"),
    ]
