"""A bound on what one request's head (its first line and headers) may cost the server.

Streamlit serves the app with uvicorn, which parses requests with `httptools` where it is installed (a
new visitor's first page costs the server 0.05 s less CPU than with uvicorn's pure-Python h11). Nothing
there bounds a request's head, and the parser rebuilds a header's value as each piece of it arrives: a
64 MB cookie header took 28 s of CPU on the event loop, where every visitor's page waits (16 MB: 1.9 s),
and a handful of such connections would take the server from a class. `bound_request_heads()` refuses
a head past MAX_HEAD_BYTES (a browser's is about 1 KB, its cookies included; h11 refuses past 16 KB).

Nor does anything there give up on a head that never ends: a connection that sends nothing, or half a
head and then a byte now and then, stayed open for good, each holding one of the process's file handles
(1,024 under many service managers) and up to 64 KB. A head not whole HEAD_TIMEOUT_S after its
connection opened, or after its first byte came, closes its connection.
"""
from __future__ import annotations

MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT_S = 20.0       # a phone on a slow school network sends its whole head in well under a second

_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
              b"content-length: 39\r\nconnection: close\r\n\r\nThe request's headers are far too long.")


def bound_request_heads() -> bool:
    """Make uvicorn's httptools connections refuse a request whose head grows past MAX_HEAD_BYTES, before
    the parser is given more of it. Every connection made after this call is bounded (the app's module
    is imported before the server takes its first). True where uvicorn's httptools protocol was found."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:         # no httptools: uvicorn parses with h11, which bounds a head itself
        return False
    if getattr(HttpToolsProtocol.data_received, "bounded", False):
        return True
    receive, complete, done = (HttpToolsProtocol.data_received, HttpToolsProtocol.on_headers_complete,
                               HttpToolsProtocol.on_message_complete)
    made, lost = HttpToolsProtocol.connection_made, HttpToolsProtocol.connection_lost

    # `head_timer`: the connection's deadline for the head now being read, if one is being waited for.
    def await_head(self) -> None:
        if getattr(self, "head_timer", None) is None:
            self.head_timer = self.loop.call_later(HEAD_TIMEOUT_S, head_too_slow, self)

    def head_received(self) -> None:
        timer, self.head_timer = getattr(self, "head_timer", None), None
        if timer is not None:
            timer.cancel()

    def head_too_slow(self) -> None:
        self.head_timer = None
        if getattr(self, "head_left", MAX_HEAD_BYTES) is not None and not self.transport.is_closing():
            self.transport.close()      # no answer: the client has not yet said what it wants

    def connection_made(self, transport) -> None:
        made(self, transport)
        await_head(self)

    def connection_lost(self, exc) -> None:
        head_received(self)
        lost(self, exc)

    # `head_left`: how many more bytes the head now being read may take, None while a body is read: a
    # connection starts in a head, and so does each request after the one before it ended. `heads`
    # counts the heads read whole, to tell whether a piece of data ended the one it began in.
    def on_headers_complete(self) -> None:
        self.head_left, self.heads = None, getattr(self, "heads", 0) + 1
        head_received(self)
        complete(self)

    def on_message_complete(self) -> None:
        self.head_left = MAX_HEAD_BYTES
        done(self)

    def data_received(self, data: bytes) -> None:
        left, heads = getattr(self, "head_left", MAX_HEAD_BYTES), getattr(self, "heads", 0)
        if left is None:
            receive(self, data)
            return
        await_head(self)        # a kept-alive connection's next head: from its first byte
        receive(self, data[:left])          # no more of a head than it may take goes to the parser
        if getattr(self, "heads", 0) == heads:          # the head is not whole yet
            if len(data) > left:
                self.transport.write(_TOO_LARGE)
                self.transport.close()
                return
            self.head_left = left - len(data)
        elif len(data) > left and not self.transport.is_closing():
            self.data_received(data[left:])     # the head ended within its bound: the rest, as it comes

    data_received.bounded = True
    HttpToolsProtocol.on_headers_complete = on_headers_complete
    HttpToolsProtocol.on_message_complete = on_message_complete
    HttpToolsProtocol.data_received = data_received
    HttpToolsProtocol.connection_made = connection_made
    HttpToolsProtocol.connection_lost = connection_lost
    return True
