"""The demo's own services: `catalog` (v1 and v2), `reviews`, and `ledger` (a TCP service)."""

from __future__ import annotations

import socket
from typing import Any

import trio

from fastmesh.demo._http import Request, serve_http

__all__ = ["catalog", "reviews", "serve_ledger"]

_PRODUCTS = [
    {"id": 1, "name": "espresso cup", "price": 9.5},
    {"id": 2, "name": "milk jug", "price": 14.0},
]
_REVIEWS = {1: ["sturdy", "the right size"], 2: ["no drips"]}


def catalog(version: str) -> Any:
    """`catalog` at `version`: lists products; v2 adds stock levels."""

    async def handle(request: Request) -> tuple[int, Any]:
        products = [dict(p) for p in _PRODUCTS]
        if version == "v2":
            for p in products:
                p["in_stock"] = p["id"] != 2
        return 200, {
            "service": "catalog",
            "version": version,
            "hostname": socket.gethostname(),
            "path": request.path,
            "products": products,
        }

    return handle


async def reviews(request: Request) -> tuple[int, Any]:
    product = request.path.rstrip("/").rsplit("/", 1)[-1]
    if product.isdigit():
        found = _REVIEWS.get(int(product))
        if found is None:
            return 404, {"service": "reviews", "error": f"no product {product}"}
        return 200, {"service": "reviews", "product": int(product), "reviews": found}
    return 200, {"service": "reviews", "reviews": _REVIEWS}


async def serve_ledger(*, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """A line-based TCP service: answers each line with `ledger: <LINE IN CAPITALS>`."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(int(listeners[0].socket.getsockname()[1]))

    async def on_connection(stream: trio.SocketStream) -> None:
        buffer = b""
        async with stream:
            try:
                while chunk := await stream.receive_some(4096):
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        await stream.send_all(b"ledger: " + line.upper() + b"\n")
            except trio.BrokenResourceError:
                pass

    await trio.serve_listeners(on_connection, listeners)


__all__ += ["serve_http"]
