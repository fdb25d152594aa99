"""H2Writer: two HTTP/2 peers that both write far more than the sockets buffer, at the same
time, each finish (a reader that waited for its own writer would deadlock them both)."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import hyperframe.frame
import pytest
import trio
import trio.testing

from fastmesh._h2_trio import RECEIVE_WINDOW, H2Writer, _data_body_repr, initiate

#: Far beyond what a socket pair buffers, within one receive window.
_PAYLOAD = 8 * 1024 * 1024


#: The payload: byte i is i % 256, so a frame out of place or cut short shows.
_PATTERN = bytes(range(256)) * (_PAYLOAD // 256 + 1)


def _expected(at: int, size: int) -> bytes:
    return _PATTERN[at : at + size]


class Peer:
    """One end: a reader that only queues and wakes, a writer task, and one big send."""

    def __init__(self, stream: trio.SocketStream, *, client: bool) -> None:
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=client))
        self.stream = stream
        self.writer = H2Writer(self.conn, stream)
        self.received = 0
        #: Set whenever the reader got bytes (then replaced).
        self.arrived = trio.Event()
        self.client = client

    async def read(self) -> None:
        while self.received < _PAYLOAD:
            data = await self.stream.receive_some(65536)
            assert data, "the peer went away"
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    assert event.data == _expected(self.received, len(event.data))
                    self.received += len(event.data)
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
                    self.writer.window_changed()
            self.arrived.set()
            self.arrived = trio.Event()
            self.writer.wake()

    async def send(self) -> None:
        if self.client:
            headers = [(":method", "POST"), (":scheme", "http"), (":authority", "x")]
            self.conn.send_headers(1, [*headers, (":path", "/")])
        else:
            while 1 not in self.conn.streams:  # the client's stream opens it
                await self.arrived.wait()
            self.conn.send_headers(1, [(":status", "200")])
        # the writer task, not this one, blocks on the full socket
        await self.writer.send_data(1, _PATTERN[:_PAYLOAD])

    async def run(self) -> None:
        initiate(self.conn)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.writer.run)
            async with trio.open_nursery() as both_ways:
                both_ways.start_soon(self.send)
                both_ways.start_soon(self.read)
            nursery.cancel_scope.cancel()


async def test_both_peers_writing_large_messages_at_once_both_finish() -> None:
    a, b = trio.socket.socketpair()
    client = Peer(trio.SocketStream(a), client=True)
    server = Peer(trio.SocketStream(b), client=False)
    assert _PAYLOAD < RECEIVE_WINDOW  # no window update needed: only the sockets push back
    with trio.fail_after(10):
        async with client.stream, server.stream, trio.open_nursery() as nursery:
            nursery.start_soon(client.run)
            nursery.start_soon(server.run)
    assert client.received == server.received == _PAYLOAD


async def test_a_flush_after_the_socket_broke_raises() -> None:
    a, b = trio.socket.socketpair()
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    stream = trio.SocketStream(a)
    writer = H2Writer(conn, stream)
    b.close()
    initiate(conn)
    async with stream, trio.open_nursery() as nursery:
        nursery.start_soon(_expect_broken, writer.run)
        try:
            await writer.flush()
        except trio.BrokenResourceError:
            pass
        else:
            raise AssertionError("flush on a broken socket returned")


async def _expect_broken(run: object) -> None:
    try:
        await run()  # type: ignore[operator]
    except trio.BrokenResourceError:
        return
    raise AssertionError("the writer survived a broken socket")


def test_queued_frames_leave_h2_as_its_own_send_data_would() -> None:
    """`queue_data` debits h2's windows and states itself (no public call does): the
    windows, the frames on the wire and what the peer decodes match h2's `send_data`."""
    ours, theirs = _open_pair(), _open_pair()
    payload = bytes(range(256)) * 200  # 3 frames of 16 KiB and one of 1 KiB

    writer = H2Writer(ours[0], trio.testing.MemorySendStream())
    writer.queue_data(1, memoryview(payload))
    for at in range(0, len(payload), 16384):
        theirs[0].send_data(1, payload[at : at + 16384])

    assert ours[0].local_flow_control_window(1) == theirs[0].local_flow_control_window(1)
    assert ours[0].outbound_flow_control_window == theirs[0].outbound_flow_control_window
    assert b"".join(bytes(b) for b in writer._queue) == theirs[0].data_to_send()
    ours[0].end_stream(1)  # the stream's state moved on as h2's would: it can still end
    theirs[0].end_stream(1)
    assert ours[0].data_to_send() == theirs[0].data_to_send()


def _open_pair() -> tuple[h2.connection.H2Connection, h2.connection.H2Connection]:
    """A server and a client with stream 1 open, settings exchanged."""
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    client.send_headers(
        1, [(":method", "POST"), (":scheme", "http"), (":authority", "x"), (":path", "/")]
    )
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    server.send_headers(1, [(":status", "200")])
    server.data_to_send()
    return server, client


@pytest.mark.parametrize(
    ("data", "pad"),
    [
        (b"", 0),
        (b"abc", 0),
        (b"0123456789", 0),
        (b"0123456789a", 0),
        (bytes(16384), 0),
        (b"xy", 3),
        (b"0123456789ab", 200),
        (b"q" * 40000, 0),
    ],
)
def test_a_data_frame_reads_as_hyperframe_writes_it(data: bytes, pad: int) -> None:
    """`_h2_trio` gives DATA frames a cheaper repr (h2 takes one of every frame it
    receives): the text stays hyperframe's, padded or not, short or long."""
    frame = hyperframe.frame.DataFrame(1, data=data)
    if pad:
        frame.flags.add("PADDED")
        frame.pad_length = pad
    body = frame.serialize_body()
    assert hyperframe.frame.DataFrame._body_repr is _data_body_repr
    assert repr(frame).endswith(": " + hyperframe.frame._raw_data_repr(body))
