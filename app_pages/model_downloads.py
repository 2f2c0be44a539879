"""A run's model file, sent from disk a piece at a time.

Streamlit's download button holds what it sends in the server's memory: it
reads the whole file when the button is pressed, hashes it and keeps it until
the visitor's page runs again. A run's model is a few to a few tens of MB, so a
class pressing "Model (.keras)" together held hundreds of MB at once, and a
script pressing it over and over as many new visitors held more.

`ModelDownloads`, ASGI middleware on the app's server (app.py), answers
`GET <any path>/runs/<run id>/model.keras` with the file streamed from disk in
Starlette's 64 KB pieces (`FileResponse`), named after the run. The run is
looked up by `runs.get`, which accepts only a run's own directory name, so a
request never names any other file. Every visitor sees every run on the Train
page, so a run's address gives away nothing the page does not.
"""
from __future__ import annotations

import re
from urllib.parse import quote

from starlette.responses import FileResponse

from cifar_core import runs

MODEL_PATH = re.compile(r"/runs/(?P<run>[^/]+)/model\.keras$")
# Whether this server answers those addresses: app.py's does; studio.py served on its own does not, and its
# pages fall back to Streamlit's download button.
installed = False


def address(run_id: str) -> str:
    """Where a run's model is downloaded from, relative to any page of the app (all are one level deep)."""
    return f"runs/{quote(run_id, safe='')}/model.keras"


def file_name(run: runs.Run) -> str:
    """A download's file name from the run's name, before its suffix: letters, digits and dashes only."""
    return re.sub(r"[^A-Za-z0-9]+", "-", run.name).strip("-")[:60] or run.id


class ModelDownloads:
    """ASGI middleware: a finished or running run's model.keras, streamed; everything else goes on."""

    def __init__(self, app):
        global installed
        self.app = app
        installed = True

    async def __call__(self, scope, receive, send):
        # Whatever comes before "/runs/": the server's base path (server.baseUrlPath), or a page's own
        # where a browser resolved the relative address against one with a trailing slash.
        found = MODEL_PATH.search(scope.get("path", "")) if scope["type"] == "http" else None
        if found is None or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        try:
            run = runs.get(found["run"])
        except runs.RunError:
            run = None
        model = run.model_path if run is not None else None
        if model is None:
            await _not_found(send)
            return
        response = FileResponse(model, media_type="application/octet-stream", filename=f"{file_name(run)}.keras",
                                headers={"cache-control": "no-store"})   # a running run's model changes
        await response(scope, receive, send)


async def _not_found(send) -> None:
    body = b"This run has no model to download (yet, or any more).\n"
    await send({"type": "http.response.start", "status": 404,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
