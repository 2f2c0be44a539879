"""Uploads within a budget: per browser and per server, refused before their bytes are read."""
from __future__ import annotations

import asyncio

import pytest

from app_pages.identity import COOKIE
from app_pages.upload_budget import UploadBudget, held_by_streamlit

MB = 1 << 20


@pytest.fixture(autouse=True)
def budgets(monkeypatch):
    monkeypatch.setenv("CIFAR_UPLOAD_SESSION_MB", "30")
    monkeypatch.setenv("CIFAR_UPLOAD_SERVER_MB", "100")
    monkeypatch.setenv("CIFAR_UPLOAD_SESSION_FILES", "100")


def cookie(browser: str) -> list[tuple[bytes, bytes]]:
    """A request's headers from a browser with an identity cookie (a well-formed token, one per name)."""
    return [(b"cookie", f"other=1; {COOKIE}={browser.replace(' ', '-')[:43].ljust(43, 'x')}".encode())]


def put(middleware, session, size, path=None, method="PUT", headers=None, browser=None, scheme="http"):
    """(status or None where the request went on to Streamlit, the sentence sent back)."""
    passed, sent = [], []

    async def app(scope, receive, send):
        passed.append(scope["path"])

    async def send(message):
        sent.append(message)

    middleware.app = app
    headers = [(b"content-length", str(size).encode())] if headers is None else headers
    headers = headers + (cookie(browser) if browser else [])
    scope = {"type": "http", "method": method, "headers": headers, "scheme": scheme,
             "path": path or f"/_stcore/upload_file/{session}/file-{len(passed)}"}
    asyncio.run(middleware(scope, None, send))
    if passed:
        return None, ""
    return sent[0]["status"], sent[1]["body"].decode()


def test_uploads_within_the_budget_go_on_and_past_it_are_refused_in_a_sentence():
    kept = {"a": 25 * MB}
    budget = UploadBudget(None, held=lambda: {s: (b, 1) for s, b in kept.items()})
    assert put(budget, "a", 4 * MB) == (None, "")
    status, sentence = put(budget, "a", 6 * MB)
    assert status == 413 and sentence == ("This browser already holds 25 MB of pictures; up to 30 MB can be "
                                          "uploaded at once. Remove some and try again.")
    # Another visitor is not held back by the first one's pictures.
    assert put(budget, "b", 20 * MB) == (None, "")
    # One file over a browser's whole room (a server set it below a file's limit) is not blamed on "0 MB" held.
    assert put(budget, "c", 31 * MB) == (413, "This file is 31.0 MB; this server takes up to 30 MB of pictures "
                                              "from a browser at once. Save it smaller and try again.")


def test_the_whole_server_has_a_budget_too():
    kept = {f"visitor {i}": 20 * MB for i in range(5)}     # 100 MB held, the server's budget
    budget = UploadBudget(None, held=lambda: {s: (b, 1) for s, b in kept.items()},
                          make_room=lambda session, wanted: (0, 0))     # nothing can be let go
    status, sentence = put(budget, "newcomer", MB)
    assert status == 413 and "try again in a minute" in sentence


class Pictures:
    """Uploads kept per session, whole pictures in the order they came, as Streamlit keeps them."""

    def __init__(self, **sessions: list[int]):
        self.kept = {session: list(sizes) for session, sizes in sessions.items()}
        self.let_go: list[tuple[str, int]] = []

    def held(self):
        return {s: (sum(sizes), len(sizes)) for s, sizes in self.kept.items() if sizes}

    def make_room(self, session, wanted):
        freed = files = 0
        while self.kept.get(session) and freed < wanted:
            size = self.kept[session].pop(0)
            self.let_go.append((session, size))
            freed, files = freed + size, files + 1
        return freed, files


