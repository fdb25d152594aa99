"""The cheaper frame-payload repr says exactly what hyperframe's own would."""

from __future__ import annotations

import binascii

import hyperframe.frame
import pytest

from fastmesh import _h2_repr


def _hyperframe_repr(data: bytes | None) -> str:
    """hyperframe 6.1's `_raw_data_repr`, the reference."""
    if not data:
        return "None"
    r = binascii.hexlify(data).decode("ascii")
    if len(r) > 20:
        r = r[:20] + "..."
    return "<hex:" + r + ">"


@pytest.mark.parametrize("size", [0, 1, 9, 10, 11, 16384])
def test_payload_repr_matches_hyperframe(size: int) -> None:
    data = bytes(range(256)) * (size // 256 + 1)
    assert _h2_repr.payload_repr(data[:size]) == _hyperframe_repr(data[:size])
    assert _h2_repr.payload_repr(None) == _hyperframe_repr(None)


def test_installed_for_the_xds_connections() -> None:
    import fastmesh.controlplane._server
    import fastmesh.xds._call  # noqa: F401

    frame = hyperframe.frame.DataFrame(1, b"x" * 100_000)
    assert hyperframe.frame._raw_data_repr is _h2_repr.payload_repr
    assert repr(frame).endswith(": <hex:78787878787878787878...>")
