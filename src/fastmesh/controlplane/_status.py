"""Proxy status (Istio's `proxy-status`): each connected proxy's sync state per type, as
objects and as the JSON the `/debug/syncz` endpoint serves."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ._resources import short_type

if TYPE_CHECKING:
    from ._server import Stream

__all__ = ["SYNCZ_PATH", "ProxyStatus", "proxy_status", "render_table", "syncz_json"]

#: The HTTP/2 path on the ADS port that answers proxy status as JSON (as istiod's).
SYNCZ_PATH = "/debug/syncz"


@dataclass(frozen=True)
class ProxyStatus:
    """One connected proxy as `fastmesh controlplane proxy-status` shows it."""

    stream: int
    peer: str
    node_id: str
    #: Per type (CDS, EDS, LDS, RDS): SYNCED, STALE, NACK or PENDING.
    types: dict[str, str]
    #: Per type: the version the proxy last ACKed ("" if none).
    acked: dict[str, str]
    #: Every NACK of the stream: (type, rejected version, the proxy's error message).
    nacks: tuple[tuple[str, str, str], ...]
    #: "SotW" (state of the world) or "delta".
    protocol: str = "SotW"


def proxy_status(streams: Iterable[Stream]) -> list[ProxyStatus]:
    out: list[ProxyStatus] = []
    for stream in streams:
        s = stream.session
        out.append(
            ProxyStatus(
                stream=stream.id,
                peer=stream.peer,
                node_id=str(s.node.id) if s.node is not None else "",
                types=s.describe(),
                acked={short_type(t): st.acked_version for t, st in s.types.items()},
                nacks=tuple((short_type(n.type_url), n.version, n.message) for n in s.nacks),
                protocol=stream.protocol,
            )
        )
    return sorted(out, key=lambda p: (p.node_id, p.stream))


def syncz_json(statuses: Iterable[ProxyStatus]) -> bytes:
    return json.dumps([asdict(s) for s in statuses], indent=1).encode()


def render_table(entries: list[dict[str, Any]]) -> str:
    """`istioctl proxy-status`-like text from `/debug/syncz` JSON."""
    rows = [["NAME", "CDS", "LDS", "EDS", "RDS", "XDS", "PEER"]]
    for e in entries:
        types = e.get("types", {})
        rows.append(
            [
                e.get("node_id") or "?",
                *(types.get(t, "-") for t in ("CDS", "LDS", "EDS", "RDS")),
                e.get("protocol", "SotW"),
                e.get("peer", ""),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for e in entries:
        for kind, version, message in e.get("nacks", []):
            lines.append(f"NACK {e.get('node_id')} {kind} version {version}: {message}")
    return "\n".join(lines) + "\n"
