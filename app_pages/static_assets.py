"""Streamlit's own scripts, styles and fonts, answered from memory and gzipped once.

A browser's first visit fetches about 90 files (3.1 MB) from `/static/`. Streamlit
answers each through its whole middleware stack and a FileResponse that stats,
opens and reads the file on worker threads: about 3 ms of server CPU a file, 0.3 s
for every new visitor, on a 2-core server that thirty students open at once.

The files cannot change while the server runs (they come with the installed
Streamlit, their names carry a hash of their content, and they are served as
immutable for a year). So `StaticAssets`, ASGI middleware on the app's server
(app.py), keeps each file the first time it is asked for, with a gzip copy made
then, and answers it in one send. Only names found under Streamlit's own static
folder when the server starts are answered: a request is looked up, never joined
to a path. Everything else, HTML pages included, goes on to Streamlit untouched.
"""
from __future__ import annotations

import gzip
import hashlib
import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path

import anyio
from streamlit import config, file_util

IMMUTABLE = b"public, immutable, max-age=31536000"     # what Streamlit itself sends for these files
WORTH_GZIP = 0.9     # keep the gzip copy only where it saves a tenth (not fonts or pictures, already packed)


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    content_type: bytes
    etag: bytes


def _content_type(name: str) -> bytes:
    # The same choice as Starlette's FileResponse: the guessed type, and UTF-8 for text.
    kind = mimetypes.guess_type(name)[0] or "text/plain"
    return (f"{kind}; charset=utf-8" if kind.startswith("text/") else kind).encode("latin-1")


def _load(path: Path) -> Asset:
    body = path.read_bytes()
    packed = gzip.compress(body, compresslevel=9, mtime=0)
    return Asset(body, packed if len(packed) < WORTH_GZIP * len(body) else None, _content_type(path.name),
                 b'"' + hashlib.blake2b(body, digest_size=12).hexdigest().encode() + b'"')


class StaticAssets:
    """ASGI middleware: answer GET and HEAD for Streamlit's hashed static files from memory."""

    def __init__(self, app, folder: str | os.PathLike | None = None):
        self.app = app
        root = Path(folder or file_util.get_static_dir()) / "static"
        self.files = {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}
        self.kept: dict[str, Asset] = {}
        self.loading: dict[str, anyio.Lock] = {}     # one per file being read the first time
        self.prefix: str | None = None

    def _prefix(self) -> str:
        if self.prefix is None:     # read once the server's options are loaded, not at import
            base = (config.get_option("server.baseUrlPath") or "").strip("/")
            self.prefix = f"/{base}/static/" if base else "/static/"
        return self.prefix

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "") if scope["type"] == "http" else ""
        prefix = self._prefix() if path else ""
        name = path[len(prefix):] if path.startswith(prefix) else None
        if name not in self.files or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        asset = self.kept.get(name)
        if asset is None:
            # Read and gzipped on a worker thread, not the event loop every page waits on (all 357 of
            # Streamlit's files asked for at once, just after a start, held it for 3.9 s), once: a class's
            # thirty first visits at once wait for the one reading, not thirty of their own.
            async with self.loading.setdefault(name, anyio.Lock()):
                asset = self.kept.get(name)
                if asset is None:
                    asset = self.kept[name] = await anyio.to_thread.run_sync(_load, self.files[name])
        headers = dict(scope["headers"])
        zipped = asset.gzipped is not None and b"gzip" in headers.get(b"accept-encoding", b"")
        # Each form its own tag, as HTTP asks of a strong one: a shared cache never answers a client that
        # takes no gzip with the gzipped bytes because their tags matched.
        etag = asset.etag[:-1] + b'-gz"' if zipped else asset.etag
        if headers.get(b"if-none-match") == etag:
            await send({"type": "http.response.start", "status": 304,
                        "headers": [(b"etag", etag), (b"cache-control", IMMUTABLE), (b"vary", b"accept-encoding")]})
            await send({"type": "http.response.body", "body": b""})
            return
        body = asset.gzipped if zipped else asset.body
        sent = [(b"content-type", asset.content_type), (b"content-length", str(len(body)).encode()),
                (b"cache-control", IMMUTABLE), (b"etag", etag), (b"vary", b"accept-encoding")]
        if zipped:
            sent.append((b"content-encoding", b"gzip"))
        await send({"type": "http.response.start", "status": 200, "headers": sent})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
