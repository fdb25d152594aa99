"""Driving an h2 connection over trio: starting it with wide receive windows, and the one
task that writes its outgoing bytes to the socket.

Anyone may queue frames on the `H2Connection` (they are only buffered there) and then
`wake` the writer, or `flush` to wait until what they queued is on the socket; messages go
through `send_data`, which waits for flow-control window (the reader reports it with
`window_changed`). The read
loop only wakes it: a reader that waited for a write could deadlock two peers that both
write large messages at once, each blocked on a full socket while neither reads.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import h2.connection
import h2.settings
import h2.stream
import hyperframe.frame
import trio

__all__ = ["RECEIVE_WINDOW", "H2Writer", "initiate"]

#: The receive windows (stream and connection) both xDS ends advertise. Envoy's defaults are
#: 256 MiB; with h2's 64 KiB a 7 MB push or a 460 KB ACK of 10k names waits for a window
#: update every 64 KiB.
RECEIVE_WINDOW = 16 * 1024 * 1024


def _data_body_repr(frame: hyperframe.frame.DataFrame) -> str:
    """hyperframe's text for a DATA frame's body, from its first bytes only: the first 20
    hex digits are all it shows."""
    head = frame.serialize_padding_data() + bytes(frame.data[:11]) + bytes(frame.pad_length)
    return hyperframe.frame._raw_data_repr(head[:11])


# h2 calls `repr(frame)` on every frame it receives, logger or not
# (`H2Connection._receive_frame`), and hyperframe's DATA repr copies the whole body and
# hex-encodes it to show 20 digits: ~25 µs per 16 KiB frame, 5-8 % of the control plane's
# CPU in a first push of 10k services. Same text, without the copy.
hyperframe.frame.DataFrame._body_repr = _data_body_repr  # type: ignore[method-assign, assignment]


def initiate(conn: h2.connection.H2Connection) -> None:
    """Queue the connection preface with `RECEIVE_WINDOW` for every stream and the
    connection."""
    conn.local_settings = h2.settings.Settings(
        client=conn.config.client_side,
        initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: RECEIVE_WINDOW},
    )
    conn.initiate_connection()
    conn.increment_flow_control_window(RECEIVE_WINDOW - conn.inbound_flow_control_window)


class H2Writer:
    """Writes the connection's outgoing bytes whenever woken; `run` it in the connection's
    nursery. A write error ends `run` and is raised by every `flush`.

    Large messages take `queue_data`: their DATA frames are a 9-byte header and a view of
    the caller's buffer, written with one `sendmsg` per 512 frames. Through h2 each 16 KiB
    frame was copied four times (slice, frame, h2's buffer, `data_to_send`), which made
    sending most of the control plane's time on a 10k-service push."""

    def __init__(self, conn: h2.connection.H2Connection, stream: trio.abc.SendStream) -> None:
        self._conn = conn
        self._stream = stream
        #: Bytes in wire order: h2's frames and `queue_data`'s, not yet written.
        self._queue: list[Buffer] = []
        self._wanted = trio.Event()
        self._drained = trio.Event()
        #: Set when the peer may have opened flow-control window (then replaced).
        self._window = trio.Event()
        self._error: BaseException | None = None

    def wake(self) -> None:
        """Something was queued: write it soon (never waits)."""
        self._wanted.set()

    def window_changed(self) -> None:
        """The reader saw WINDOW_UPDATE or SETTINGS, or the connection end: a `send_data`
        waiting for window looks again (never waits)."""
        opened, self._window = self._window, trio.Event()
        opened.set()

    async def send_data(
        self, stream_id: int, *pieces: bytes, check: Callable[[], None] | None = None
    ) -> None:
        """`pieces` (one message) on `stream_id`, as flow control allows, waiting for the
        peer's window updates; written when this returns. `check` runs before each step and
        raises to give up (the call ended while waiting)."""
        for piece in pieces:
            data = memoryview(piece)
            while data:
                if check is not None:
                    check()
                opened = self._window  # before flushing: an update may come meanwhile
                queued = self.queue_data(stream_id, data)
                if not queued:
                    await self.flush()
                    await opened.wait()
                data = data[queued:]
        await self.flush()

    def queue_data(self, stream_id: int, data: memoryview) -> int:
        """Queue DATA frames on `stream_id` for as much of `data` as flow control allows
        now, without copying it (keep `data` unchanged until flushed); the bytes queued."""
        conn = self._conn
        size = min(conn.local_flow_control_window(stream_id), len(data))
        if size <= 0:
            return 0
        _take_window(conn, stream_id, size)
        self._take_h2_bytes()  # what h2 queued before these frames goes first
        step = conn.max_outbound_frame_size
        queue = self._queue
        data = data[:size]
        for at in range(0, size, step):
            chunk = data[at : at + step]
            n = len(chunk)
            queue.append(_DATA_HEADER.pack(n >> 8, n & 0xFF, 0, 0, stream_id))
            queue.append(chunk)
        self.wake()
        return size

    async def flush(self) -> None:
        """Wait until everything queued before this call is written."""
        if self._error is None:
            # The drain that sets this event ends with an empty queue, so it took our bytes.
            drained = self._drained
            self.wake()
            await drained.wait()
        if self._error is not None:
            raise trio.BrokenResourceError("the connection's writer failed") from self._error

    async def run(self) -> None:
        try:
            while True:
                await self._wanted.wait()
                self._wanted = trio.Event()
                while self._take_h2_bytes() or self._queue:
                    await self._write_queue()
                drained, self._drained = self._drained, trio.Event()
                drained.set()
        except BaseException as exc:
            self._error = exc
            self._drained.set()
            raise

    def _take_h2_bytes(self) -> bool:
        data = self._conn.data_to_send()
        if data:
            self._queue.append(data)
        return bool(data)

    async def _write_queue(self) -> None:
        """Write the queue's first buffers (at most `_IOV_MAX`), however many the socket
        takes."""
        queue = self._queue
        batch = queue[:_IOV_MAX]
        if not isinstance(self._stream, trio.SocketStream):
            del queue[: len(batch)]
            await self._stream.send_all(b"".join(batch))
            return
        try:
            sent = await self._stream.socket.sendmsg(batch)
        except OSError as exc:  # as SocketStream.send_all reports it
            raise trio.BrokenResourceError(f"socket write failed: {exc}") from exc
        done = 0
        for buffer in batch:
            size = len(buffer)
            if sent < size:
                break
            sent -= size
            done += 1
        del queue[:done]
        if sent:
            queue[0] = memoryview(queue[0])[sent:]


#: A DATA frame's header: 24-bit length (as 16 + 8), type 0, flags 0, stream id.
_DATA_HEADER = struct.Struct(">HBBBL")
#: Buffers per `sendmsg` (Linux's IOV_MAX).
_IOV_MAX = 1024

Buffer = bytes | memoryview


def _take_window(conn: h2.connection.H2Connection, stream_id: int, size: int) -> None:
    """What `H2Connection.send_data` does besides framing: check the states and debit both
    flow-control windows. h2 has no public call for it; tests/unit/test_h2_trio.py compares
    the result with h2's own, so an h2 that changes these internals fails there."""
    conn.state_machine.process_input(h2.connection.ConnectionInputs.SEND_DATA)
    stream = conn.streams[stream_id]
    stream.state_machine.process_input(h2.stream.StreamInputs.SEND_DATA)
    stream.outbound_flow_control_window -= size
    conn.outbound_flow_control_window -= size
