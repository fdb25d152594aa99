"""The mesh certificate authority: SPIFFE X.509-SVIDs for workloads, trust bundles, rotation."""

from ._authority import DEFAULT_TTL, CertificateAuthority, Svid
from ._bundle import TrustBundle
from ._errors import CaError, InvalidSpiffeId, NotEntitled, SvidError
from ._identity import SpiffeId
from ._verify import verify_svid
from ._workload import WorkloadKey, new_workload_key, renew_at

__all__ = [
    "DEFAULT_TTL",
    "CaError",
    "CertificateAuthority",
    "InvalidSpiffeId",
    "NotEntitled",
    "SpiffeId",
    "Svid",
    "SvidError",
    "TrustBundle",
    "WorkloadKey",
    "new_workload_key",
    "renew_at",
    "verify_svid",
]
