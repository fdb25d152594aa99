"""Driving an h2 connection over trio: starting it with wide receive windows, and the one
task that writes its outgoing bytes to the socket.

Anyone may queue frames on the `H2Connection` (they are only buffered there) and then
`wake` the writer, or `flush` to wait until what they queued is on the socket. The read
loop only wakes it: a reader that waited for a write could deadlock two peers that both
write large messages at once, each blocked on a full socket while neither reads.
"""

from __future__ import annotations

import h2.connection
import h2.settings
import trio

__all__ = ["RECEIVE_WINDOW", "H2Writer", "initiate"]

#: The receive windows (stream and connection) both xDS ends advertise. Envoy's defaults are
#: 256 MiB; with h2's 64 KiB a 7 MB push or a 460 KB ACK of 10k names waits for a window
#: update every 64 KiB.
RECEIVE_WINDOW = 16 * 1024 * 1024


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
    """Drains `conn.data_to_send()` into `stream` until empty, whenever woken; `run` it in
    the connection's nursery. A write error ends `run` and is raised by every `flush`."""

    def __init__(self, conn: h2.connection.H2Connection, stream: trio.abc.SendStream) -> None:
        self._conn = conn
        self._stream = stream
        self._wanted = trio.Event()
        self._drained = trio.Event()
        self._error: BaseException | None = None

    def wake(self) -> None:
        """Something was queued: write it soon (never waits)."""
        self._wanted.set()

    async def flush(self) -> None:
        """Wait until everything queued before this call is written."""
        if self._error is None:
            # The drain that sets this event ends with an empty buffer, so it took our bytes.
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
                while data := self._conn.data_to_send():
                    await self._stream.send_all(data)
                drained, self._drained = self._drained, trio.Event()
                drained.set()
        except BaseException as exc:
            self._error = exc
            self._drained.set()
            raise
