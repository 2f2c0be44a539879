"""The identity cookie: set by the server on pages, HttpOnly and SameSite; never a forged value, never the URL."""
from __future__ import annotations

import asyncio

import pytest
from streamlit.testing.v1 import AppTest

from app_pages import identity


def serve(cookie: str | None = None, content_type: bytes = b"text/html; charset=utf-8", scheme: str = "http",
          kind: str = "http", host: bytes = b"localhost:8501") -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
    """One request through the middleware: the headers the app below saw, and the response's headers."""
    seen, sent = [], []

    async def app(scope, receive, send):
        seen.extend(scope["headers"])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type), (b"cache-control", b"no-cache")]})
        await send({"type": "http.response.body", "body": b"<html></html>"})

    async def send(message):
        if message["type"] == "http.response.start":
            sent.extend(message["headers"])

    headers = [(b"accept", b"text/html,*/*"), (b"if-none-match", b'"etag"'), (b"host", host)]
    if cookie is not None:
        headers.append((b"cookie", cookie.encode("latin-1")))
    scope = {"type": kind, "scheme": scheme, "path": "/train", "headers": headers}
    asyncio.run(identity.IdentityCookie(app)(scope, None, send))
    return seen, sent


def cookie_set(sent) -> dict[str, str] | None:
    values = [v.decode() for k, v in sent if k == b"set-cookie" and b"Max-Age=0" not in v]
    if not values:
        return None
    [value] = values
    first, *attributes = value.split("; ")
    name, token = first.split("=", 1)
    assert name in (identity.COOKIE, identity.SECURE_COOKIE)
    return {"name": name, "token": token, **{a.split("=")[0]: a.partition("=")[2] for a in attributes}}


def test_a_first_visit_gets_a_random_http_only_same_site_token():
    _, sent = serve()
    cookie = cookie_set(sent)
    assert identity.valid(cookie["token"]) and len(cookie["token"]) == 43
    assert "HttpOnly" in cookie and cookie["SameSite"] == "Lax" and cookie["Path"] == "/"
    assert int(cookie["Max-Age"]) >= 30 * 24 * 3600 and "Secure" not in cookie
    assert (b"cache-control", b"private, no-cache") in sent and (b"cache-control", b"no-cache") not in sent
    assert cookie_set(serve()[1])["token"] != cookie["token"]
    secure = cookie_set(serve(scheme="https")[1])
    assert "Secure" in secure and secure["name"] == "__Host-cifar_studio_id" and "Domain" not in secure
    assert cookie["name"] == "cifar_studio_id"


def test_a_second_value_planted_beside_a_browsers_token_is_never_taken_for_it():
    """Another host of the school's domain (or anyone on a plain-HTTP network) can set a cookie of the same
    name beside the browser's own: the browser then sends both. The last was taken, and the page renewed it
    as the browser's own, handing it the planter's identity (their runs; the teacher's unlock, once the
    teacher typed the password). Now neither is trusted, and a fresh token is given; over HTTPS the
    browser's own has a name no other host can set, and it is the one taken."""
    mine, planted = identity.new_token(), identity.new_token()
    for header in (f"{identity.COOKIE}={mine}; {identity.COOKIE}={planted}",
                   f"{identity.COOKIE}={planted}; x=1; {identity.COOKIE}={mine}"):
        assert identity.token_in_cookies(header) is None
        token = cookie_set(serve(header)[1])["token"]
        assert identity.valid(token) and token not in (mine, planted)
    both = f"{identity.COOKIE}={planted}; {identity.SECURE_COOKIE}={mine}; {identity.COOKIE}={identity.new_token()}"
    assert identity.token_in_cookies(both) == mine
    assert cookie_set(serve(both, scheme="https")[1])["token"] == mine
    # Over HTTPS the plain name is never taken, even alone: it may be the planted one, before the browser
    # has its own (a first visit, a new laptop). It gets a fresh token under the HTTPS name.
    fresh = cookie_set(serve(f"{identity.COOKIE}={planted}", scheme="https")[1])
    assert fresh["name"] == identity.SECURE_COOKIE and fresh["token"] != planted
    # Sent twice over: the planted one is expired wherever another host could have set it, or the browser
    # would be a new person on every page.
    _, sent = serve(f"{identity.COOKIE}={mine}; {identity.COOKIE}={planted}", host=b"studio.school.example:8501")
    expired = sorted(v.decode() for k, v in sent if k == b"set-cookie" and b"Max-Age=0" in v)
    assert expired == [f"{identity.COOKIE}=; Path=/; Max-Age=0; Domain=school.example",
                       f"{identity.COOKIE}=; Path=/; Max-Age=0; Domain=studio.school.example"]
    assert not any(b"Max-Age=0" in v for k, v in serve(f"{identity.COOKIE}={mine}")[1] if k == b"set-cookie")
    assert identity.token_in_cookies(f"{identity.COOKIE}={mine}; {identity.COOKIE}={mine}") == mine   # the same twice


