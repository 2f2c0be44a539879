"""A budget in bytes for what the server has yet to send each browser tab (each websocket).

Streamlit queues every message for a browser until its websocket takes it, and
drops a browser only once 500 messages wait (Streamlit 1.67). A message can be
large: Explore's map is one chart of 3-4.5 MB, sent again with every rerun. A tab
that asks for reruns and reads its websocket just fast enough to stay connected
held 500 of them, 1.6-2.2 GB of the server's memory for one visitor, and a few
such tabs took the server (and every student's session) down.

`bound_send_queues()` gives every tab's queue a budget of SEND_BUDGET_MB as
well: a tab that falls that far behind is dropped as Streamlit drops one that
falls 500 messages behind (a script opening many tabs holds that much for each: a
bound per tab, not per visitor, whose tabs cookies cannot count). A page's whole drawing is a few MB (the map's page
about 5), so a browser on a slow network keeps a dozen reruns in hand.

Streamlit, dropping a browser, only stops sending to it: its websocket stays
open and its page, should it read again, stays as it was, answering nothing.
A dropped browser's websocket is closed as well (`_hang_up`), and its page
reconnects by itself and draws afresh, as after any lost connection.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging

SEND_BUDGET_MB = 64


class BytesBoundedQueue(asyncio.Queue):
    """An asyncio queue of byte strings that is full at `max_bytes` as well as at `maxsize` items (a
    single item larger than `max_bytes` is still taken into an empty queue: a page too large for the
    budget is sent, not refused)."""

    def __init__(self, maxsize: int = 0, max_bytes: int | None = None):
        super().__init__(maxsize)
        self.max_bytes = SEND_BUDGET_MB << 20 if max_bytes is None else max_bytes
        self.bytes = 0

    def put_nowait(self, item: bytes) -> None:
        if self.bytes and self.bytes + len(item) > self.max_bytes:
            raise asyncio.QueueFull
        super().put_nowait(item)

    def _put(self, item: bytes) -> None:
        self.bytes += len(item)
        super()._put(item)

    def _get(self) -> bytes:
        item = super()._get()
        self.bytes -= len(item)
        return item


async def _close(client) -> None:
    """Stop sending to a dropped browser and close its websocket, so that its page reconnects."""
    sender = getattr(client, "_sender_task", None)
    if sender is not None:
        sender.cancel()         # what was queued for it goes now, not when the browser leaves
    # Sent as the server's own ASGI message, not through Starlette's `close()`: that marks the socket closed
    # under the endpoint still reading it, which then fails with a traceback in the log; this way the
    # endpoint hears the disconnect as from any browser that leaves, and lets go of the session.
    websocket = client._websocket
    send = getattr(websocket, "_send", None) or (lambda message: websocket.close(code=message["code"]))
    with contextlib.suppress(Exception):        # gone already, or closing: nothing to hang up
        await send({"type": "websocket.close", "code": 1013, "reason": ""})     # 1013: try again later


def _hang_up(client) -> None:
    """Close the websocket of a browser dropped for falling behind, and say how far behind in the log."""
    if getattr(client, "hung_up", False):
        return
    client.hung_up = True
    queue = client._send_queue
    behind = (f"{queue.qsize()} messages" if queue.full() else
              f"{getattr(queue, 'bytes', 0) / 2**20:.0f} MB (its budget: {SEND_BUDGET_MB} MB)")
    logging.getLogger(__name__).warning("A browser fell %s behind what it was sent: its connection is closed, "
                                        "and its page reconnects.", behind)
    with contextlib.suppress(RuntimeError):     # no event loop in this thread: Streamlit's drop alone
        asyncio.get_running_loop().create_task(_close(client))


def bound_send_queues() -> bool:
    """Give each browser's send queue on Streamlit's server the byte budget, and close the websocket of a
    browser it drops; True when Streamlit's session client was found as this was written for (another
    Streamlit is left as it is)."""
    try:
        from streamlit.runtime.session_manager import SessionClientDisconnectedError
        from streamlit.web.server.starlette.starlette_websocket import StarletteSessionClient
    except ImportError:
        return False
    start, write = StarletteSessionClient.__init__, StarletteSessionClient.write_forward_msg
    if getattr(start, "bounded_in_bytes", False):
        return True

    def __init__(self, websocket) -> None:
        start(self, websocket)
        queue = getattr(self, "_send_queue", None)
        if isinstance(queue, asyncio.Queue) and queue.empty():
            # Swapped before the client's sender task first runs: it reads `_send_queue` on every message.
            self._send_queue = BytesBoundedQueue(queue.maxsize)

    def write_forward_msg(self, msg) -> None:
        try:
            write(self, msg)
        except SessionClientDisconnectedError as gone:
            if isinstance(gone.__cause__, asyncio.QueueFull):   # dropped for falling behind, not a tab closed
                _hang_up(self)
            raise

    __init__.bounded_in_bytes = True
    StarletteSessionClient.__init__ = __init__
    StarletteSessionClient.write_forward_msg = write_forward_msg
    return True
