"""The small topology most proxy tests use: one HTTP listener in front of the echo upstream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.support import (
    bootstrap,
    cluster,
    free_port,
    header_exact,
    http_listener,
    prefix,
    route,
    virtual_host,
)


@dataclass
class Ports:
    listener: int
    admin: int

    @classmethod
    def fresh(cls) -> Ports:
        return cls(free_port(), free_port())


def front_config(
    ports: Ports, upstream_port: int, *, healthz: str = "ok\n", canary_path: str = "/"
) -> dict[str, Any]:
    """`/healthz` answered by the proxy with `healthz`; requests with `x-canary: 1` under
    `canary_path` answered 418 by the proxy; everything else forwarded to cluster `echo`."""
    return bootstrap(
        admin_port=ports.admin,
        listeners=[
            http_listener(
                "ingress",
                ports.listener,
                [
                    virtual_host(
                        "all",
                        ["*"],
                        [
                            route(prefix("/healthz"), direct=(200, healthz)),
                            route(
                                prefix(canary_path),
                                headers=[header_exact("x-canary", "1")],
                                direct=(418, "canary\n"),
                            ),
                            route(prefix("/"), cluster="echo"),
                        ],
                    )
                ],
                stat_prefix="ingress_http",
            )
        ],
        clusters=[cluster("echo", [("127.0.0.1", upstream_port)])],
    )