def test_a_full_server_lets_go_of_the_biggest_holders_oldest_pictures_for_a_browser_within_its_share():
    """A script with four cookies holds 80 MB of the server's 100, a student 15 MB: another student's
    6 MB photo is let in. Six browsers hold uploads with the newcomer, so a fair share is 16 MB of the
    100: the room comes from a biggest holder, never from the student within the share."""
    from app_pages import upload_budget
    pictures = Pictures(**{f"script {i}": [10 * MB, 10 * MB] for i in range(4)}, student=[5 * MB] * 3)
    budget = UploadBudget(None, held=pictures.held, make_room=pictures.make_room)
    for i in range(4):
        budget.browser_of[f"script {i}"] = f"cookie {i}"
    budget.browser_of["student"] = "a student"
    assert put(budget, "newcomer", 6 * MB, browser="newcomer") == (None, "")
    [(script, size)] = pictures.let_go                            # one whole picture, the oldest
    assert script.startswith("script") and size == 10 * MB and pictures.kept[script] == [10 * MB]
    assert upload_budget._let_go_for_room.pop(script) == 1
    assert pictures.kept["student"] == [5 * MB] * 3
    # More than a fair share is not made room for: refused, and nobody loses a picture.
    status, sentence = put(budget, "greedy", 25 * MB, browser="greedy")
    assert status == 413 and "try again in a minute" in sentence
    assert len(pictures.let_go) == 1 and not upload_budget._let_go_for_room


def test_no_picture_is_let_go_for_an_upload_streamlit_will_refuse_unread(monkeypatch):
    """Room was made before Streamlit looked at the upload: a script sending uploads without the XSRF
    token, to a session that is not running, or past the size any upload may have, had other browsers'
    pictures let go, over and over, for uploads Streamlit then refused."""
    from streamlit.runtime import Runtime
    from streamlit.web.server.starlette.starlette_app_utils import generate_xsrf_token_string
    from streamlit.web.server.starlette.starlette_server_config import XSRF_COOKIE_NAME

    from app_pages import upload_budget
    monkeypatch.setattr(upload_budget, "_let_go_for_room", {})      # the scripts' pictures let go: this test's own
    running = {"a running tab"}
    monkeypatch.setattr(Runtime, "exists", staticmethod(lambda: True))
    monkeypatch.setattr(Runtime, "instance", staticmethod(
        lambda: type("Runtime", (), {"is_active_session": lambda self, session: session in running})()))
    token = generate_xsrf_token_string()
    xsrf = [(b"x-xsrftoken", token.encode()), (b"cookie", f"{XSRF_COOKIE_NAME}={token}".encode())]

    def full_server():
        pictures = Pictures(**{f"script {i}": [10 * MB, 10 * MB] for i in range(5)})
        budget = UploadBudget(None, held=pictures.held, make_room=pictures.make_room)
        for i in range(5):
            budget.browser_of[f"script {i}"] = f"cookie {i}"
        return pictures, budget
    for session, headers in (("a running tab", [(b"content-length", str(6 * MB).encode())]),     # no token
                             ("no such tab", [(b"content-length", str(6 * MB).encode()), *xsrf]),
                             ("a running tab", [(b"content-length", str(26 * MB).encode()), *xsrf])):
        pictures, budget = full_server()
        assert put(budget, session, 0, headers=headers) == (None, "")      # Streamlit's to refuse
        assert pictures.let_go == [] and not budget.arriving
    pictures, budget = full_server()
    assert put(budget, "a running tab", 0, headers=[(b"content-length", str(6 * MB).encode()), *xsrf]) == (None, "")
    assert len(pictures.let_go) == 1          # a real upload, within its share: room made


def test_room_comes_only_from_above_the_fair_share():
    """Twenty browsers of 5 MB each fill the server: with a newcomer, a fair share is 4.7 MB, so one
    asking for 6 MB asks past it and is refused, and nobody loses a picture. Five browsers of 20 MB
    each: a share is 16.7 MB, and a newcomer's 4 MB is made room for from one of them."""
    pictures = Pictures(**{f"student {i}": [5 * MB] for i in range(20)})
    budget = UploadBudget(None, held=pictures.held, make_room=pictures.make_room)
    assert put(budget, "newcomer", 6 * MB, browser="newcomer")[0] == 413
    assert pictures.let_go == []
    pictures = Pictures(**{f"student {i}": [4 * MB] * 5 for i in range(5)})
    budget = UploadBudget(None, held=pictures.held, make_room=pictures.make_room)
    for i in range(5):
        budget.browser_of[f"student {i}"] = f"student {i}"
    assert put(budget, "newcomer", 4 * MB, browser="newcomer") == (None, "")
    assert len(pictures.let_go) == 1


