"""H2Writer: two HTTP/2 peers that both write far more than the sockets buffer, at the same
time, each finish (a reader that waited for its own writer would deadlock them both)."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import trio

from fastmesh._h2_trio import RECEIVE_WINDOW, H2Writer, initiate

#: Far beyond what a socket pair buffers, within one receive window.
_PAYLOAD = 8 * 1024 * 1024


class Peer:
    """One end: a reader that only queues and wakes, a writer task, and one big send."""

    def __init__(self, stream: trio.SocketStream, *, client: bool) -> None:
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=client))
        self.stream = stream
        self.writer = H2Writer(self.conn, stream)
        self.received = 0
        self.window = trio.Event()
        self.client = client

    async def read(self) -> None:
        while self.received < _PAYLOAD:
            data = await self.stream.receive_some(65536)
            assert data, "the peer went away"
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    self.received += len(event.data)
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
                    self.window.set()
                    self.window = trio.Event()
            self.writer.wake()

    async def send(self) -> None:
        if self.client:
            headers = [(":method", "POST"), (":scheme", "http"), (":authority", "x")]
            self.conn.send_headers(1, [*headers, (":path", "/")])
        else:
            while 1 not in self.conn.streams:  # the client's stream opens it
                await self.window.wait()
            self.conn.send_headers(1, [(":status", "200")])
        data = memoryview(bytes(_PAYLOAD))
        while data:
            size = min(self.conn.local_flow_control_window(1), self.conn.max_outbound_frame_size)
            if size <= 0:
                opened = self.window
                await self.writer.flush()
                await opened.wait()
                continue
            self.conn.send_data(1, bytes(data[:size]))
            data = data[size:]
            if len(data) % (256 * 1024) < size:
                await self.writer.flush()  # the writer, not this task, may block on the socket
        await self.writer.flush()

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
