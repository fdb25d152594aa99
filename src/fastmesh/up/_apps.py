"""The demo application: four small services, each answering with who it is and its version.

    frontend ──> details
             └─> reviews v1 | v2 ──> ratings      (v1: no stars; v2: black; v3: red)
                          | v3 ──> ratings

Every call between them goes through the caller's own sidecar: to `<own address>:9080` with
the callee's name as the host header, as an app in a mesh calls `http://reviews:9080`. A
failed call is reported in the answer (`error`), not hidden, so faults are visible.
"""

from __future__ import annotations

from typing import Any

import trio

from fastmesh.demo._http import Request, http_request, serve_http
from fastmesh.up._layout import SERVICE_PORT, Workload

__all__ = ["serve_app"]

_DETAILS = {"id": 1, "name": "espresso cup", "material": "porcelain", "volume_ml": 90}
_REVIEWS = ["sturdy", "the right size"]
_STARS = {"v2": "black", "v3": "red"}
#: Headers the frontend passes on, so routing by user works two hops down (as in Istio).
_PROPAGATE = ("end-user",)


async def _call(w: Workload, service: str, path: str, request: Request) -> Any:
    headers = {k: request.headers[k] for k in _PROPAGATE if k in request.headers}
    try:
        resp = await http_request(
            SERVICE_PORT,
            path,
            host=w.address,
            authority=service,
            headers=headers,
            timeout=5,
        )
    except (OSError, trio.TooSlowError, ValueError) as exc:
        return {"service": service, "error": f"{type(exc).__name__}: {exc}"}
    try:
        answer = resp.json()
    except ValueError:
        answer = {"service": service, "body": resp.text.strip()}
    if resp.status != 200:
        answer = {"service": service, "error": f"HTTP {resp.status}: {resp.text.strip()}"}
    return answer


def _handler(w: Workload) -> Any:
    me = {"service": w.app, "version": w.version, "workload": w.name}

    async def frontend(request: Request) -> tuple[int, Any]:
        details = await _call(w, "details", "/details/1", request)
        reviews = await _call(w, "reviews", "/reviews/1", request)
        return 200, {**me, "details": details, "reviews": reviews}

    async def details(request: Request) -> tuple[int, Any]:
        return 200, {**me, **_DETAILS}

    async def reviews(request: Request) -> tuple[int, Any]:
        answer = {**me, "reviews": _REVIEWS}
        if w.version in _STARS:
            answer["ratings"] = await _call(w, "ratings", "/ratings/1", request)
            answer["star_color"] = _STARS[w.version]
        return 200, answer

    async def ratings(request: Request) -> tuple[int, Any]:
        return 200, {**me, "stars": [5, 4]}

    return {"frontend": frontend, "details": details, "reviews": reviews, "ratings": ratings}[w.app]


async def serve_app(
    w: Workload, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve workload `w`'s app on 127.0.0.1, behind its sidecar's inbound listener (which
    alone is reachable on the workload's address; see docs/up.md)."""
    await serve_http(_handler(w), host="127.0.0.1", port=w.app_port, task_status=task_status)
