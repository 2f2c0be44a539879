"""What a browser tab may ask of the server over its websocket: what its pages send, at a person's pace.

Streamlit's server (1.67) acts at once on every message a tab sends. On a server a
class shares, two kinds of message let one visitor hurt every other:

- `clear_cache` empties every st.cache_data and st.cache_resource, everyone's: the
  data set (read again, seconds), the models kept, the teacher's unlock and the
  password guard's delays between wrong guesses (so a script could guess at full
  speed). Streamlit's menu offers it to developers only (`toolbarMode` "minimal"
  hides it), but a script may send it. `load_git_info` and `set_run_on_save` are
  developer tools as well. These are dropped here, and so are the debug messages
  Streamlit itself refuses outside development.
- Reruns, as fast as a script can send them: each stops the tab's script and
  starts it again. One tab sending 200 a second took a core; three made a new
  visitor's page wait 24-46 s to load. Slowed down instead, such a tab left the
  server its backlog: every message waiting in the connection's buffers, read
  at the slow pace long after the tab had gone.

`BrowserMessages`, ASGI middleware on the app's server (app.py), lets each tab
send BURST messages at once (FIRST as it connects) and PACE a second after that:
a person clicking, a page's refresh every second and an upload's requests stay
well within. A tab that sends more is hung up (1008, "policy violation"), what
it sent still unread: a page whose connection closes reconnects by itself and
draws afresh. A script that reconnects after every hang-up is not bounded here:
each connection is a new session, and a bound for them would have to be one per
address, which a class behind one school address shares.
"""
from __future__ import annotations

import logging
import time

PACE = 5        # messages a second a tab may send, on average
BURST = 30      # ... and at once, after a pause
# ... and at once as it connects (a page's first moments send 2 or 3): a script that reconnects after every
# hang-up gets this many reruns a connection, not BURST.
FIRST = 10
# The messages a page of this app sends: a rerun (a widget, a page, a fragment's refresh), a stop, the
# heartbeat, an upload's address, a widget's request of the server.
ALLOWED = frozenset({"rerun_script", "stop_script", "app_heartbeat", "file_urls_request",
                     "backend_operation_request"})
STREAM = "/_stcore/stream"
SAID_EVERY_S = 60     # the server's log says tabs were hung up at most this often: a script may reconnect without end
_hang_ups = {"said_at": None, "since": 0}
_log = logging.getLogger(__name__)


class Allowance:
    """A token bucket: `take` is True while the tab is within FIRST messages as it connects, BURST at once
    after a pause, and PACE a second."""

    def __init__(self):
        self.tokens, self.at = float(FIRST), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(BURST, self.tokens + (now - self.at) * PACE)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def kind(payload: bytes | None) -> str | None:
    """The kind of Streamlit message `payload` is; None for one that is not one (Streamlit closes the
    connection for it)."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    try:
        return BackMsg.FromString(payload or b"").WhichOneof("type")
    except Exception:       # protobuf's DecodeError, or bytes that are no message at all
        return None


def _say_hung_up() -> None:
    """One line in the server's log for the tabs hung up, at most every SAID_EVERY_S."""
    now, _hang_ups["since"] = time.monotonic(), _hang_ups["since"] + 1
    if _hang_ups["said_at"] is None or now - _hang_ups["said_at"] >= SAID_EVERY_S:
        _log.warning("%d browser connection(s) sent more than a person's %d messages at once and %d a second, "
                     "and were closed.", _hang_ups["since"], BURST, PACE)
        _hang_ups.update(said_at=now, since=0)


class BrowserMessages:
    """ASGI middleware: a tab's websocket messages within its allowance, its developer-only ones dropped."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket" or not scope.get("path", "").endswith(STREAM):
            await self.app(scope, receive, send)
            return
        allowance, told, hung_up = Allowance(), set(), []

        async def within_allowance():
            while True:
                message = await receive()
                if message["type"] != "websocket.receive":
                    return message
                if not allowance.take():
                    _say_hung_up()
                    hung_up.append(True)
                    await send({"type": "websocket.close", "code": 1008, "reason": ""})
                    return {"type": "websocket.disconnect", "code": 1008}
                said = kind(message.get("bytes"))
                if said is None or said in ALLOWED:
                    return message
                if said not in told:        # once a connection: a script sending it again is not logged again
                    told.add(said)
                    _log.warning("A browser sent %r, which only a developer's may: it was ignored.", said)

        async def unless_hung_up(message):
            if not hung_up:         # what Streamlit had queued for the tab: it hears of the hang-up only now
                await send(message)

        await self.app(scope, within_allowance, unless_hung_up)
