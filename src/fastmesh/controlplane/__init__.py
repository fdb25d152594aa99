"""The control plane: registry, Istio resources, translation to xDS, and the ADS server."""

from ._app import ControlPlane
from ._bootstrap import sidecar_bootstrap
from ._errors import Problem
from ._etcd_register import register_workload
from ._hub import SnapshotHub
from ._load import load_directory, load_documents
from ._model import MeshConfig
from ._proxy import ProxyInfo, proxy_info
from ._registry import FileRegistry, Registry
from ._registry_etcd import EtcdRegistry
from ._resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, Snapshot, build_snapshot
from ._server import ADS_PATH, AdsServer
from ._session import Nack, ProtocolError, Session
from ._status import SYNCZ_PATH, ProxyStatus
from ._status_client import fetch_syncz
from ._translate import Translation, translate, translate_snapshot

__all__ = [
    "ADS_PATH",
    "CLUSTER",
    "ENDPOINT",
    "LISTENER",
    "ROUTE",
    "SYNCZ_PATH",
    "AdsServer",
    "ControlPlane",
    "EtcdRegistry",
    "FileRegistry",
    "MeshConfig",
    "Nack",
    "Problem",
    "ProtocolError",
    "ProxyInfo",
    "ProxyStatus",
    "Registry",
    "Session",
    "Snapshot",
    "SnapshotHub",
    "Translation",
    "build_snapshot",
    "fetch_syncz",
    "load_directory",
    "load_documents",
    "proxy_info",
    "register_workload",
    "sidecar_bootstrap",
    "translate",
    "translate_snapshot",
]
