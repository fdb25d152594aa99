"""fastmesh-proxy's xDS client: `dynamic_resources` over one ADS stream (state of the
world), translated with the bootstrap's static part into one native snapshot."""

from __future__ import annotations

from fastmesh.xds._client import ADS_PATH, AdsClient, ConfigTarget
from fastmesh.xds._session import AdsSession, Candidate, node_message

__all__ = ["ADS_PATH", "AdsClient", "AdsSession", "Candidate", "ConfigTarget", "node_message"]
