"""What waits to be sent to one browser has a budget in bytes, not only Streamlit's 500 messages."""
import asyncio

import pytest

from app_pages import send_budget


def test_a_queue_is_full_at_its_bytes_and_empties_as_it_is_read():
    async def main():
        queue = send_budget.BytesBoundedQueue(500, max_bytes=10)
        queue.put_nowait(b"x" * 6)
        with pytest.raises(asyncio.QueueFull):
            queue.put_nowait(b"x" * 6)
        assert await queue.get() == b"x" * 6 and queue.bytes == 0
        queue.put_nowait(b"x" * 50)          # one page larger than the budget is still sent
        assert queue.bytes == 50
    asyncio.run(main())


def test_a_browser_that_stops_reading_is_dropped_when_it_falls_the_budget_behind():
    """Explore's map is a 3-4.5 MB message sent with every rerun: 500 of them queued for a tab that does
    not read were 1.6-2.2 GB of the server's memory."""
    import app  # noqa: F401  (the server's module gives Streamlit's session client the budget)
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from streamlit.runtime.session_manager import SessionClientDisconnectedError
    from streamlit.web.server.starlette.starlette_websocket import StarletteSessionClient

    class StalledSocket:               # the tab that never reads: its one send never finishes
        headers, cookies, client = {}, {}, None
        closed_with = None

        async def send_bytes(self, payload):
            await asyncio.Event().wait()

        async def _send(self, message):     # the server's own ASGI send, as Starlette's WebSocket keeps it
            assert message["type"] == "websocket.close"
            self.closed_with = message["code"]

    message = ForwardMsg()
    message.delta.new_element.markdown.body = "x" * (3 << 20)      # a 3 MB chart's worth

    async def main():
        socket = StalledSocket()
        client = StarletteSessionClient(socket)
        sent = 0
        with pytest.raises(SessionClientDisconnectedError):
            for _ in range(500):
                client.write_forward_msg(message)
                sent += 1
                await asyncio.sleep(0)
        queued = client._send_queue.bytes
        for _ in range(3):
            await asyncio.sleep(0)
        # Hung up too: Streamlit alone only stops sending, and a page that reads again would stay frozen.
        assert socket.closed_with == 1013 and client._sender_task.done()
        await client.aclose()
        return sent, queued
    sent, queued = asyncio.run(main())
    assert queued <= send_budget.SEND_BUDGET_MB << 20 and sent < 40


def test_a_tab_closed_while_a_message_waits_is_no_browser_fallen_behind(caplog):
    """A browser that leaves is no browser that fell behind: the server's log says nothing of a budget,
    and no hang-up is sent to a socket already gone."""
    import app  # noqa: F401
    from starlette.websockets import WebSocketDisconnect
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from streamlit.runtime.session_manager import SessionClientDisconnectedError
    from streamlit.web.server.starlette.starlette_websocket import StarletteSessionClient

    class GoneSocket:                  # the tab closed: its next send fails
        headers, cookies, client = {}, {}, None
        closed_with = None

        async def send_bytes(self, payload):
            raise WebSocketDisconnect(1001)

        async def _send(self, message):
            self.closed_with = message["code"]

    message = ForwardMsg()
    message.delta.new_element.markdown.body = "x"

    async def main():
        socket = GoneSocket()
        client = StarletteSessionClient(socket)
        client.write_forward_msg(message)
        for _ in range(5):
            await asyncio.sleep(0)
        with pytest.raises(SessionClientDisconnectedError):
            for _ in range(10):
                client.write_forward_msg(message)
                await asyncio.sleep(0)
        for _ in range(3):
            await asyncio.sleep(0)
        await client.aclose()
        return socket.closed_with
    assert asyncio.run(main()) is None
    assert "fell" not in caplog.text


def test_the_server_says_at_start_when_a_bound_could_not_be_applied(monkeypatch, capsys):
    """Each bound patches the web server's own code: a newer Streamlit or uvicorn that moved it left the
    server running without the bound, and nothing said so."""
    import runpy
    from app_pages import request_heads
    from conftest import ROOT
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(send_budget, "bound_send_queues", lambda: False)
    monkeypatch.setattr(request_heads, "bound_request_heads", lambda: False)
    runpy.run_path(str(ROOT / "app.py"))
    said = capsys.readouterr().err
    assert "websocket sender was not found" in said and "request heads are not bounded" in said
    monkeypatch.undo()
    runpy.run_path(str(ROOT / "app.py"))
    assert "Warning" not in capsys.readouterr().err
