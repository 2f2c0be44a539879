"""Streamlit's static files from memory: the same bytes, gzipped where that helps, and nothing outside its folder."""
from __future__ import annotations

import asyncio
import gzip
import os

import pytest
from streamlit import config

from app_pages.static_assets import StaticAssets


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "static" / "js").mkdir(parents=True)
    (tmp_path / "static" / "js" / "index.abc123.js").write_text("console.log('hello');\n" * 200)
    (tmp_path / "static" / "media").mkdir()
    (tmp_path / "static" / "media" / "font.woff2").write_bytes(os.urandom(4000))     # packed already
    (tmp_path / "index.html").write_text("<html>the page</html>")
    (tmp_path / "secret.txt").write_text("not a static file")
    return tmp_path


def request(middleware, path, method="GET", headers=(), kind="http"):
    """(status, headers, body) as the middleware answers, or (None, ...) where it passed the request on."""
    passed, sent = [], []

    async def app(scope, receive, send):
        passed.append(scope["path"])

    async def send(message):
        sent.append(message)

    middleware.app = app
    scope = {"type": kind, "method": method, "path": path, "headers": list(headers)}
    asyncio.run(middleware(scope, None, send))
    if passed:
        return None, {}, b""
    start, body = sent
    return start["status"], dict(start["headers"]), body["body"]


def test_a_script_comes_gzipped_once_with_its_year_long_cache(folder):
    assets = StaticAssets(None, folder)
    original = (folder / "static" / "js" / "index.abc123.js").read_bytes()
    status, headers, body = request(assets, "/static/js/index.abc123.js", headers=[(b"accept-encoding", b"gzip, br")])
    assert status == 200 and gzip.decompress(body) == original and len(body) < len(original) / 5
    assert headers[b"content-encoding"] == b"gzip" and headers[b"content-length"] == str(len(body)).encode()
    assert headers[b"content-type"] == b"text/javascript; charset=utf-8"
    assert headers[b"cache-control"] == b"public, immutable, max-age=31536000"
    # A client that takes no gzip gets the file as it is; HEAD gets the headers alone.
    status, headers, body = request(assets, "/static/js/index.abc123.js")
    assert status == 200 and body == original and b"content-encoding" not in headers
    status, headers, body = request(assets, "/static/js/index.abc123.js", method="HEAD")
    assert status == 200 and body == b"" and headers[b"content-length"] == str(len(original)).encode()
    # The browser's copy is still good: nothing is sent again.
    status, _, body = request(assets, "/static/js/index.abc123.js", headers=[(b"if-none-match", headers[b"etag"])])
    assert status == 304 and body == b""
    # The gzipped form has a tag of its own: the plain one's does not stand for it, nor it for the plain one.
    status, zipped, _ = request(assets, "/static/js/index.abc123.js", headers=[(b"accept-encoding", b"gzip")])
    assert zipped[b"etag"] != headers[b"etag"]
    assert request(assets, "/static/js/index.abc123.js", headers=[(b"if-none-match", zipped[b"etag"])])[0] == 200
    status, again, _ = request(assets, "/static/js/index.abc123.js",
                               headers=[(b"accept-encoding", b"gzip"), (b"if-none-match", zipped[b"etag"])])
    assert status == 304 and again[b"vary"] == b"accept-encoding"


def test_a_packed_font_is_sent_as_it_is(folder):
    status, headers, body = request(StaticAssets(None, folder), "/static/media/font.woff2",
                                    headers=[(b"accept-encoding", b"gzip")])
    assert status == 200 and body == (folder / "static" / "media" / "font.woff2").read_bytes()
    assert b"content-encoding" not in headers and headers[b"content-type"] == b"font/woff2"


@pytest.mark.parametrize("path, method, kind", [
    ("/static/../secret.txt", "GET", "http"),          # outside the folder: looked up, never joined to a path
    ("/static/../index.html", "GET", "http"),
    ("/static/js/missing.js", "GET", "http"),           # Streamlit answers what it does not know (its own 404 page)
    ("/static/js/index.abc123.js", "POST", "http"),
    ("/index.html", "GET", "http"),                     # pages keep their identity cookie: Streamlit serves them
    ("/predict", "GET", "http"),
    ("/_stcore/stream", "GET", "websocket"),
])
def test_everything_else_goes_on_to_streamlit(folder, path, method, kind):
    assert request(StaticAssets(None, folder), path, method=method, kind=kind)[0] is None


def test_under_a_base_address_the_files_are_found_there(folder):
    config.set_option("server.baseUrlPath", "/school/")
    try:
        assets = StaticAssets(None, folder)
        assert request(assets, "/school/static/js/index.abc123.js")[0] == 200
        assert request(assets, "/static/js/index.abc123.js")[0] is None
    finally:
        config.set_option("server.baseUrlPath", "")


def test_a_file_is_read_and_gzipped_off_the_event_loop(tmp_path, monkeypatch):
    """All of Streamlit's files asked for at once just after a start held the event loop, where every page
    waits, for 3.9 s: each is read and gzipped on a worker thread."""
    import threading
    from app_pages import static_assets
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "a.js").write_text("x" * 10_000)
    where = []
    real = static_assets._load
    monkeypatch.setattr(static_assets, "_load", lambda path: where.append(threading.current_thread()) or real(path))
    assets = static_assets.StaticAssets(None, folder=tmp_path)
    assets.prefix = "/static/"
    sent = []

    async def send(message):
        sent.append(message)

    async def main():
        request = {"type": "http", "path": "/static/a.js", "method": "GET", "headers": []}
        await asyncio.gather(*(assets(request, None, send) for _ in range(30)))     # a class's first visits
        return threading.current_thread()
    loop_thread = asyncio.run(main())
    assert sent[0]["status"] == 200 and len(where) == 1 and where[0] is not loop_thread      # read once