def test_no_picture_is_let_go_for_an_upload_that_would_still_be_refused():
    """Two browsers of 45 MB fill the server with a third holding 10: with a newcomer a share is 25 MB,
    and the two hold 20 MB each above it, but 38 MB of each is still arriving through another server process,
    which this one cannot cut: a 25 MB upload needs 25 MB of room that their 14 MB of kept pictures cannot
    make. Refused, and both keep their pictures."""
    pictures = Pictures(a=[7 * MB], b=[7 * MB], c=[10 * MB])
    budget = UploadBudget(None, held=pictures.held, make_room=pictures.make_room)
    for s in "abc":
        budget.browser_of[s] = f"browser {s}"
    budget.arriving.update({"a": 38 * MB, "b": 38 * MB})
    assert put(budget, "newcomer", 25 * MB, browser="newcomer")[0] == 413
    assert pictures.let_go == []


def test_uploads_sent_a_byte_at_a_time_hold_no_room_a_student_needs(monkeypatch):
    """Eight cookies each start a 25 MB upload and send it a byte now and then: counted from their first byte,
    they held the server's whole budget, and every student's photo was refused for as long as they trickled.
    A full server cuts what is still arriving above a fair share first, as it lets go of kept pictures."""
    from app_pages import upload_budget
    monkeypatch.setenv("CIFAR_UPLOAD_SERVER_MB", "200")
    budget = UploadBudget(None, held=dict, make_room=lambda session, wanted: (0, 0))
    statuses, ended = {}, []

    async def streamlit(scope, receive, send):       # reads the body as Starlette does, until it ends
        from starlette.requests import Request
        async for _ in Request(scope, receive).stream():
            pass
        ended.append(scope["path"])

    def trickle():
        async def receive():
            await asyncio.sleep(0.05)
            return {"type": "http.request", "body": b"x", "more_body": True}
        return receive

    async def upload(session, size, receive, browser):
        sent = []

        async def send(message):
            sent.append(message)
        scope = {"type": "http", "method": "PUT", "path": f"/_stcore/upload_file/{session}/f",
                 "headers": [(b"content-length", str(size).encode()), *cookie(browser)]}
        await budget(scope, receive, send)
        statuses[session] = sent[0]["status"] if sent else None

    async def whole(size):
        async def receive():
            return {"type": "http.request", "body": b"x" * size, "more_body": False}
        return receive

    async def main():
        budget.app = streamlit
        scripts = [asyncio.create_task(upload(f"script {i}", 25 * MB, trickle(), f"script {i}")) for i in range(8)]
        await asyncio.sleep(0.2)
        assert sum(budget.arriving.values()) == 200 * MB          # the server is full of trickles
        await upload("student", 3 * MB, await whole(3 * MB), "student")
        await asyncio.sleep(0.2)
        for task in scripts:
            task.cancel()
        await asyncio.gather(*scripts, return_exceptions=True)

    asyncio.run(main())
    assert statuses["student"] is None and "/_stcore/upload_file/student/f" in ended     # let in, and read whole
    # One trickle was cut for it (its request ended, told why); the other seven were still trickling when stopped.
    assert [statuses.get(f"script {i}", "trickling") for i in range(8)].count(413) == 1
    assert not any(f"script {i}" in upload_budget._let_go_for_room for i in range(8))     # no kept picture lost
    assert not budget.arriving and not budget.uploads


def test_pictures_let_go_are_taken_from_streamlits_upload_manager_oldest_first(monkeypatch):
    from streamlit.runtime import Runtime
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
    from streamlit.runtime.uploaded_file_manager import UploadedFileRec

    from app_pages.upload_budget import let_go_of_oldest
    manager = MemoryUploadedFileManager("/_stcore/upload_file")
    for i, size in enumerate((300, 500, 700)):
        manager.add_file("a", UploadedFileRec(f"{i}", f"{i}.jpg", "image/jpeg", bytes(size)))

    class FakeRuntime:
        uploaded_file_mgr = manager
    monkeypatch.setattr(Runtime, "exists", staticmethod(lambda: True))
    monkeypatch.setattr(Runtime, "instance", staticmethod(lambda: FakeRuntime))
    assert let_go_of_oldest("a", 600) == (800, 2)
    assert held_by_streamlit() == {"a": (700, 1)} and let_go_of_oldest("nobody", 10) == (0, 0)


