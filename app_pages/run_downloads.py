"""A run's model and report, sent by the app's server itself, not by Streamlit's download button.

Streamlit's download button makes the file when it is pressed and keeps it in the
server's memory under the hash of its bytes, with no visitor's page holding it; once
any visitor's pages have run twice more (a press itself reruns the page, and a Train
page watching a run reruns every few seconds), Streamlit deletes it, often before the
browser has fetched it. Ten visitors pressing "Model (.keras)" together got one model
and nine cancelled downloads, and the server's memory grew by 86-137 MB meanwhile
(benchmarks/model_download.py; docs/measured.md).

`RunDownloads`, ASGI middleware on the app's server (app.py), answers
`GET <any path>/runs/<run id>/model.keras` with the file streamed from disk in
64 KB pieces from the one handle it opened (or the one range of it a browser asks for
to go on with a download cut short, while the file is the same), and
`.../runs/<run id>/report.html`
with the run's report (`report.html`, made on a worker thread), each named after
the run. Reports are made one at a time, with at most MAX_REPORTS_WAITING asked
for at once (past it, "try again" with a 503): each costs up to a second of a core
(drawing its curves), and a script asking for one run's report after another must
neither take both of the server's cores from everyone else nor line up minutes of
work ahead of a student's own report. The run is looked up by
`runs.get`, which accepts only a run's own directory name, so a request never
names any other file. Every visitor sees every
run on the Train page, so a run's address gives away nothing the page does not.
"""
from __future__ import annotations

import os
import re
from typing import BinaryIO
from urllib.parse import quote

import anyio
from starlette.datastructures import Headers
from starlette.responses import Response, StreamingResponse

from cifar_core import runs

DOWNLOAD = re.compile(r"/runs/(?P<run>[^/]+)/(?P<file>model\.keras|report\.html)$")
# Whether this server answers those addresses: app.py's does; studio.py served on its own does not, and its
# pages fall back to Streamlit's download button.
installed = False


def address(run_id: str, file: str) -> str:
    """Where a run's "model.keras" or "report.html" is downloaded from, relative to any page of the app."""
    return f"runs/{quote(run_id, safe='')}/{file}"


def file_name(run: runs.Run) -> str:
    """A download's file name from the run's name, before its suffix: letters, digits and dashes only."""
    return re.sub(r"[^A-Za-z0-9]+", "-", run.name).strip("-")[:60] or run.id


class RunDownloads:
    """ASGI middleware: a run's model.keras, streamed, and its report.html; everything else goes on."""

    def __init__(self, app):
        global installed
        self.app = app
        self.reports: anyio.CapacityLimiter | None = None    # made in the server's event loop, on first use
        installed = True

    async def __call__(self, scope, receive, send):
        # Whatever comes before "/runs/": the server's base path (server.baseUrlPath), or a page's own
        # where a browser resolved the relative address against one with a trailing slash.
        found = DOWNLOAD.search(scope.get("path", "")) if scope["type"] == "http" else None
        if found is None or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        try:
            run = runs.get(found["run"])
        except runs.RunError:
            run = None
        if self.reports is None:
            self.reports = anyio.CapacityLimiter(1)
        wanted = _range_asked(scope) if scope["method"] == "GET" else None    # HTTP: a HEAD's Range is ignored
        await (await _response(run, found["file"], self.reports, scope["method"] == "HEAD", wanted))(
            scope, receive, send)


MAX_REPORTS_WAITING = 8     # reports asked for and not yet made: past it, "try again" (a second of a core each)
_reports_asked = [0]        # this server's, made or waiting now (one event loop: no lock needed)


def _opened(path) -> BinaryIO | None:
    """The file at `path`, opened, or None where it has gone. Opened once and sent from that handle: a
    running run's trainer replaces its checkpoint whole each epoch, and a size taken before the file was
    opened again could be the old one's (a download cut short or run on), and a file deleted in between
    was a server error."""
    try:
        return open(path, "rb")
    except OSError:
        return None


async def _pieces(handle: BinaryIO, left: int):
    """The file's next `left` bytes, a piece at a time from a worker thread, and the file closed however it
    ends."""
    try:
        while left > 0 and (piece := await anyio.to_thread.run_sync(handle.read, min(PIECE_BYTES, left))):
            left -= len(piece)
            yield piece
    finally:
        handle.close()


PIECE_BYTES = 64 * 1024


async def _text_pieces(text: str):
    """A report made in memory (shared by everyone asking for it), encoded a piece at a time as it is sent."""
    for start in range(0, len(text), PIECE_BYTES):
        yield text[start:start + PIECE_BYTES].encode("utf-8")


# One range of bytes, as a browser asks to go on with a download cut short: "bytes=START-[END]" or the last
# bytes, "bytes=-COUNT". Several ranges at once are answered with the whole file, as HTTP allows.
# Figures of at most 18 digits: Python refuses to read one of over 4,300 as a number (a server error).
ONE_RANGE = re.compile(r"bytes=(?:(?P<start>\d{1,18})-(?P<end>\d{0,18})|-(?P<last>\d{1,18}))", re.IGNORECASE)


