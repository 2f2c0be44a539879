"""Who a browser is: a random token in a cookie that the server sets, never anything in the URL.

`IdentityCookie` is ASGI middleware on the app's server (app.py). Every HTML page
it serves carries `Set-Cookie` with the browser's token: the one the browser sent
if it is well formed, else a fresh `secrets.token_urlsafe(32)`. The index page is
loaded before Streamlit opens its websocket, so even a first visit has the cookie
by then, and the websocket handshake carries it to the page (`st.context.headers`).

- HttpOnly: no script on the page can read it, and the app never shows it.
- SameSite=Lax: other sites' requests do not carry it (Strict would drop it on a
  link followed from another site, and that visit would be handed a new identity).
- Secure when the request came over HTTPS, and then named `__Host-cifar_studio_id`:
  a browser takes a cookie of that name only from this very host, over HTTPS,
  so another host of the school's domain cannot plant one. Max-Age renewed on
  every page load.
- A value that is not exactly what `new_token` makes (too long, odd characters,
  forged) is replaced by a fresh token rather than trusted or refused. So are
  two different values of the cookie at once: one was planted (by another host
  of the domain, say), and trusting either, the server would hand the browser
  the planted one, and with it someone else's runs, or the teacher's unlock.

`owner_id` turns a token into the name stored as a run's owner in status.json, so
the run files never hold the token itself. Copying a page's address hands over
nothing: the address holds no identity.
"""
from __future__ import annotations

import hashlib
import re
import secrets

COOKIE = "cifar_studio_id"
SECURE_COOKIE = "__Host-" + COOKIE      # its name over HTTPS
MAX_AGE_S = 90 * 24 * 3600          # renewed on every page load: a term's worth of gaps between lessons
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")   # secrets.token_urlsafe(32): 32 random bytes, base64url, no padding


def new_token() -> str:
    return secrets.token_urlsafe(32)


def valid(value: object) -> bool:
    return isinstance(value, str) and _TOKEN.fullmatch(value) is not None


def _values(header: str, name: str) -> set[str]:
    return {value.strip() for key, _, value in (part.strip().partition("=") for part in header.split(";"))
            if key.strip() == name}


def token_in_cookies(header: str, https: bool = False) -> str | None:
    """The identity token a Cookie header carries, or None: missing, malformed, or given twice over with
    different values (one of them planted). Under the HTTPS name where it has one; over `https`, under
    that name only, since any host of the domain can plant the other (the page gives a browser its
    HTTPS cookie before its websocket opens)."""
    for name in (SECURE_COOKIE,) if https else (SECURE_COOKIE, COOKIE):
        values = _values(header, name)
        if values:
            value = values.pop()
            return value if not values and valid(value) else None
    return None


def token_in(headers, https: bool = False) -> str | None:
    """The identity token an ASGI request's `headers` carry in their cookies (`token_in_cookies`), or None."""
    return token_in_cookies(_cookies(headers), https)


def _cookies(headers) -> str:
    return b"; ".join(v for k, v in headers if k == b"cookie").decode("latin-1")


def _host(headers) -> str:
    """The request's host name, without its port."""
    host = next((v for k, v in headers if k == b"host"), b"").decode("latin-1")
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


_HOST_NAME = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
MAX_DOMAIN_LEVELS = 8       # school.example.ac.uk is 4; a name of more is not a host a class visits


def planted_expired(headers) -> list[bytes]:
    """Set-Cookie headers that expire the plain-named cookie wherever another host of the domain could have
    planted it (for this host's own name and each domain above it, up to MAX_DOMAIN_LEVELS of them), where
    the browser sent it twice over: otherwise it came back beside every fresh token, and the browser was a
    new person on every page. Only for a host name as DNS writes one (253 characters at most): a Host of
    32,000 labels made a header for each, a gigabyte from one request."""
    if len(_values(_cookies(headers), COOKIE)) < 2:
        return []
    host = _host(headers)
    if len(host) > 253 or not _HOST_NAME.fullmatch(host):
        return []
    labels = host.split(".")
    if labels[-1].isdigit():      # an IP address: no domain to plant from (localhost has no dot)
        return []
    return [f"{COOKIE}=; Path=/; Max-Age=0; Domain={'.'.join(labels[i:])}".encode("latin-1")
            for i in range(max(0, len(labels) - 1 - MAX_DOMAIN_LEVELS), len(labels) - 1)]


def owner_id(token: str) -> str:
    """The name a run's owner is stored under: derived from the token, useless as a cookie."""
    return hashlib.sha256(f"cifar-studio-owner:{token}".encode()).hexdigest()[:32]


def set_cookie_header(token: str, secure: bool) -> bytes:
    attributes = [f"{SECURE_COOKIE if secure else COOKIE}={token}", "Path=/", f"Max-Age={MAX_AGE_S}", "HttpOnly",
                  "SameSite=Lax"]
    if secure:
        attributes.append("Secure")
    return "; ".join(attributes).encode("latin-1")


class IdentityCookie:
    """ASGI middleware: give every HTML response the browser's identity cookie (see the module docstring).

    Only HTML pages get it: the scripts, fonts and images a first visit fetches at
    the same time would otherwise each be handed a different new token.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", ())
        https = scope.get("scheme") == "https"
        kept = token_in(headers, https) or new_token()
        header = set_cookie_header(kept, secure=https)
        if any(k == b"accept" and b"text/html" in v for k, v in headers):
            # A page load: answer with the whole page (8 kB), never "304 Not Modified", so the cookie comes with it.
            conditional = (b"if-none-match", b"if-modified-since")
            scope = {**scope, "headers": [(k, v) for k, v in headers if k not in conditional]}

        async def send_with_cookie(message):
            if message["type"] == "http.response.start":
                sent = list(message.get("headers", ()))
                # A page, not a file downloaded (a run's report is HTML too, sent as an attachment with
                # its own caching): that keeps its headers, and hands the browser no identity.
                page = not any(k.lower() == b"content-disposition" and v.startswith(b"attachment") for k, v in sent)
                if page and any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in sent):
                    # A page that sets a cookie is one browser's: no shared cache may keep it.
                    sent = [(k, v) for k, v in sent if k.lower() != b"cache-control"]
                    sent += [(b"set-cookie", header), (b"cache-control", b"private, no-cache"),
                             *((b"set-cookie", gone) for gone in planted_expired(headers))]
                    message = {**message, "headers": sent}
            await send(message)

        await self.app(scope, receive, send_with_cookie)
