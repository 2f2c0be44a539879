"""A budget for the uploads a server keeps in memory: per visitor, and for the whole server.

Streamlit keeps every uploaded file's bytes in memory until the visitor removes
it or leaves, and limits only each file's size (`server.maxUploadSize`, 25 MB
here), not how many a visitor sends: one visitor dropping a hundred large files
on the Predict page, or a script sending them straight to the upload address,
could take gigabytes of a server that thirty students share. Nor is a count
bounded by bytes alone: 30 MB of 1 KB pictures is 30,000 of them, each read and
answered on the Predict page, minutes of a core.

`UploadBudget`, ASGI middleware on the app's server (app.py), answers an upload
with 413 before reading its body when it would take what one browser keeps
(uploads held plus uploads arriving) past `CIFAR_UPLOAD_SESSION_MB` or
`CIFAR_UPLOAD_SESSION_FILES` files, or what the whole server keeps past
`CIFAR_UPLOAD_SERVER_MB`. A browser is its identity cookie (identity.py), so
seven tabs of one browser share one budget: Streamlit keeps uploads per tab
(its session), and a student with seven tabs open on Predict would otherwise
hold seven budgets of the server's. An upload without a valid cookie counts
against its tab alone, as every tab did before. An upload must say
its size (every browser does): one that does not is refused (411), so the bytes
in flight are known before they arrive. The refused file gets Streamlit's red
mark in the browser, and the Predict page says in words what the mark means.
An upload that then sends nothing for UPLOAD_IDLE_S is given up, and its room
freed.

A full server makes room, fairly: a browser is only a cookie, and cookies are
free, so a script with seven cookies (or one student's seven private windows)
could hold the whole server's budget and have every other student's photo
refused. When the server is full, an upload that keeps its browser within a fair
share (the server's budget divided among every browser holding uploads, its own
included) is let in by letting go of the oldest uploads of the browsers holding
the most, only those above the fair share and only down to it (in whole
pictures), and only where that makes room enough: a student within the share
never loses a picture to anyone, nor anyone a picture for an upload then
refused. The Predict page tells a browser whose pictures were let go, in a
sentence (`pictures_let_go_for_room`). Uploads still arriving count as held:
they are cut first (the browser marks the file red), so a script that
declares large uploads and then sends them a byte at a time holds no room
another student needs. One cut after its last byte, while Streamlit still
parses and keeps it, is let go before it is answered (`_refused_if_cut`).

Before it counts, it lets go of what sessions that are gone still hold
(`let_go_of_departed`): Streamlit itself never does, once a closed tab's session
has outlived the two minutes it is kept for a reconnect.
"""
from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable

import anyio
from starlette.requests import ClientDisconnect

from app_pages.identity import token_in
from cifar_core import settings

LET_GO_EVERY_S = 30.0    # how often any request lets go of departed sessions' files (an upload always does)
UPLOAD_PATH = re.compile(r"/_stcore/upload_file/(?P<session>[^/]+)/(?P<file>[^/]+)$")

# () -> {session id: (bytes that session holds, files that session holds)}, for every session holding any
Held = Callable[[], dict[str, tuple[int, int]]]
# (session id, bytes wanted) -> (bytes, files) let go of that session's uploads, its oldest first
MakeRoom = Callable[[str, int], tuple[int, int]]
# (session id, file id) -> None: that one upload let go, if it is kept
LetGoOfFile = Callable[[str, str], None]

# Sessions some of whose uploads were let go to make room for another browser's: {session id: pictures}.
# Read and forgotten by that session's Predict page; forgotten too once the session is gone.
_let_go_for_room: dict[str, int] = {}


def _uploads_in_memory():
    """(Streamlit's upload manager, its files by session), or (None, {}) where there is no runtime or the
    manager keeps files elsewhere than in memory."""
    from streamlit.runtime import Runtime
    if not Runtime.exists():
        return None, {}
    manager = Runtime.instance().uploaded_file_mgr
    storage = getattr(manager, "file_storage", None)
    return (manager, storage) if isinstance(storage, dict) else (None, {})


def held_by_streamlit() -> dict[str, tuple[int, int]]:
    """The uploaded bytes and files Streamlit keeps for each browser session, from its upload manager.
    Empty where the manager keeps files elsewhere than in memory: then only arriving uploads count."""
    _, storage = _uploads_in_memory()
    # Copied first (list() of a dict holds the interpreter's lock throughout): a page's script thread may
    # let go of its browser's files (`let_go_of_uploads`) while this event loop thread counts them.
    return {sid: (sum(len(rec.data) for rec in records), len(records))
            for sid, files in list(storage.items()) for records in [list(files.values())]}