def test_a_host_name_of_thousands_of_labels_costs_nothing(monkeypatch):
    """`Host: a.a.a...` (32,000 labels, inside the 64 KB head) with the cookie sent twice: a Set-Cookie
    for every domain above the host, a gigabyte of headers for one request (even a health check's), and
    the event loop every visitor waits on held for seconds."""
    import tracemalloc
    twice = f"{identity.COOKIE}={identity.new_token()}; {identity.COOKIE}={identity.new_token()}"
    tracemalloc.start()
    _, sent = serve(twice, host=b"a." * 32_000 + b"school.example")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5 << 20 and not any(b"Max-Age=0" in v for k, v in sent if k == b"set-cookie")
    # A long but real name: the broadest MAX_DOMAIN_LEVELS domains above it, no more.
    _, sent = serve(twice, host=b"a." * 20 + b"school.example")
    expired = [v for k, v in sent if k == b"set-cookie" and b"Max-Age=0" in v]
    assert len(expired) == identity.MAX_DOMAIN_LEVELS and expired[-1].endswith(b"Domain=school.example")
    # Not a page: nothing to expire is even worked out.
    monkeypatch.setattr(identity, "planted_expired", lambda headers: pytest.fail("worked out for a script"))
    serve(twice, content_type=b"application/javascript")


def test_a_page_load_is_answered_in_full_so_the_cookie_always_comes():
    seen, _ = serve()
    assert (b"if-none-match", b'"etag"') not in seen


def test_a_valid_token_is_kept_and_renewed():
    token = identity.new_token()
    _, sent = serve(f"other=1; {identity.COOKIE}={token}")
    assert cookie_set(sent)["token"] == token


@pytest.mark.parametrize("forged", ["", "short", "A" * 44, "A" * 5000, "A" * 42 + "!", "<script>alert(1)</script>",
                                    "é" * 43, "A" * 42 + " ", '"' + "A" * 43 + '"', "A" * 21 + ";" + "A" * 21])
def test_a_forged_or_odd_token_gets_a_fresh_identity(forged):
    _, sent = serve(f"{identity.COOKIE}={forged}")
    token = cookie_set(sent)["token"]
    assert identity.valid(token) and token != forged
    assert identity.token_in_cookies(f"{identity.COOKIE}={forged}") is None


def test_only_pages_get_the_cookie_and_websockets_pass_through():
    assert cookie_set(serve(content_type=b"application/javascript")[1]) is None
    assert cookie_set(serve(kind="websocket")[1]) is None


def test_a_downloaded_report_keeps_its_own_headers_and_hands_out_no_identity():
    """A run's report is HTML sent as an attachment, not to be kept anywhere (no-store): it was given
    a page's cache header and, to a browser without the cookie, a new identity."""
    seen = []

    async def report(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-store"),
            (b"content-disposition", b'attachment; filename="run.html"')]})

    async def send(message):
        seen.extend(message.get("headers", ()))
    scope = {"type": "http", "scheme": "http", "path": "/runs/r/report.html", "headers": [(b"accept", b"text/html")]}
    asyncio.run(identity.IdentityCookie(report)(scope, None, send))
    assert (b"cache-control", b"no-store") in seen and not any(k == b"set-cookie" for k, _ in seen)


def test_the_stored_owner_is_not_the_token():
    token = identity.new_token()
    assert identity.owner_id(token) == identity.owner_id(token) != token
    assert token not in identity.owner_id(token) and identity.owner_id(token) != identity.owner_id(identity.new_token())


def test_without_a_cookie_owner_is_per_session_and_never_in_the_url():
    def script():
        import streamlit as st

        from app_pages import common
        st.session_state.setdefault("seen", []).append(common.owner())

    at = AppTest.from_function(script)
    at.run()
    at.run()
    assert not at.exception
    first, second = at.session_state["seen"]
    assert first == second and not at.query_params
    other = AppTest.from_function(script)
    other.run()
    assert other.session_state["seen"][0] != first


@pytest.mark.parametrize("url", ["http://school.example/", "https://school.example/"])
def test_pages_know_a_browser_by_its_cookie_whatever_its_address_says(url, monkeypatch):
    """Behind a proxy that ends HTTPS without telling the server, the server gives the plain cookie only,
    while the browser's address says https: a page looking there for the HTTPS cookie alone made every
    reload a stranger, the runs it started no longer its own."""
    from streamlit.runtime.context import ContextProxy, StreamlitHeaders
    plain = identity.new_token()
    sent = StreamlitHeaders([("cookie", f"{identity.COOKIE}={plain}")])
    monkeypatch.setattr(ContextProxy, "headers", property(lambda self: sent))
    monkeypatch.setattr(ContextProxy, "url", property(lambda self: url))

    def script():
        import streamlit as st

        from app_pages import common
        st.session_state["owner_seen"] = common.owner()

    at = AppTest.from_function(script)
    at.run()
    assert not at.exception and at.session_state["owner_seen"] == identity.owner_id(plain)
