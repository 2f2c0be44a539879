"""A request's head is parsed up to 64 KB: past it 431, however it arrives; an ordinary one however split."""
import asyncio

import pytest

from app_pages import request_heads

pytest.importorskip("httptools")


class Transport:
    def __init__(self):
        self.out, self.closed = [], False

    def write(self, data):
        self.out.append(data)

    def close(self):
        self.closed = True

    def is_closing(self):
        return self.closed

    def get_extra_info(self, key, default=None):
        return {"sockname": ("127.0.0.1", 1), "peername": ("127.0.0.1", 2)}.get(key, default)

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


def serve(pieces: list[bytes], then_wait_s: float = 0.05, closed: list | None = None) -> tuple[bytes, list[tuple[str, int]]]:
    """The pieces sent to one connection, as the network hands them over: (what it answered, each request
    the app saw with its body's length). `closed` gets whether the connection was closed `then_wait_s`
    after the last piece."""
    from uvicorn.config import Config
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState
    assert request_heads.bound_request_heads()
    seen = []

    async def app(scope, receive, send):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen.append((scope["path"], len(body)))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def main():
        config = Config(app, http="httptools", lifespan="off", log_level="warning")
        config.load()
        protocol = HttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
        transport = Transport()
        protocol.connection_made(transport)
        for piece in pieces:
            if transport.closed:
                break
            protocol.data_received(piece)
            await asyncio.sleep(0.01)
        await asyncio.sleep(then_wait_s)
        if closed is not None:
            closed.append(transport.closed)
        protocol.connection_lost(None)
        return b"".join(transport.out)
    return asyncio.run(main()), seen


def test_a_head_past_64_kb_is_refused_whether_it_comes_at_once_or_a_piece_at_a_time():
    start = b"GET / HTTP/1.1\r\nHost: x\r\nCookie: "
    for pieces in ([start + b"a" * 200_000], [start] + [b"a" * 30_000] * 5):
        answer, seen = serve(pieces)
        assert answer.startswith(b"HTTP/1.1 431") and seen == []


def test_an_upload_whose_head_is_split_from_its_body_anyhow_goes_on():
    """A browser's head (here 1.6 KB, with a school's cookies) cut across two reads, the second holding
    150 KB of the photo: the bound is the head's, not the read's."""
    head = (b"PUT /upload HTTP/1.1\r\nHost: x\r\nCookie: " + b"a" * 1500 + b"\r\n"
            b"Content-Length: 200000\r\n\r\n")
    body = b"x" * 200_000
    answer, seen = serve([head[:700], head[700:] + body[:150_000], body[150_000:]])
    assert answer.startswith(b"HTTP/1.1 200") and seen == [("/upload", 200_000)]
    answer, seen = serve([b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n" * 3])       # several requests in one read
    assert seen == [("/a", 0)] * 3


@pytest.mark.parametrize("pieces", [[], [b"GET / HTTP/1.1\r\nHo"], [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /b HT"]],
                         ids=["nothing sent", "half a head", "half the next head"])
def test_a_head_that_never_ends_closes_its_connection(monkeypatch, pieces):
    """A connection that sent nothing, or half a head, stayed open for good: a script holding thousands
    took the process's file handles from the class."""
    monkeypatch.setattr(request_heads, "HEAD_TIMEOUT_S", 0.2)
    closed = []
    serve(pieces, then_wait_s=0.5, closed=closed)
    assert closed == [True]


def test_a_whole_request_is_answered_and_its_connection_kept_for_the_next(monkeypatch):
    monkeypatch.setattr(request_heads, "HEAD_TIMEOUT_S", 0.2)
    closed = []
    answer, seen = serve([b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"], then_wait_s=0.5, closed=closed)
    assert answer.startswith(b"HTTP/1.1 200") and seen == [("/a", 0)] and closed == [False]

