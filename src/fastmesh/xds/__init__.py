"""fastmesh-proxy's xDS client: `dynamic_resources` over one ADS stream (state of the
world or incremental), translated with the bootstrap's static part into one native snapshot."""

from __future__ import annotations

from fastmesh.xds._client import ADS_PATH, AdsClient, ConfigTarget
from fastmesh.xds._delta import DELTA_ADS_PATH, DeltaAdsSession
from fastmesh.xds._session import AdsSession, Candidate, SessionBase, node_message

__all__ = [
    "ADS_PATH",
    "DELTA_ADS_PATH",
    "AdsClient",
    "AdsSession",
    "Candidate",
    "ConfigTarget",
    "DeltaAdsSession",
    "SessionBase",
    "node_message",
]
