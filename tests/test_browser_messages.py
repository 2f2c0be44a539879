"""What a browser tab sends over its websocket: developer-only messages dropped, the rest at a person's pace."""
import asyncio
import threading
import time
import urllib.request

from streamlit.proto.BackMsg_pb2 import BackMsg

from app_pages import browser_messages
from test_browser import streamlit_app


def message(**kind) -> bytes:
    back = BackMsg()
    for name, value in kind.items():
        if name == "rerun_script":
            back.rerun_script.page_name = value
        else:
            setattr(back, name, value)
    return back.SerializeToString()


def passed_on(messages: list[bytes]) -> tuple[list[str], list[dict]]:
    """What Streamlit's side of the server is handed of `messages`, sent at once by one tab, and what the
    tab is sent back."""
    async def main():
        handed, sent_back = [], []
        waiting = [{"type": "websocket.receive", "bytes": m} for m in messages]
        waiting.append({"type": "websocket.disconnect", "code": 1000})

        async def receive():
            return waiting.pop(0)

        async def send(message):
            sent_back.append(message)

        async def streamlit(scope, receive, send):
            while (got := await receive())["type"] == "websocket.receive":
                handed.append(browser_messages.kind(got["bytes"]))
            handed.append(got["type"])
            await send({"type": "websocket.send", "bytes": b"what was queued"})

        await browser_messages.BrowserMessages(streamlit)({"type": "websocket", "path": "/_stcore/stream"},
                                                           receive, send)
        return handed, sent_back
    return asyncio.run(main())


def test_messages_only_a_developer_sends_are_dropped(caplog):
    """`clear_cache` emptied every cache on the server, everyone's: the data set, the models kept, the
    teacher's unlock and the password guard's delays."""
    sent = [message(clear_cache=True), message(rerun_script="home"), message(load_git_info=True),
            message(set_run_on_save=True), message(app_heartbeat=True), message(clear_cache=True),
            message(debug_shutdown_runtime=True), b"\xff not a message"]
    handed, _ = passed_on(sent)
    assert handed == ["rerun_script", "app_heartbeat", None, "websocket.disconnect"]
    assert caplog.text.count("'clear_cache', which only a developer's may") == 1       # once a connection


def test_a_tab_that_sends_more_than_a_person_could_is_hung_up(caplog, monkeypatch):
    """Slowed down instead, a tab sending without end left the server every message in its connection's
    buffers, read long after it had gone. The server's log says so once a minute: a script reconnecting
    without end wrote a line for every connection."""
    monkeypatch.setitem(browser_messages._hang_ups, "said_at", None)
    handed, sent_back = passed_on([message(app_heartbeat=True)] * (browser_messages.FIRST + 3))
    assert handed == ["app_heartbeat"] * browser_messages.FIRST + ["websocket.disconnect"]
    assert sent_back == [{"type": "websocket.close", "code": 1008, "reason": ""}]     # nothing after it
    passed_on([message(app_heartbeat=True)] * (browser_messages.FIRST + 3))       # hung up again at once
    assert caplog.text.count("were closed") == 1 and "1 browser connection(s)" in caplog.text   # once a minute
    allowance = browser_messages.Allowance()
    assert all(allowance.take() for _ in range(browser_messages.FIRST)) and not allowance.take()
    allowance.at -= 1 / browser_messages.PACE         # PACE a second: one more a moment later
    assert allowance.take() and not allowance.take()
    allowance.at -= 60                                # after a pause: BURST at once, no more
    assert all(allowance.take() for _ in range(browser_messages.BURST)) and not allowance.take()


def test_a_tab_sending_reruns_without_end_takes_no_one_elses_server(tiny_archive, tmp_path):
    """Tabs sending a rerun every few milliseconds: each stopped its script and started it again, and three
    such tabs made a new visitor's page wait 24-46 s. Each is hung up once past a person's pace."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect
    closed = []
    with streamlit_app(tiny_archive, tmp_path / "runs") as url:
        def flood():
            with connect(url.replace("http", "ws") + browser_messages.STREAM, subprotocols=["streamlit"],
                         max_size=None) as socket:
                try:
                    for _ in range(20 * browser_messages.BURST):
                        socket.send(message(rerun_script=""))
                        time.sleep(0.002)
                    while True:
                        socket.recv(timeout=10)
                except ConnectionClosed as e:
                    closed.append(e.rcvd.code if e.rcvd else None)

        tabs = [threading.Thread(target=flood) for _ in range(3)]
        for tab in tabs:
            tab.start()
        asked = time.monotonic()
        page = urllib.request.urlopen(urllib.request.Request(url + "/", headers={"Accept": "text/html"}), timeout=30)
        waited = time.monotonic() - asked
        for tab in tabs:
            tab.join()
    assert page.status == 200 and waited < 3, f"a new visitor's page took {waited:.1f} s"
    assert closed == [1008] * 3
