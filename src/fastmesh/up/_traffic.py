"""Requests through the frontend's sidecar, and what they show: which `reviews` versions
answered (per the answers, and per the sidecar's own stats), and what failed."""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import trio

from fastmesh.demo._http import http_request
from fastmesh.up._layout import ADMIN_PORT, NAMESPACE, SERVICE_PORT, SERVICES, Layout

__all__ = ["Tally", "measure", "wait_until_routed"]


@dataclass
class Tally:
    sent: int = 0
    versions: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)


def _errors(answer: Any) -> list[str]:
    """Every `error` anywhere in the call tree of one answer."""
    if not isinstance(answer, dict):
        return []
    found = [f"{answer.get('service', '?')}: {answer['error']}"] if "error" in answer else []
    for value in answer.values():
        found += _errors(value)
    return found


async def send(layout: Layout, count: int, headers: dict[str, str] | None = None) -> Tally:
    """`count` requests to `frontend` through the frontend's sidecar, one after another."""
    frontend = layout.workload("frontend-v1")
    tally = Tally()
    for _ in range(count):
        tally.sent += 1
        try:
            resp = await http_request(
                SERVICE_PORT,
                "/",
                host=frontend.address,
                authority="frontend",
                headers=headers,
                timeout=10,
            )
            answer = resp.json() if resp.status == 200 else {"error": f"HTTP {resp.status}"}
        except (OSError, trio.TooSlowError, ValueError) as exc:
            answer = {"service": "frontend", "error": type(exc).__name__}
        for error in _errors(answer):
            tally.failures[error] += 1
        reviews = answer.get("reviews", {})
        if isinstance(reviews, dict) and "version" in reviews:
            tally.versions[reviews["version"]] += 1
    return tally


async def reviews_stats(layout: Layout) -> dict[str, int]:
    """Requests per `reviews` subset, from the frontend sidecar's `/stats` (cluster
    `outbound|9080|vN|reviews.default.svc.cluster.local`, counter `upstream_rq_total`)."""
    frontend = layout.workload("frontend-v1")
    text = (await http_request(ADMIN_PORT, "/stats", host=frontend.address)).text
    stats = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    host = f"reviews.{NAMESPACE}.svc.cluster.local"
    return {
        v: int(stats.get(f"cluster.outbound|{SERVICE_PORT}|{v}|{host}.upstream_rq_total", "0"))
        for v in SERVICES["reviews"]
    }


async def measure(
    layout: Layout, count: int, headers: dict[str, str] | None = None
) -> tuple[Tally, dict[str, int]]:
    """Send `count` requests; what they saw, and the frontend sidecar's count per reviews
    version meanwhile (other traffic at the same time counts too)."""
    before = await reviews_stats(layout)
    tally = await send(layout, count, headers)
    after = await reviews_stats(layout)
    return tally, {v: n - before[v] for v, n in after.items()}


async def _routed(layout: Layout) -> bool:
    """Every sidecar routes to every service (its listener, routes, clusters and endpoints
    have all arrived over xDS)."""
    for w in layout.workloads:
        for service in SERVICES:
            with contextlib.suppress(OSError, trio.TooSlowError, ValueError):
                resp = await http_request(
                    SERVICE_PORT, "/", host=w.address, authority=service, timeout=5
                )
                if resp.status == 200 and not _errors(resp.json()):
                    continue
            return False
    return True


async def wait_until_routed(layout: Layout, timeout: float) -> bool:
    with trio.move_on_after(timeout):
        while not await _routed(layout):
            await trio.sleep(0.2)
        return True
    return False