def at_once(budget, uploads: int, size: int) -> tuple[list, tuple[int, int]]:
    """`uploads` uploads of `size` bytes for one session, all arriving at once: (each one's status, None
    where it went on to Streamlit; (bytes, uploads) counted as arriving while they were all in flight)."""
    statuses, release = [], asyncio.Event()

    async def slow_app(scope, receive, send):
        await release.wait()

    async def one(i):
        sent = []

        async def send(message):
            sent.append(message)
        scope = {"type": "http", "method": "PUT", "headers": [(b"content-length", str(size).encode())],
                 "path": f"/_stcore/upload_file/s/f{i}"}
        await budget(scope, None, send)
        statuses.append(sent[0]["status"] if sent else None)

    async def main():
        budget.app = slow_app
        tasks = [asyncio.create_task(one(i)) for i in range(uploads)]
        await asyncio.sleep(0.05)
        arriving = sum(budget.arriving.values()), sum(budget.arriving_files.values())
        release.set()
        await asyncio.gather(*tasks)
        return arriving
    return statuses, asyncio.run(main())


def test_uploads_arriving_at_once_count_before_they_are_kept():
    """Ten uploads in flight for one session: their declared sizes count while they arrive, so the bytes
    in flight are bounded too, and each one's reservation ends with its request."""
    budget = UploadBudget(None, held=dict)
    statuses, arriving = at_once(budget, 10, 8 * MB)
    assert arriving == (24 * MB, 3)       # three fit in 30 MB; seven were refused at once
    assert statuses.count(None) == 3 and statuses.count(413) == 7
    assert not budget.arriving and not budget.arriving_files


def test_a_browser_may_hold_so_many_pictures_however_small():
    """30 MB of 1 KB pictures would be 30,000 of them, each read and answered on the Predict page."""
    held = {"a": 99}
    budget = UploadBudget(None, held=lambda: {s: (n * 1024, n) for s, n in held.items()})
    assert put(budget, "a", 1024) == (None, "")
    held["a"] = 100
    assert put(budget, "a", 1024) == (413, "This browser already holds 100 pictures; up to 100 can be uploaded "
                                            "at once. Remove some and try again.")
    assert put(budget, "b", 1024) == (None, "")       # another visitor is not held back


def test_uploads_arriving_at_once_count_as_pictures_too(monkeypatch):
    monkeypatch.setenv("CIFAR_UPLOAD_SESSION_FILES", "5")
    budget = UploadBudget(None, held=dict)
    statuses, arriving = at_once(budget, 40, 1024)
    assert arriving == (5 * 1024, 5)
    assert statuses.count(None) == 5 and statuses.count(413) == 35
    assert not budget.arriving and not budget.arriving_files


def test_an_upload_that_does_not_say_its_size_is_refused():
    budget = UploadBudget(None, held=dict)
    for headers in ([], [(b"content-length", b"-5")], [(b"content-length", b"lots")],
                    [(b"transfer-encoding", b"chunked")]):
        status, sentence = put(budget, "a", 0, headers=headers)
        assert status == 411 and "must say its size" in sentence


def test_everything_else_goes_on_untouched():
    budget = UploadBudget(None, held=lambda: {"a": (10**12, 10**6)})    # over every budget: only uploads would be refused
    assert put(budget, "a", 5 * MB, method="DELETE") == (None, "")
    assert put(budget, "a", 5 * MB, path="/_stcore/upload_file/a") == (None, "")
    assert put(budget, "a", 5 * MB, path="/predict") == (None, "")
    assert put(budget, "a", 5 * MB, path="/_stcore/upload_file/a/f/../../x") == (None, "")


def test_held_bytes_are_read_from_streamlits_upload_manager():
    from streamlit.runtime import Runtime
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
    from streamlit.runtime.uploaded_file_manager import UploadedFileRec
    assert held_by_streamlit() == {} or Runtime.exists()
    manager = MemoryUploadedFileManager("/_stcore/upload_file")
    manager.add_file("a", UploadedFileRec("1", "x.jpg", "image/jpeg", b"x" * 1000))
    manager.add_file("a", UploadedFileRec("2", "y.jpg", "image/jpeg", b"y" * 500))
    manager.add_file("b", UploadedFileRec("3", "z.jpg", "image/jpeg", b"z" * 20))

    class FakeRuntime:
        uploaded_file_mgr = manager

    original = (Runtime.exists, Runtime.instance)
    Runtime.exists, Runtime.instance = staticmethod(lambda: True), staticmethod(lambda: FakeRuntime)
    try:
        assert held_by_streamlit() == {"a": (1500, 2), "b": (20, 1)}
    finally:
        Runtime.exists, Runtime.instance = original