def let_go_of_departed() -> None:
    """Free what Streamlit keeps for browser sessions that are gone: their uploads and the pictures their
    pages showed. A closed tab's session is kept two minutes for a reconnect, then dropped without being
    shut down (Streamlit 1.67), and only its shutdown frees them: a class that uploaded photos and
    closed its tabs held the server's whole upload budget until a restart. Call it on the server's event
    loop, where Streamlit keeps and drops its sessions."""
    from streamlit.runtime import Runtime
    if not Runtime.exists():
        return
    runtime = Runtime.instance()
    sessions = getattr(runtime, "_session_mgr", None)
    if sessions is None or not hasattr(sessions, "get_session_info"):
        return      # another Streamlit: it may free them itself, and this cannot tell who is gone
    uploads, media = runtime.uploaded_file_mgr, runtime.media_file_mgr
    holding = set(getattr(uploads, "file_storage", None) or ()) | set(
        getattr(media, "_files_by_session_and_coord", None) or ())
    departed = [sid for sid in holding if sessions.get_session_info(sid) is None]
    for sid in [sid for sid in list(_let_go_for_room) if sessions.get_session_info(sid) is None]:
        _let_go_for_room.pop(sid, None)
    for sid in departed:
        uploads.remove_session_files(sid)
        media.clear_session_refs(sid)
    if departed:
        media.remove_orphaned_files()


def let_go_of_uploads() -> None:
    """Free every upload the current browser session holds. For pages without an uploader: Streamlit
    keeps a session's uploads until it ends, even after the visitor has left the Predict page and its
    uploader has forgotten them, so a class that uploaded photos and moved on to the Quiz held the
    server's whole budget for the rest of the lesson."""
    from streamlit.runtime import Runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx
    context = get_script_run_ctx()
    if context is not None and Runtime.exists():
        Runtime.instance().uploaded_file_mgr.remove_session_files(context.session_id)


def let_go_of_oldest(session: str, wanted: int) -> tuple[int, int]:
    """Let go of at least `wanted` bytes of the uploads Streamlit keeps for `session`, its oldest first
    (Streamlit keeps them in the order they came): (bytes, files) let go."""
    manager, storage = _uploads_in_memory()
    freed = files = 0
    for file_id, record in list(storage.get(session, {}).items()):
        if freed >= wanted:
            break
        manager.remove_file(session, file_id)
        freed, files = freed + len(record.data), files + 1
    return freed, files


def let_go_of_file(session: str, file_id: str) -> None:
    """Let go of one upload Streamlit keeps for `session`, if it does."""
    manager, _ = _uploads_in_memory()
    if manager is not None:
        manager.remove_file(session, file_id)


def pictures_let_go_for_room() -> int:
    """How many of the current browser session's uploads were let go to make room for other browsers'
    since it last asked (then forgotten)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx
    context = get_script_run_ctx()
    return _let_go_for_room.pop(context.session_id, 0) if context is not None else 0


def _refused_by_streamlit(scope, session: str, size: int) -> bool:
    """Whether Streamlit will refuse this upload before reading it (Streamlit 1.67's checks, in its order:
    the XSRF token, a session that is not running, a size past `server.maxUploadSize`). Made room for
    first, other browsers' pictures were let go for an upload then refused: a script sending such uploads
    could empty everyone's. False where this Streamlit has none of those checks to ask."""
    try:
        from streamlit import config
        from streamlit.runtime import Runtime
        from streamlit.web.server.server_util import is_xsrf_enabled
        from streamlit.web.server.starlette.starlette_app_utils import validate_xsrf_token
        from streamlit.web.server.starlette.starlette_server_config import XSRF_COOKIE_NAME
    except ImportError:
        return False
    if not Runtime.exists():    # not served by Streamlit: nothing below will check
        return False
    from starlette.requests import Request
    request = Request(scope)
    if is_xsrf_enabled() and not validate_xsrf_token(request.headers.get("X-Xsrftoken"),
                                                     request.cookies.get(XSRF_COOKIE_NAME)):
        return True
    if not Runtime.instance().is_active_session(session):
        return True
    return size > config.get_option("server.maxUploadSize") * 1024 * 1024


UPLOAD_IDLE_S = 30.0     # an upload that sends nothing for this long is given up: its place in the budget freed


class _Arriving:
    """One upload being received: its declared size, counted from its first byte, until it ends or is cut."""
    __slots__ = ("size", "cut")

    def __init__(self, size: int):
        self.size, self.cut = size, False


