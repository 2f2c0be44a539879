"""A run's model sent from disk in pieces and its report, each named after the run, and nothing but runs' own."""
from __future__ import annotations

import asyncio

import pytest

from app_pages.run_downloads import MAX_REPORTS_WAITING, RunDownloads, address
from cifar_core import rundir, runs
from cifar_core.config import TrainConfig


def request(path, method="GET", headers=None):
    """(status, headers, body, body messages) as the middleware answers; status None where it passed it on."""
    passed, sent = [], []

    async def app(scope, receive, send):
        passed.append(scope["path"])

    async def receive():
        await asyncio.Event().wait()      # the browser stays connected

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "query_string": b"",
             "headers": [(name.encode(), value.encode()) for name, value in (headers or {}).items()]}
    asyncio.run(RunDownloads(app)(scope, receive, send))
    if passed:
        return None, {}, b"", 0
    pieces = [m for m in sent if m["type"] == "http.response.body"]
    return sent[0]["status"], dict(sent[0]["headers"]), b"".join(m.get("body", b"") for m in pieces), len(pieces)


@pytest.fixture
def trained(tiny_env):
    run = runs.create(TrainConfig(epochs=1, batch_size=8, name="Cats & dogs, 2nd try"), owner="someone")
    (run.path / rundir.MODEL).write_bytes(bytes(range(256)) * 1000)      # 256 KB: several pieces
    rundir.update_status(run.path, state="finished", ended=rundir.now())
    return runs.get(run.id)


def test_a_runs_model_is_streamed_from_disk_under_the_runs_name(trained):
    status, headers, body, pieces = request("/" + address(trained.id, "model.keras"))
    assert status == 200 and body == (trained.path / rundir.MODEL).read_bytes()
    assert pieces > 2                                    # a piece at a time, never the whole file at once
    assert headers[b"content-disposition"] == b'attachment; filename="Cats-dogs-2nd-try.keras"'
    assert headers[b"content-type"] == b"application/octet-stream" and headers[b"cache-control"] == b"no-store"
    status, headers, body, _ = request("/" + address(trained.id, "model.keras"), method="HEAD")
    assert status == 200 and body == b"" and headers[b"content-length"] == b"256000"


def test_a_checkpoint_replaced_or_removed_as_it_is_asked_for_is_sent_whole_or_not_at_all(trained, monkeypatch):
    """A running run's trainer replaces its checkpoint whole each epoch: the size was taken before the file
    was opened again, so a download could be cut short, or run on; a file deleted in between was a server
    error. The file is opened once, its size taken from that, and sent from it."""
    from app_pages import run_downloads
    model = trained.path / rundir.MODEL
    before = model.read_bytes()
    real_opened = run_downloads._opened

    def replaced_after_opening(path):
        handle = real_opened(path)
        rundir.atomic_write_bytes(model, b"the next epoch's checkpoint" * 30_000)     # 810 KB
        return handle
    monkeypatch.setattr(run_downloads, "_opened", replaced_after_opening)
    status, headers, body, _ = request("/" + address(trained.id, "model.keras"))
    assert status == 200 and body == before and headers[b"content-length"] == str(len(before)).encode()
    monkeypatch.setattr(run_downloads, "_opened", lambda path: model.unlink() or real_opened(path))
    status, _, body, _ = request("/" + address(trained.id, "model.keras"))
    assert status == 404 and b"no model to download" in body


def test_only_a_runs_own_model_is_ever_sent(trained, tiny_env):
    (runs.runs_dir() / "secret.keras").write_bytes(b"not a run's model")
    for path in ["/runs/no-such-run/model.keras", "/runs/..%2Fsecret/model.keras", "/runs/.lock/model.keras"]:
        status, _, body, _ = request(path)
        assert status == 404 and b"no model to download" in body
    modelless = runs.create(TrainConfig(epochs=1, batch_size=8, name="queued"), owner="someone")
    assert request("/" + address(modelless.id, "model.keras"))[0] == 404
    # Anything else is Streamlit's: other names, other methods, deeper paths.
    for path, method in [("/runs/x/config.json", "GET"), ("/runs/../secret.keras", "GET"),
                         ("/" + address(trained.id, "model.keras"), "POST"), ("/train", "GET")]:
        assert request(path, method)[0] is None


def test_a_runs_report_is_one_page_named_after_the_run(trained):
    status, headers, body, _ = request("/" + address(trained.id, "report.html"))
    assert status == 200 and headers[b"content-type"] == b"text/html; charset=utf-8"
    assert headers[b"content-disposition"] == b'attachment; filename="Cats-dogs-2nd-try.html"'
    page = body.decode()
    assert page.startswith("<!doctype html>") and "<h1>Cats &amp; dogs, 2nd try</h1>" in page
    assert request("/runs/no-such-run/report.html")[0] == 404


def test_under_a_base_path_or_a_page_the_address_is_answered(trained):
    for prefix in ("/studio/", "/studio/train/", "/train/"):
        assert request(prefix + address(trained.id, "model.keras"))[0] == 200