def test_the_tabs_of_one_browser_share_its_budget():
    """Streamlit keeps uploads per tab; the budget is the browser's (its identity cookie), so a student
    with several tabs on Predict holds one budget of the server's, not one a tab."""
    kept = {"tab 1": 20 * MB, "tab 2": 5 * MB}
    budget = UploadBudget(None, held=lambda: {s: (b, 1) for s, b in kept.items()})
    assert put(budget, "tab 1", MB, browser="student") == (None, "")
    assert put(budget, "tab 2", MB, browser="student") == (None, "")
    status, sentence = put(budget, "tab 3", 6 * MB, browser="student")    # 25 MB in the two others
    assert status == 413 and "already holds 25 MB" in sentence
    assert put(budget, "tab 4", 6 * MB, browser="another student") == (None, "")
    assert put(budget, "tab 5", 6 * MB) == (None, "")          # no cookie: the tab alone, as before


def test_over_https_a_browser_is_known_only_by_its_https_cookie():
    """A plain cookie can be planted by any host of the domain: over HTTPS, as the identity middleware reads a
    browser, tabs carrying only a plain one are each counted alone, never in a planted stranger's budget."""
    kept = {"tab 1": 25 * MB}
    budget = UploadBudget(None, held=lambda: {s: (b, 1) for s, b in kept.items()})
    assert put(budget, "tab 1", MB, browser="planted", scheme="https") == (None, "")
    assert put(budget, "tab 2", 6 * MB, browser="planted", scheme="https") == (None, "")


def test_a_tab_that_let_go_of_its_uploads_no_longer_counts_or_is_remembered():
    kept = {"tab 1": 25 * MB}
    budget = UploadBudget(None, held=lambda: {s: (b, 1) for s, b in kept.items()})
    assert put(budget, "tab 1", MB, browser="student") == (None, "")
    assert put(budget, "tab 2", 6 * MB, browser="student")[0] == 413
    del kept["tab 1"]                                 # that tab left the Predict page
    assert put(budget, "tab 2", 6 * MB, browser="student") == (None, "")
    assert set(budget.browser_of) == {"tab 2"}


def test_sessions_that_are_gone_let_go_of_their_uploads_and_pictures(monkeypatch):
    """Streamlit keeps a closed tab's session two minutes for a reconnect, then drops it without the
    shutdown that frees its files. Its own upload and media managers here, with three sessions: one
    open, one kept for a reconnect, one gone."""
    from streamlit.runtime import Runtime, media_file_manager
    from streamlit.runtime.media_file_manager import MediaFileManager
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
    from streamlit.runtime.uploaded_file_manager import UploadedFileRec

    from app_pages.upload_budget import let_go_of_departed

    class Sessions:
        def get_session_info(self, sid):
            return object() if sid in ("open", "kept for a reconnect") else None

    class FakeRuntime:
        _session_mgr = Sessions()
        uploaded_file_mgr = MemoryUploadedFileManager("/_stcore/upload_file")
        media_file_mgr = MediaFileManager(MemoryMediaFileStorage("/media"))

    runtime = FakeRuntime()
    monkeypatch.setattr(Runtime, "exists", staticmethod(lambda: True))
    monkeypatch.setattr(Runtime, "instance", staticmethod(lambda: runtime))
    for sid in ("open", "kept for a reconnect", "gone"):
        runtime.uploaded_file_mgr.add_file(sid, UploadedFileRec(f"{sid}-photo", "photo.jpg", "image/jpeg",
                                                                bytes(MB)))
        monkeypatch.setattr(media_file_manager, "_get_session_id", lambda sid=sid: sid)
        runtime.media_file_mgr.add(sid.encode() * 1000, "image/png", "1.(2).3")
    assert set(held_by_streamlit()) == {"open", "kept for a reconnect", "gone"}
    let_go_of_departed()
    assert set(held_by_streamlit()) == {"open", "kept for a reconnect"}
    assert len(runtime.media_file_mgr._file_metadata) == 2      # the gone session's picture is deleted

    # The budget lets go of them before it counts an upload: the gone tab's megabyte no longer counts.
    calls = []
    budget = UploadBudget(None, held=held_by_streamlit, let_go=lambda: calls.append(1))
    put(budget, "open", MB)
    assert calls == [1]