def _given_up_when_idle_or_cut(receive, upload: _Arriving):
    """`receive` for an upload, which ends it as if the browser had left once nothing has come for
    UPLOAD_IDLE_S, or once it was cut to make room: an upload is counted at its full size from its first
    byte, so one that said 25 MB and then sent nothing held that much of the server's budget for as long
    as its connection lasted. A cut upload's next chunk ends it: what it sent so far is let go with it."""
    async def receive_or_give_up():
        if not upload.cut:
            with anyio.move_on_after(UPLOAD_IDLE_S):
                message = await receive()
                if not upload.cut:
                    return message
        return {"type": "http.disconnect"}
    return receive_or_give_up


STOPPED_SENDING = (f"This picture stopped arriving for {UPLOAD_IDLE_S:.0f} seconds, so the server let it go: "
                   "please upload it again.")
CUT_FOR_ROOM = ("The server needed the room this picture would take for other people's pictures: please "
                "upload it again in a minute.")


def _refused_if_cut(send, upload: _Arriving, let_go: Callable[[], None]):
    """`send` for an upload, which answers 413 in place of the app's answer where the upload was cut to make
    room after its last byte had come: a cut ends an upload at its next chunk, and after the last one the
    app still parses and keeps it (Streamlit: a thread for a file over a megabyte), so the room made would
    be taken after all. The kept file is let go (`let_go`) before the browser hears of it."""
    replaced = False

    async def send_or_refuse(message):
        nonlocal replaced
        if message["type"] == "http.response.start" and upload.cut:
            replaced = True
            let_go()
            for refusal in _refuse(413, CUT_FOR_ROOM):
                await send(refusal)
        elif not replaced:
            await send(message)
    return send_or_refuse


def _refuse(status: int, sentence: str, close: bool = False):
    """A refusal in a sentence. With `close`, the connection is closed after it: an upload given up while
    its body still came a byte at a time kept a kept-alive connection open with each byte. Not for a
    refusal before the body is sent: a browser still sending it would see the connection reset, not the
    sentence."""
    body = sentence.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    return ({"type": "http.response.start", "status": status, "headers": headers + [(b"connection", b"close")] * close},
            {"type": "http.response.body", "body": body})