def _range_asked(scope) -> tuple[str, str | None] | None:
    """The request's Range header and its If-Range, if it has a Range."""
    headers = Headers(scope=scope)
    return (headers["range"], headers.get("if-range")) if "range" in headers else None


def _validator(facts: os.stat_result) -> str:
    """A strong entity tag of the opened file (its `facts`): a checkpoint replaced between a download cut
    short and its going on is a new file (another inode, time or size), and the browser is sent it whole."""
    return f'"{facts.st_ino:x}-{facts.st_mtime_ns:x}-{facts.st_size:x}"'


def _span(wanted: tuple[str, str | None] | None, tag: str, size: int) -> tuple[int, int] | None | str:
    """The bytes [start, end) to send of a file of `size` bytes: None for the whole file (no range asked, a
    range of another version of the file, several ranges, or an empty file), "unsatisfiable" for a range past
    its end."""
    if wanted is None or (wanted[1] is not None and wanted[1] != tag) or size == 0:
        return None
    found = ONE_RANGE.fullmatch(wanted[0].strip())
    if found is None:
        return None
    if found["last"] is not None:
        count = int(found["last"])
        return (max(0, size - count), size) if count > 0 else "unsatisfiable"
    start = int(found["start"])
    end = min(size, int(found["end"]) + 1) if found["end"] else size
    return (start, end) if start < end else "unsatisfiable"


def _streamed(handle: BinaryIO, media_type: str, headers: dict, head: bool,
              wanted: tuple[str, str | None] | None = None) -> Response:
    """The opened file sent a piece at a time: a connection that reads nothing holds a piece or two of it,
    not the whole file (a long run's report is 300 KB, and a script can open a thousand connections). With
    `wanted`, a Range asked for (a download going on after it was cut short), only its bytes."""
    facts = os.fstat(handle.fileno())     # one look: the size sent and the tag are of the same file
    size = facts.st_size
    headers.update({"accept-ranges": "bytes", "etag": _validator(facts)})
    span = _span(wanted, headers["etag"], size)
    if span == "unsatisfiable":
        handle.close()
        return Response(b"", status_code=416, headers={**headers, "content-range": f"bytes */{size}"})
    start, end = span or (0, size)
    headers["content-length"] = str(end - start)
    status = 200
    if span is not None:
        status, headers["content-range"] = 206, f"bytes {start}-{end - 1}/{size}"
    if head:
        handle.close()
        return Response(b"", status_code=status, media_type=media_type, headers=headers)
    handle.seek(start)
    return StreamingResponse(_pieces(handle, end - start), status_code=status, media_type=media_type,
                             headers=headers)


def _opened_report(run: runs.Run) -> BinaryIO | None:
    from cifar_core import report     # charts and their drawing: only once a report is asked for
    kept = report.kept_file(run)
    return _opened(kept) if kept is not None else None


async def _response(run: runs.Run | None, file: str, reports: anyio.CapacityLimiter, head: bool = False,
                    wanted: tuple[str, str | None] | None = None) -> Response:
    headers = {"cache-control": "no-store"}      # a running run's model and report change
    if file == "model.keras" and run is not None and run.model_path is not None:
        model = _opened(run.model_path)
        if model is not None:
            headers["content-disposition"] = f'attachment; filename="{file_name(run)}.keras"'
            return _streamed(model, "application/octet-stream", headers, head, wanted)
    if file == "report.html" and run is not None:
        from cifar_core import report
        html = "text/html; charset=utf-8"
        headers["content-disposition"] = f'attachment; filename="{file_name(run)}.html"'
        # One already made is a file read, sent at once: counted in the line below, a script looping on one
        # saved report held the line full, and every student's own report was told to try again.
        kept = await anyio.to_thread.run_sync(_opened_report, run)
        if kept is not None:
            return _streamed(kept, html, headers, head, wanted)
        if head:     # not made only to be looked at: a script's HEADs would each cost a second of a core
            return StreamingResponse(iter(()), media_type=html, headers=headers)
        body = await anyio.to_thread.run_sync(report.made, run)
        if body is None:
            # One at a time, and only a few waiting: a script's thousand requests, each dropped as soon as
            # sent, were all made anyway, one after another, and a student's own report waited behind them.
            if _reports_asked[0] >= MAX_REPORTS_WAITING:
                return Response("Reports are being made for others just now; please try again in a few seconds.\n",
                                status_code=503, media_type="text/plain; charset=utf-8", headers={"retry-after": "5"})
            _reports_asked[0] += 1            # counted before the first await: requests arriving together see it
            try:
                body = await anyio.to_thread.run_sync(report.kept_html, run, limiter=reports)
            finally:
                _reports_asked[0] -= 1
        return StreamingResponse(_text_pieces(body), media_type=html, headers=headers)
    what = "model" if file == "model.keras" else "report"
    return Response(f"This run has no {what} to download (yet, or any more).\n", status_code=404,
                    media_type="text/plain; charset=utf-8")
