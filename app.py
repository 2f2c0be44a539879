"""CIFAR-10 Studio: `streamlit run app.py` (or any ASGI server: `uvicorn app:app`).

The server: Streamlit's own, as an `st.App`, with seven additions: every page it
serves gives the browser an identity cookie (app_pages/identity.py), which is how
the app knows who started a run; Streamlit's own scripts and fonts are answered
from memory, gzipped once (app_pages/static_assets.py); uploads are kept
within a budget per visitor and per server (app_pages/upload_budget.py); a
run's model and report are sent by the server itself (app_pages/run_downloads.py);
what waits to be sent to one tab has a budget in bytes
(app_pages/send_budget.py); a request's head is parsed up to 64 KB
(app_pages/request_heads.py); and what a tab sends over its websocket is taken
at a person's pace, developer-only messages dropped (app_pages/browser_messages.py). The
pages and the sidebar are in studio.py; running studio.py on its own also works, but then
each browser tab is a new person.
"""
import importlib.util
import sys

import streamlit as st
from starlette.middleware import Middleware

from app_pages import request_heads, send_budget
from app_pages.browser_messages import BrowserMessages
from app_pages.identity import IdentityCookie
from app_pages.run_downloads import RunDownloads
from app_pages.static_assets import StaticAssets
from app_pages.upload_budget import UploadBudget
from cifar_core import settings

try:
    settings.get()      # a setting mistyped stops the server here, in its own sentence, not every page later
except ValueError as e:
    sys.exit(f"CIFAR-10 Studio cannot start: {e}")

# Each bound is a patch of the web server's own code: said at start, never silently, when a newer version
# moved what it patches (CI's tests would fail too; a server installed without them would not).
if not send_budget.bound_send_queues():     # a browser that falls 64 MB behind is dropped, not 500 messages behind
    print("Warning: this Streamlit's websocket sender was not found: a slow browser's messages are not bounded "
          "in bytes (app_pages/send_budget.py).", file=sys.stderr)
if not request_heads.bound_request_heads() and importlib.util.find_spec("httptools"):   # h11 bounds its own
    print("Warning: this uvicorn's httptools protocol was not found: request heads are not bounded to 64 KB or "
          "20 s (app_pages/request_heads.py).", file=sys.stderr)
app = st.App("studio.py",
             middleware=[Middleware(BrowserMessages), Middleware(StaticAssets), Middleware(IdentityCookie),
                         Middleware(UploadBudget), Middleware(RunDownloads)])
