"""Fetch `/debug/syncz` from a running control plane: a one-request HTTP/2 client (h2c)."""

from __future__ import annotations

import json
from typing import Any

import h2.config
import h2.connection
import h2.events
import trio

from ._status import SYNCZ_PATH

__all__ = ["fetch_syncz"]


async def fetch_syncz(
    host: str, port: int, *, path: str = SYNCZ_PATH, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """The control plane's proxy status entries; raises OSError or ValueError on failure."""
    with trio.fail_after(timeout):
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            conn.initiate_connection()
            stream_id = conn.get_next_available_stream_id()
            conn.send_headers(
                stream_id,
                [
                    (":method", "GET"),
                    (":scheme", "http"),
                    (":authority", f"{host}:{port}"),
                    (":path", path),
                ],
                end_stream=True,
            )
            await stream.send_all(conn.data_to_send())
            status, body, done = "", b"", False
            while not done:
                data = await stream.receive_some(65536)
                if not data:
                    raise ValueError("the control plane closed the connection")
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived):
                        status = dict(event.headers).get(b":status", b"").decode()
                    elif isinstance(event, h2.events.DataReceived):
                        body += event.data
                        conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
                    elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                        done = True
                await stream.send_all(conn.data_to_send())
    if status != "200":
        raise ValueError(f"{path} answered status {status or 'none'}")
    entries: list[dict[str, Any]] = json.loads(body)
    return entries