def test_reports_are_made_one_at_a_time(trained, monkeypatch):
    """A report costs up to a second of a core: a script asking for many at once must leave the other core."""
    from conftest import AtOnce

    from cifar_core import report
    making = AtOnce()
    slow = making.returning("<!doctype html>")
    monkeypatch.setattr(report, "kept_html", slow)
    monkeypatch.setattr(report, "made", lambda run: None)     # none made yet: each is made
    middleware = RunDownloads(None)

    async def ask(sent):
        async def app(scope, receive, send):
            raise AssertionError("passed on")

        async def send(message):
            sent.append(message)
        middleware.app = app
        async def receive():
            await asyncio.Event().wait()      # the browser stays connected

        scope = {"type": "http", "method": "GET", "path": "/" + address(trained.id, "report.html"), "headers": []}
        await middleware(scope, receive, send)

    async def at_once(n):
        answers = [[] for _ in range(n)]
        await asyncio.gather(*(ask(a) for a in answers))
        return [a[0]["status"] for a in answers]
    assert asyncio.run(at_once(3)) == [200] * 3 and making.most == 1
    # A flood waits in a short line only: the rest are told to try again, and nothing is made for them.
    made = []
    monkeypatch.setattr(report, "kept_html", lambda run: made.append(slow(run)) or made[-1])
    statuses = asyncio.run(at_once(30))
    assert statuses.count(200) == len(made) == MAX_REPORTS_WAITING and statuses.count(503) == 30 - len(made)
    # A report already made and kept is sent at once, however many are asking for it: a script looping on
    # one held the line full, and a student's own was refused.
    monkeypatch.setattr(report, "made", lambda run: "<!doctype html>kept")
    made.clear()
    assert asyncio.run(at_once(30)) == [200] * 30 and made == []


def test_a_report_is_sent_a_piece_at_a_time_and_a_look_at_its_headers_makes_none(trained, monkeypatch):
    """A long run's report is 300 KB: sent whole, each connection a script opened and never read held all of
    it. Made once and kept, it is sent from its file as the model is; made in memory, a piece at a time."""
    from cifar_core import report
    made = []
    real = report.kept_html
    monkeypatch.setattr(report, "kept_html", lambda run: made.append(run.id) or real(run))
    status, headers, _, _ = request("/" + address(trained.id, "report.html"), method="HEAD")
    assert status == 200 and made == [] and b"content-length" not in headers    # not made to be looked at
    status, _, first, _ = request("/" + address(trained.id, "report.html"))
    assert status == 200 and made == [trained.id]
    kept = report.kept_file(runs.get(trained.id))
    assert kept is not None and kept.read_bytes() == first
    status, headers, again, _ = request("/" + address(trained.id, "report.html"), method="HEAD")
    assert status == 200 and headers[b"content-length"] == str(len(first)).encode() and again == b""
    assert request("/" + address(trained.id, "report.html"))[2] == first and made == [trained.id]
    # One made in memory (a training run's, shared by all who ask) goes out in pieces too.
    monkeypatch.setattr(report, "kept_file", lambda run: None)
    monkeypatch.setattr(report, "made", lambda run: "<!doctype html>" + "é" * 200_000)
    status, _, body, pieces = request("/" + address(trained.id, "report.html"))
    assert status == 200 and body.decode() == "<!doctype html>" + "é" * 200_000 and pieces >= 4


def test_a_download_cut_short_goes_on_from_where_it_stopped_while_the_model_is_the_same(trained):
    """A 20 MB model over a school's wireless network: a download cut short began again from its first
    byte. A browser goes on with one where the server takes ranges and names the file's version."""
    whole = (trained.path / rundir.MODEL).read_bytes()
    path = "/" + address(trained.id, "model.keras")
    status, headers, body, _ = request(path)
    tag = headers[b"etag"].decode()
    assert status == 200 and headers[b"accept-ranges"] == b"bytes" and body == whole
    for asked, first, last in (("bytes=100000-", 100000, 255999), ("bytes=0-9", 0, 9), ("bytes=-5", 255995, 255999),
                               ("bytes=255990-999999", 255990, 255999)):
        status, headers, body, _ = request(path, headers={"range": asked, "if-range": tag})
        assert status == 206 and body == whole[first:last + 1], asked
        assert headers[b"content-range"] == f"bytes {first}-{last}/256000".encode()
        assert headers[b"content-length"] == str(last + 1 - first).encode()
    assert request(path, headers={"range": "bytes=0-9"})[0] == 206           # no If-Range: the file as it is now
    # HTTP: a HEAD's Range is ignored; a range in capitals is one all the same.
    status, headers, body, _ = request(path, headers={"range": "bytes=100000-"}, method="HEAD")
    assert status == 200 and body == b"" and headers[b"content-length"] == b"256000"
    assert request(path, headers={"range": "Bytes=0-9"})[::2] == (206, whole[:10])
    # Past its end: nothing to send, and the size, so that the browser knows it has the whole file.
    status, headers, body, _ = request(path, headers={"range": "bytes=256000-"})
    assert status == 416 and headers[b"content-range"] == b"bytes */256000" and body == b""
    # Several ranges, or one not understood: the whole file, as HTTP allows.
    for asked in ("bytes=0-1,5-6", "lines=1-2", "bytes=x-", "bytes=" + "9" * 5000 + "-"):   # a figure too long to read
        assert request(path, headers={"range": asked})[::2] == (200, whole)
    # The next epoch's checkpoint is another file: a browser going on with the old one is sent the new whole.
    rundir.atomic_write_bytes(trained.path / rundir.MODEL, b"the next epoch's checkpoint" * 10_000)
    status, headers, body, _ = request(path, headers={"range": "bytes=100000-", "if-range": tag})
    assert status == 200 and body == (trained.path / rundir.MODEL).read_bytes() and headers[b"etag"].decode() != tag
    # An empty file: its Range ignored, as a suffix of it is all of it.
    rundir.atomic_write_bytes(trained.path / rundir.MODEL, b"")
    assert request(path, headers={"range": "bytes=-5"})[::2] == (200, b"")
