"""A request's whole body from an ASGI `receive`, for the layers that answer before FastAPI (the broker-credential
check and the fast paths). `RequestLimits` has bounded the body and hands it on as one message."""

from __future__ import annotations

from starlette.types import Message, Receive


async def read_body(receive: Receive) -> tuple[bytes, Message]:
    """The whole body, and the last message: a disconnect (the client went away, and nobody reads an answer) or
    the body's last part."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks), message