class UploadBudget:
    """ASGI middleware: refuse an upload that would take a session or the server past its budget."""

    def __init__(self, app, held: Held = held_by_streamlit, let_go: Callable[[], None] = let_go_of_departed,
                 make_room: MakeRoom = let_go_of_oldest, let_go_of_file: LetGoOfFile = let_go_of_file):
        self.app = app
        self.held = held
        self.let_go = let_go
        self.make_room = make_room
        self.let_go_of_file = let_go_of_file
        self.let_go_at = 0.0                       # when departed sessions' files were last let go
        self.arriving: Counter[str] = Counter()     # bytes of uploads being received, by session
        self.arriving_files: Counter[str] = Counter()    # uploads being received, by session
        self.uploads: dict[str, list[_Arriving]] = {}    # the uploads being received, by session, oldest first
        self.browser_of: dict[str, str] = {}       # session -> the browser that uploaded to it (its cookie)

    def _browser(self, session: str, scope, kept: dict[str, tuple[int, int]]) -> set[str]:
        """Every session of the browser uploading to `session`: those its cookie uploaded to before,
        still holding or receiving uploads. Sessions that hold nothing any more are forgotten here, so
        the map stays as small as the uploads kept."""
        self.browser_of = {s: b for s, b in self.browser_of.items() if s in kept or s in self.arriving}
        self.browser_of[session] = token_in(scope["headers"], scope.get("scheme") == "https") or f"session:{session}"
        return {s for s, b in self.browser_of.items() if b == self.browser_of[session]}

    def _room_made(self, browser: str, wanted: int, over: int, kept: dict[str, tuple[int, int]], limit: int) -> bool:
        """Let go of `over` bytes for `browser`, which would hold `wanted` with its upload, from the
        browsers holding more than a fair share of the server's `limit` (see the module docstring): only
        while `browser` stays within the share, largest holder first, each only down to the share, only
        uploads already kept. Whether that much room was made."""
        holders: dict[str, list[str]] = {}
        for s in set(kept) | set(self.arriving):
            holders.setdefault(self.browser_of.get(s, f"session:{s}"), []).append(s)

        def holding(who: str) -> int:
            return sum(kept.get(s, (0, 0))[0] + self.arriving[s] for s in holders.get(who, ()))
        def freeable(who: str) -> int:     # what is kept, and what is arriving here (and can be cut)
            return sum(kept.get(s, (0, 0))[0] + sum(u.size for u in self.uploads.get(s, ()))
                       for s in holders[who])
        fair = limit // len(set(holders) | {browser})
        others = set(holders) - {browser}
        if wanted > fair or sum(min(max(holding(w) - fair, 0), freeable(w)) for w in others) < over:
            return False      # past its share, or not room enough above the others' shares: nobody loses a picture
        for who in sorted(others, key=holding, reverse=True):
            excess = holding(who) - fair
            if over <= 0 or excess <= 0:
                break         # room made, or every browser left holds its share or less
            for s in sorted(holders[who], key=lambda s: kept.get(s, (0, 0))[0] + self.arriving[s], reverse=True):
                # What is still arriving first: nothing of it has been answered yet.
                for upload in list(self.uploads.get(s, ())):
                    if over <= 0 or excess <= 0:
                        break
                    self._cut(s, upload)
                    over, excess = over - upload.size, excess - upload.size
                if over <= 0 or excess <= 0:
                    break
                freed, files = self.make_room(s, min(over, excess, kept.get(s, (0, 0))[0]))
                if files:
                    _let_go_for_room[s] = _let_go_for_room.get(s, 0) + files
                over, excess = over - freed, excess - freed
        return over <= 0

    def _arrives(self, session: str, upload: _Arriving) -> None:
        self.arriving[session] += upload.size
        self.arriving_files[session] += 1
        self.uploads.setdefault(session, []).append(upload)

    def _cut(self, session: str, upload: _Arriving) -> None:
        """No longer counted: ended, or cut to make room (its next chunk then ends it)."""
        upload.cut = True
        self.uploads[session].remove(upload)
        self.arriving[session] -= upload.size
        self.arriving_files[session] -= 1
        if not self.uploads[session]:
            del self.arriving[session], self.arriving_files[session], self.uploads[session]

    async def __call__(self, scope, receive, send):
        match = UPLOAD_PATH.search(scope.get("path", "")) if scope["type"] == "http" else None
        upload = match is not None and scope["method"] == "PUT"
        if upload or time.monotonic() - self.let_go_at > LET_GO_EVERY_S:   # every upload counts only the living
            self.let_go_at = time.monotonic()
            self.let_go()
        if not upload:
            await self.app(scope, receive, send)
            return
        session = match["session"]
        length = dict(scope["headers"]).get(b"content-length", b"")
        if not length.isdigit():
            for message in _refuse(411, "An upload must say its size (Content-Length)."):
                await send(message)
            return
        size = int(length)
        if _refused_by_streamlit(scope, session, size):
            await self.app(scope, receive, send)     # its own answer (403, 400 or 413), before any room is made
            return
        kept = self.held()
        sessions = self._browser(session, scope, kept)
        mine = sum(kept.get(s, (0, 0))[0] + self.arriving[s] for s in sessions)
        files = sum(kept.get(s, (0, 0))[1] + self.arriving_files[s] for s in sessions)
        everyone = sum(held for held, _ in kept.values()) + sum(self.arriving.values())
        limits = settings.get()
        if files >= limits.upload_session_files:
            sentence = (f"This browser already holds {files} pictures; up to {limits.upload_session_files} can be "
                        "uploaded at once. Remove some and try again.")
        elif size > limits.upload_session_mb << 20:      # a server set a browser's room below one file's limit
            sentence = (f"This file is {size / 2**20:.1f} MB; this server takes up to {limits.upload_session_mb} MB "
                        "of pictures from a browser at once. Save it smaller and try again.")
        elif mine + size > limits.upload_session_mb << 20:
            sentence = (f"This browser already holds {mine / 2**20:.0f} MB of pictures; up to "
                        f"{limits.upload_session_mb} MB can be uploaded at once. Remove some and try again.")
        elif everyone + size > limits.upload_server_mb << 20 and not self._room_made(
                self.browser_of[session], mine + size, everyone + size - (limits.upload_server_mb << 20), kept,
                limits.upload_server_mb << 20):
            sentence = ("The server holds as many uploaded pictures as it can right now. They are let go as "
                        "people remove theirs or leave the Predict page: please try again in a minute.")
        else:
            sentence = None
        if sentence:
            for message in _refuse(413, sentence):
                await send(message)
            return
        upload = _Arriving(size)
        self._arrives(session, upload)
        answered = []

        async def send_noted(message):
            answered.append(message["type"])
            await send(message)
        try:
            await self.app(scope, _given_up_when_idle_or_cut(receive, upload),
                           _refused_if_cut(send_noted, upload, lambda: self.let_go_of_file(session, match["file"])))
        except ClientDisconnect:     # given up or cut here, or the browser left: nothing to log
            if not answered:     # a browser still there hears why (else the server answered 500 and logged an error)
                for message in _refuse(408 if not upload.cut else 413,
                                       STOPPED_SENDING if not upload.cut else CUT_FOR_ROOM, close=True):
                    await send(message)
        finally:
            if not upload.cut:
                self._cut(session, upload)