def test_an_upload_that_sends_nothing_is_given_up_and_its_room_freed(monkeypatch):
    """An upload is counted at the size it says from its first byte: one that says 25 MB and sends
    nothing more must not hold that room for as long as its connection lasts."""
    from app_pages import upload_budget
    monkeypatch.setattr(upload_budget, "UPLOAD_IDLE_S", 0.2)
    budget = UploadBudget(None, held=lambda: {})
    seen = []

    async def streamlit(scope, receive, send):       # reads the body as Starlette does, until it ends
        from starlette.requests import Request
        async for _ in Request(scope, receive).stream():
            pass
        seen.append("read it all")

    async def silent():
        await asyncio.Event().wait()                 # the connection stays open, and nothing comes

    budget.app = streamlit
    scope = {"type": "http", "method": "PUT", "path": "/_stcore/upload_file/s1/f1",
             "headers": [(b"content-length", str(25 * MB).encode())]}
    sent = []

    async def send(message):
        sent.append(message)
    asyncio.run(asyncio.wait_for(budget(scope, silent, send), 5))     # given up: no error, nothing read
    assert seen == [] and not budget.arriving
    # Answered with why, where the server answered 500 and logged an error for every such upload.
    assert sent[0]["status"] == 408 and b"stopped arriving" in sent[1]["body"]
    # And its connection closed: what is left of the body, not read, kept a kept-alive connection open.
    assert (b"connection", b"close") in sent[0]["headers"]


def test_an_upload_cut_after_its_last_byte_is_not_kept_after_all():
    """A cut ends an upload at its next chunk, but after its last one Streamlit still parses the file (in a
    thread, for one over a megabyte) and keeps it: an upload cut then was kept anyway, and answered 204, and
    the server held more than its budget. It is let go, and its browser told 413 (the file's red mark)."""
    kept: dict[str, dict[str, int]] = {f"student {i}": {"old": 35 * MB // 2} for i in range(4)}
    kept["fifth"] = {"old": 5 * MB}
    budget = UploadBudget(
        None, held=lambda: {s: (sum(f.values()), len(f)) for s, f in kept.items() if f},
        make_room=lambda session, wanted: (0, 0),
        let_go_of_file=lambda session, file_id: kept.get(session, {}).pop(file_id, None))
    for session in kept:
        budget.browser_of[session] = session
    statuses = {}
    parsing = asyncio.Event()

    async def streamlit(scope, receive, send):       # Streamlit's upload handler, its parse taking a while
        from starlette.requests import Request
        body = b"".join([chunk async for chunk in Request(scope, receive).stream()])
        parsing.set()
        await asyncio.sleep(0.2)
        session, file_id = scope["path"].split("/")[-2:]
        kept.setdefault(session, {})[file_id] = len(body)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def upload(session, size):
        sent = []

        async def send(message):
            sent.append(message)

        async def receive():
            return {"type": "http.request", "body": b"x" * size, "more_body": False}
        scope = {"type": "http", "method": "PUT", "path": f"/_stcore/upload_file/{session}/new",
                 "headers": [(b"content-length", str(size).encode()), *cookie(session)]}
        await budget(scope, receive, send)
        statuses[session] = sent[0]["status"]

    async def main():
        budget.app = streamlit
        fifth = asyncio.create_task(upload("fifth", 25 * MB))      # the server full with it: 100 MB
        await parsing.wait()
        parsing.clear()
        await upload("student", 5 * MB)                             # a share is 16.7 MB: the fifth's is cut
        await fifth

    asyncio.run(main())
    assert statuses == {"fifth": 413, "student": 204}
    assert "new" not in kept["fifth"] and kept["student"] == {"new": 5 * MB}
    assert sum(sum(f.values()) for f in kept.values()) <= 100 * MB
    assert not budget.uploads
