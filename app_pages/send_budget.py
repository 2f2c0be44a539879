"""A budget in bytes for what the server has yet to send each browser.

Streamlit queues every message for a browser until its websocket takes it, and
drops a browser only once 500 messages wait (Streamlit 1.67). A message can be
large: Explore's map is one chart of 3-4.5 MB, sent again with every rerun. A tab
that asks for reruns and reads its websocket just fast enough to stay connected
held 500 of them, 1.6-2.2 GB of the server's memory for one visitor, and a few
such tabs took the server (and every student's session) down.

`bound_send_queues()` gives every browser's queue a budget of SEND_BUDGET_MB as
well: a browser that falls that far behind is dropped as Streamlit drops one that
falls 500 messages behind, and its page reconnects by itself and draws afresh
when it reads again. A page's whole drawing is a few MB (the map's page about
5), so a browser on a slow network keeps several reruns in hand.
"""
from __future__ import annotations

import asyncio

SEND_BUDGET_MB = 32


class BytesBoundedQueue(asyncio.Queue):
    """An asyncio queue of byte strings that is full at `max_bytes` as well as at `maxsize` items (a
    single item larger than `max_bytes` is still taken into an empty queue: a page too large for the
    budget is sent, not refused)."""

    def __init__(self, maxsize: int = 0, max_bytes: int = SEND_BUDGET_MB << 20):
        super().__init__(maxsize)
        self.max_bytes = max_bytes
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


def bound_send_queues() -> bool:
    """Give each browser's send queue on Streamlit's server the byte budget; True when Streamlit's
    session client was found as this was written for (another Streamlit is left as it is)."""
    try:
        from streamlit.web.server.starlette.starlette_websocket import StarletteSessionClient
    except ImportError:
        return False
    start = StarletteSessionClient.__init__
    if getattr(start, "bounded_in_bytes", False):
        return True

    def __init__(self, websocket) -> None:
        start(self, websocket)
        queue = getattr(self, "_send_queue", None)
        if isinstance(queue, asyncio.Queue) and queue.empty():
            # Swapped before the client's sender task first runs: it reads `_send_queue` on every message.
            self._send_queue = BytesBoundedQueue(queue.maxsize)

    __init__.bounded_in_bytes = True
    StarletteSessionClient.__init__ = __init__
    return True
