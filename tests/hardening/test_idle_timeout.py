"""The connection idle timeout on HTTP/2 (Envoy's `common_http_protocol_options.idle_timeout`):
a connection with no stream for that long is told to go away, the same under Envoy and
fastmesh, and counted in `http.<prefix>.downstream_cx_idle_timeout`."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support import BINARY_PARAMS

from ._h2wire import H2Wire
from ._topology import Front, running_front

IDLE_TIMEOUT_S = 1.0
#: Allowed past the idle timeout on a loaded machine.
SLACK_S = 4.0
COUNTER = "http.ingress.downstream_cx_idle_timeout"


@pytest.fixture(scope="module", params=BINARY_PARAMS)
def front(request: pytest.FixtureRequest) -> Iterator[Front]:
    with running_front(request.param, idle_timeout_s=IDLE_TIMEOUT_S) as f:
        yield f


def test_idle_http2_connection_gets_goaway(front: Front) -> None:
    before = front.proxy.counter(COUNTER)
    with H2Wire.connect(front.ports.http) as wire:
        end = wire.until_goaway_or_close(timeout=IDLE_TIMEOUT_S + SLACK_S)
    assert end.goaway is not None, end
    assert end.goaway.error_code == 0, end
    assert end.seconds >= IDLE_TIMEOUT_S * 0.9, end
    assert front.proxy.counter(COUNTER) == before + 1


def test_a_busy_http2_connection_is_not_idle(front: Front) -> None:
    """Requests more often than the idle timeout keep the connection out of idle."""
    before = front.proxy.counter(COUNTER)
    with httpx.Client(http1=False, http2=True, timeout=10) as client:
        deadline = time.monotonic() + 3 * IDLE_TIMEOUT_S
        while time.monotonic() < deadline:
            r = client.get(f"http://127.0.0.1:{front.ports.http}/busy")
            assert (r.status_code, r.http_version) == (200, "HTTP/2")
            time.sleep(IDLE_TIMEOUT_S / 4)
    assert front.proxy.counter(COUNTER) == before
