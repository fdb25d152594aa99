"""Envoy's TLS transport socket (`DownstreamTlsContext`, `UpstreamTlsContext`) and static
`secrets` -> native `DownstreamTls` / `UpstreamTls`.

Certificates, keys and CA bundles are read now (see `_sources`) and checked with
`cryptography`: a file that does not parse, or a key that is not the certificate's, is
a problem at the field that named it, so a bad rotation is rejected with its path and
the last good config keeps serving.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from ._errors import Issues
from ._fields import (
    NOT_SUPPORTED,
    Doc,
    at,
    get_bool,
    get_enum,
    get_list,
    get_map,
    get_str,
    item,
    obj,
    one_of,
    typed_config,
)
from ._match import string_matcher
from ._sources import Secret, Sources
from ._xds import config_source

__all__ = [
    "downstream_tls",
    "translate_sds_secrets",
    "translate_secrets",
    "upstream_tls",
]

_TLS_TYPES: Final = "envoy.extensions.transport_sockets.tls.v3."
DOWNSTREAM_TLS_TYPE: Final = _TLS_TYPES + "DownstreamTlsContext"
UPSTREAM_TLS_TYPE: Final = _TLS_TYPES + "UpstreamTlsContext"

_SOCKET: Final = frozenset({"name", "typed_config"})
_DOWNSTREAM: Final = frozenset(
    {"common_tls_context", "require_client_certificate", "ocsp_staple_policy"}
)
_UPSTREAM: Final = frozenset({"common_tls_context", "sni"})
_COMMON: Final = frozenset(
    {
        "tls_params",
        "tls_certificates",
        "tls_certificate_sds_secret_configs",
        "validation_context",
        "validation_context_sds_secret_config",
        "combined_validation_context",
        "alpn_protocols",
    }
)
_VALIDATION_KINDS: Final = (
    "validation_context",
    "validation_context_sds_secret_config",
    "combined_validation_context",
)
_PARAMS: Final = frozenset({"tls_minimum_protocol_version", "tls_maximum_protocol_version"})
_CERTIFICATE: Final = frozenset({"certificate_chain", "private_key", "ocsp_staple"})
_VALIDATION: Final = frozenset(
    {
        "trusted_ca",
        "match_typed_subject_alt_names",
        "crl",
        "only_verify_leaf_cert_crl",
        "verify_certificate_hash",
        "verify_certificate_spki",
    }
)
_SAN_MATCHER: Final = frozenset({"san_type", "matcher"})
_SDS_REF: Final = frozenset({"name", "sds_config"})
_COMBINED: Final = frozenset({"default_validation_context", "validation_context_sds_secret_config"})
_SECRET: Final = frozenset({"name", "tls_certificate", "validation_context"})
_SECRET_KINDS: Final = ("tls_certificate", "validation_context")

_SAN_TYPES: Final = {"URI": "uri", "DNS": "dns", "EMAIL": "email", "IP_ADDRESS": "ip_address"}
_RUSTLS: Final = "not supported: fastmesh speaks TLS 1.2 and 1.3 only"
_MIN_VERSIONS: Final = {"TLS_AUTO": "1.2", "TLSv1_2": "1.2", "TLSv1_3": "1.3"}
_MAX_VERSIONS: Final = {"TLS_AUTO": "", "TLSv1_3": ""}
_OLD_VERSIONS: Final = {"TLSv1_0": _RUSTLS, "TLSv1_1": _RUSTLS}
_STAPLE_POLICIES: Final = {
    "LENIENT_STAPLING": "lenient",
    "STRICT_STAPLING": "strict",
    "MUST_STAPLE": "must_staple",
}


@dataclass(frozen=True, slots=True)
class _Validation:
    """A validation context as read, before its SDS merge (None: unset)."""

    ca: str | None
    sans: list[dict[str, Any]]
    crl: str | None = None
    leaf_crl_only: bool = False
    #: Its name in Envoy's expiry gauge, when not the native default (see `_inline_name`).
    ca_name: str | None = None
    #: `verify_certificate_hash` and `verify_certificate_spki`, as written (checked).
    hashes: list[str] = field(default_factory=list)
    spkis: list[str] = field(default_factory=list)

    def secret(self) -> dict[str, Any]:
        """As a `validation_context` secret's value (see `_sources.Secret`)."""
        return {
            "trusted_ca_pem": self.ca,
            "sans": self.sans,
            "crl_pem": self.crl,
            "only_verify_leaf_cert_crl": self.leaf_crl_only,
            "hashes": self.hashes,
            "spkis": self.spkis,
        }

    @staticmethod
    def of_secret(value: dict[str, Any]) -> _Validation:
        return _Validation(
            value["trusted_ca_pem"],
            value["sans"],
            value["crl_pem"],
            value["only_verify_leaf_cert_crl"],
            hashes=value["hashes"],
            spkis=value["spkis"],
        )


# --- certificates and keys -------------------------------------------------------------


def _pem_certificates(issues: Issues, text: str, origin: str, path: str) -> list[Any] | None:
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificates(text.encode())
    except ValueError as exc:
        issues.add(path, f"{origin}: not a PEM certificate chain ({exc})")
        return None


def _pem_crls(issues: Issues, text: str, origin: str, path: str) -> bool:
    """Whether `text` is one or more PEM CRLs (a problem at `path` otherwise). As webpki,
    only RFC 5280's v2 CRLs, which carry extensions (the CRL number at least)."""
    from cryptography import x509

    marker = "-----BEGIN X509 CRL-----"
    blocks = [marker + b for b in text.split(marker)[1:]]
    try:
        if not blocks:
            raise ValueError("no -----BEGIN X509 CRL----- block")
        for block in blocks:
            if not x509.load_pem_x509_crl(block.encode()).extensions:
                raise ValueError(f"a v1 CRL (without extensions) is {NOT_SUPPORTED}")
    except ValueError as exc:
        issues.add(path, f"{origin}: not a PEM certificate revocation list ({exc})")
        return False
    return True


def _inline_name(prefix: str, source: object, text: str) -> str | None:
    """Envoy's name for a certificate that is not an SDS secret, in its
    `ssl.certificate.<name>.expiration_unix_time_seconds` gauge: `<prefix>_` and the first
    8 hex digits of the SHA-256 of its `inline_bytes`; None for a file or `inline_string`,
    whose name is the hash of nothing (the native default)."""
    if isinstance(source, dict) and "inline_bytes" in source:
        return f"{prefix}_{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    return None


def _check_key(issues: Issues, text: str, origin: str, path: str, leaf: Any) -> None:
    """`text` must be an unencrypted PEM private key matching `leaf` (when it parsed)."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError) as exc:  # TypeError: encrypted
        issues.add(path, f"{origin}: not an unencrypted PEM private key ({exc})")
        return
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf is not None and key.public_key().public_bytes(*spki) != leaf.public_key().public_bytes(
        *spki
    ):
        issues.add(
            path, f"{origin}: not the private key of the certificate_chain's first certificate"
        )


def tls_certificate(
    issues: Issues, raw: object, path: str, sources: Sources
) -> dict[str, Any] | None:
    """A `TlsCertificate` -> native {cert_chain_pem, private_key_pem}, checked."""
    tc = obj(issues, raw, path, _CERTIFICATE)
    if tc is None:
        return None
    parts: dict[str, tuple[str, str]] = {}
    for key in ("certificate_chain", "private_key"):
        if key not in tc:
            issues.add(at(path, key), "required field is missing")
            continue
        got = sources.data_source(issues, tc[key], at(path, key))
        if got is not None:
            parts[key] = got
    leaf = None
    if "certificate_chain" in parts:
        text, origin = parts["certificate_chain"]
        certs = _pem_certificates(issues, text, origin, at(path, "certificate_chain"))
        if certs is None:
            return None
        leaf = certs[0]
    if "private_key" in parts:
        text, origin = parts["private_key"]
        _check_key(issues, text, origin, at(path, "private_key"), leaf)
    staple = None
    if "ocsp_staple" in tc:
        staple = _ocsp_staple(issues, tc["ocsp_staple"], at(path, "ocsp_staple"), sources, leaf)
        if staple is None:
            return None
    if len(parts) != 2:
        return None
    chain = parts["certificate_chain"][0]
    out: dict[str, Any] = {"cert_chain_pem": chain, "private_key_pem": parts["private_key"][0]}
    name = _inline_name("unnamed_cert", tc["certificate_chain"], chain)
    if name is not None:
        out["cert_name"] = name
    if staple is not None:
        out["ocsp_staple"] = staple
    return out


def _ocsp_staple(
    issues: Issues, raw: object, path: str, sources: Sources, leaf: Any
) -> dict[str, Any] | None:
    """`TlsCertificate.ocsp_staple` (a DER OCSP response, from a file or inline_bytes, as
    Envoy takes it) -> native {der_hex, next_update}: a successful response for `leaf`."""
    from cryptography.x509 import ocsp

    if isinstance(raw, dict) and "inline_string" in raw:
        issues.add(at(path, "inline_string"), "a DER OCSP response: use filename or inline_bytes")
        return None
    got = sources.data_bytes(issues, raw, path)
    if got is None:
        return None
    der, origin = got
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        issues.add(path, f"{origin}: not a DER OCSP response ({exc})")
        return None
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        issues.add(path, f"{origin}: the OCSP response is {response.response_status.name}")
        return None
    if leaf is not None and response.serial_number != leaf.serial_number:
        issues.add(path, f"{origin}: the OCSP response is not for the certificate_chain's leaf")
        return None
    out: dict[str, Any] = {"der_hex": der.hex()}
    if response.next_update_utc is not None:
        out["next_update"] = int(response.next_update_utc.timestamp())
    return out


# --- validation contexts ---------------------------------------------------------------


def _san_matcher(issues: Issues, raw: object, path: str) -> dict[str, Any] | None:
    m = obj(issues, raw, path, _SAN_MATCHER)
    if m is None:
        return None
    if "san_type" not in m:
        issues.add(
            at(path, "san_type"), f"required field is missing (one of {', '.join(_SAN_TYPES)})"
        )
    san_type = get_enum(
        issues, m, "san_type", path, _SAN_TYPES, "", rejected={"OTHER_NAME": NOT_SUPPORTED}
    )
    if "matcher" not in m:
        issues.add(at(path, "matcher"), "required field is missing")
        return None
    matcher = string_matcher(issues, m["matcher"], at(path, "matcher"))
    if not san_type or matcher is None:
        return None
    return {"san_type": san_type, "matcher": matcher}


def _validation_context(
    issues: Issues, raw: object, path: str, sources: Sources
) -> _Validation | None:
    """A `CertificateValidationContext` -> (trusted CA PEM or None, SAN matchers)."""
    v = obj(issues, raw, path, _VALIDATION)
    if v is None:
        return None
    ca = ca_name = None
    if "trusted_ca" in v:
        got = sources.data_source(issues, v["trusted_ca"], at(path, "trusted_ca"))
        if got is None:
            return None
        ca, origin = got
        if _pem_certificates(issues, ca, origin, at(path, "trusted_ca")) is None:
            return None
        ca_name = _inline_name("unnamed_ca_cert", v["trusted_ca"], ca)
    crl = None
    if "crl" in v:
        got = sources.data_source(issues, v["crl"], at(path, "crl"))
        if got is None or not _pem_crls(issues, *got, at(path, "crl")):
            return None
        crl = got[0]
    leaf_crl_only = get_bool(issues, v, "only_verify_leaf_cert_crl", path) or False
    base = at(path, "match_typed_subject_alt_names")
    sans = [
        _san_matcher(issues, m, item(base, i))
        for i, m in enumerate(get_list(issues, v, "match_typed_subject_alt_names", path))
    ]
    hashes = _digests(issues, v, "verify_certificate_hash", path, _is_sha256_hex, _HASH_FORM)
    spkis = _digests(issues, v, "verify_certificate_spki", path, _is_sha256_base64, _SPKI_FORM)
    if None in sans or hashes is None or spkis is None:
        return None
    return _Validation(ca, sans, crl, leaf_crl_only, ca_name, hashes, spkis)  # type: ignore[arg-type]


_HASH_FORM: Final = (
    "a hex SHA-256 of the certificate: 64 hex digits, or 32 colon-separated pairs "
    "(openssl x509 -noout -fingerprint -sha256)"
)
_SPKI_FORM: Final = (
    "a base64 SHA-256 of the certificate's SubjectPublicKeyInfo: 44 characters ending in '='"
)


def _is_sha256_hex(text: str) -> bool:
    """Envoy's `verify_certificate_hash`: 64 hex digits, or the 95-character fingerprint
    (colons dropped only at that length, as Envoy)."""
    digits = text.replace(":", "") if len(text) == 95 else text
    return len(digits) == 64 and all(c in string.hexdigits for c in digits)


def _is_sha256_base64(text: str) -> bool:
    """Envoy's `verify_certificate_spki`: padded standard base64 of 32 bytes."""
    try:
        return len(text) == 44 and len(base64.b64decode(text, validate=True)) == 32
    except binascii.Error:
        return False


def _digests(
    issues: Issues, v: Doc, key: str, path: str, valid: Callable[[str], bool], form: str
) -> list[str] | None:
    """`verify_certificate_hash` or `_spki`: a list of digests, each `valid`."""
    base = at(path, key)
    given = get_list(issues, v, key, path)
    out = [raw for raw in given if isinstance(raw, str) and valid(raw)]
    if len(out) == len(given):
        return out
    for i, raw in enumerate(given):
        if not isinstance(raw, str) or not valid(raw):
            issues.add(item(base, i), f"expected {form}, got {raw!r}")
    return None


def _secret(
    issues: Issues, raw: object, path: str, kind: str, sources: Sources
) -> dict[str, Any] | None:
    """An `SdsSecretConfig` -> the secret it names, which must be of `kind`: a static one,
    or with `sds_config: {ads: {}}` one received over SDS. An SDS secret not received yet
    is None without a problem, counted in `sources.awaited`."""
    ref = obj(issues, raw, path, _SDS_REF)
    if ref is None:
        return None
    name = get_str(issues, ref, "name", path, required=True, non_empty=True)
    over_sds = "sds_config" in ref
    if over_sds:
        config_source(issues, ref, "sds_config", path)
        if sources.sds is None:
            issues.add(at(path, "sds_config"), "SDS needs dynamic_resources.ads_config")
            return None
    if name is None:
        return None
    secrets = sources.sds if sources.sds is not None and over_sds else sources.secrets
    if over_sds:
        sources.sds_names.add(name)
        if name not in secrets:
            sources.awaited += 1
            return None
    elif name not in secrets:
        issues.add(at(path, "name"), f"unknown secret {name!r} (no static_resources.secrets entry)")
        return None
    secret_kind, value = secrets[name]
    if secret_kind != kind:
        issues.add(at(path, "name"), f"secret {name!r} is a {secret_kind}, expected a {kind}")
        return None
    return value  # None: the secret itself has problems, reported at its own path


def _finish_validation(issues: Issues, v: _Validation, path: str) -> dict[str, Any] | None:
    """A validation context -> native `CertValidation`; None when nothing is verified."""
    if v.ca is None:
        # As Envoy: SAN checks without a CA would trust any self-made certificate, and a
        # CRL is checked against the trusted CAs. Pins alone are enough (pinning).
        if v.sans:
            issues.add(path, "match_typed_subject_alt_names needs trusted_ca")
        if v.crl is not None:
            issues.add(path, "crl needs trusted_ca")
        if v.sans or v.crl is not None or not (v.hashes or v.spkis):
            return None
    out: dict[str, Any] = {}
    if v.ca is not None:
        out["trusted_ca_pem"] = v.ca
    if v.hashes:
        out["verify_certificate_hash"] = v.hashes
    if v.spkis:
        out["verify_certificate_spki"] = v.spkis
    if v.ca_name is not None:
        out["ca_name"] = v.ca_name
    if v.sans:
        out["match_subject_alt_names"] = v.sans
    if v.crl is not None:
        out["crl_pem"] = v.crl
    if v.leaf_crl_only:
        out["only_verify_leaf_cert_crl"] = True
    return out


def _validation(issues: Issues, c: Doc, path: str, sources: Sources) -> dict[str, Any] | None:
    """The one validation context of a `CommonTlsContext` -> native `CertValidation`."""
    if not any(k in c for k in _VALIDATION_KINDS):
        return None
    kind = one_of(issues, c, path, _VALIDATION_KINDS)
    if kind is None:
        return None
    p = at(path, kind)
    if kind == "validation_context":
        v = _validation_context(issues, c[kind], p, sources)
    elif kind == "validation_context_sds_secret_config":
        secret = _secret(issues, c[kind], p, "validation_context", sources)
        v = None
        if secret is not None:
            v = replace(_Validation.of_secret(secret), ca_name=_ref_name(c[kind]))
    else:
        v = _combined(issues, c[kind], p, sources)
    return None if v is None else _finish_validation(issues, v, p)


def _ref_name(ref: object) -> str:
    """The name of an `SdsSecretConfig` that `_secret` accepted (so it has one)."""
    assert isinstance(ref, Mapping) and isinstance(ref["name"], str)
    return ref["name"]


def _combined(issues: Issues, raw: object, path: str, sources: Sources) -> _Validation | None:
    """Envoy merges the SDS context into the default one (proto `MergeFrom`): the
    secret's CA and CRL win when set, the SAN matchers of both apply."""
    cv = obj(issues, raw, path, _COMBINED)
    if cv is None:
        return None
    for key in _COMBINED:
        if key not in cv:
            issues.add(at(path, key), "required field is missing")
    if not _COMBINED.issubset(cv):
        return None
    default = _validation_context(
        issues, cv["default_validation_context"], at(path, "default_validation_context"), sources
    )
    secret = _secret(
        issues,
        cv["validation_context_sds_secret_config"],
        at(path, "validation_context_sds_secret_config"),
        "validation_context",
        sources,
    )
    if default is None or secret is None:
        return None
    sds = _Validation.of_secret(secret)
    return _Validation(
        sds.ca or default.ca,
        default.sans + sds.sans,
        sds.crl or default.crl,
        sds.leaf_crl_only or default.leaf_crl_only,
        # As Envoy, the merged context is named by the secret.
        _ref_name(cv["validation_context_sds_secret_config"]),
        default.hashes + sds.hashes,
        default.spkis + sds.spkis,
    )


# --- common, downstream, upstream ------------------------------------------------------


def _certificate(issues: Issues, c: Doc, path: str, sources: Sources) -> dict[str, Any] | None:
    """The context's one certificate: `tls_certificates[0]` or a static SDS secret."""
    inline = get_list(issues, c, "tls_certificates", path)
    refs = get_list(issues, c, "tls_certificate_sds_secret_configs", path)
    if len(inline) + len(refs) > 1:
        issues.add(
            path,
            "expected one certificate in tls_certificates or tls_certificate_sds_secret_configs; "
            f"several (e.g. RSA and ECDSA) are {NOT_SUPPORTED}",
        )
        return None
    if inline:
        return tls_certificate(issues, inline[0], item(at(path, "tls_certificates"), 0), sources)
    if refs:
        p = item(at(path, "tls_certificate_sds_secret_configs"), 0)
        secret = _secret(issues, refs[0], p, "tls_certificate", sources)
        return None if secret is None else {**secret, "cert_name": _ref_name(refs[0])}
    return None


def _alpn(issues: Issues, c: Doc, path: str) -> list[str]:
    out = []
    base = at(path, "alpn_protocols")
    for i, proto in enumerate(get_list(issues, c, "alpn_protocols", path)):
        if not isinstance(proto, str) or not proto:
            issues.add(item(base, i), f"expected a protocol name like h2, got {proto!r}")
        else:
            out.append(proto)
    return out


def _min_version(issues: Issues, c: Doc, path: str) -> str:
    """`tls_params` -> the native minimum version; the maximum must be TLS 1.3 (or unset)."""
    params = get_map(issues, c, "tls_params", path, _PARAMS)
    if params is None:
        return "1.2"
    p = at(path, "tls_params")
    low = get_enum(
        issues, params, "tls_minimum_protocol_version", p, _MIN_VERSIONS, "1.2",
        rejected=_OLD_VERSIONS,
    )  # fmt: skip
    get_enum(
        issues, params, "tls_maximum_protocol_version", p, _MAX_VERSIONS, "",
        rejected={**_OLD_VERSIONS, "TLSv1_2": f"{NOT_SUPPORTED}: the maximum is always TLS 1.3"},
    )  # fmt: skip
    return low


@dataclass(frozen=True, slots=True)
class _Common:
    """What a `CommonTlsContext` says (all of it optional)."""

    #: Whether it names a certificate at all (`certificate` is also None when that
    #: certificate has problems, reported at its path).
    names_certificate: bool = False
    #: Native {cert_chain_pem, private_key_pem}.
    certificate: dict[str, Any] | None = None
    #: Native `CertValidation`.
    validation: dict[str, Any] | None = None
    alpn: list[str] = field(default_factory=list)
    min_version: str = "1.2"
    #: An SDS secret it names has not been received yet.
    awaited: bool = False


def _common(issues: Issues, ctx: Doc, path: str, sources: Sources) -> _Common | None:
    """A TLS context's `common_tls_context` -> `_Common`; None if it is not a mapping."""
    if "common_tls_context" not in ctx:
        return _Common()
    p = at(path, "common_tls_context")
    c = obj(issues, ctx["common_tls_context"], p, _COMMON)
    if c is None:
        return None
    awaited = sources.awaited
    return _Common(
        names_certificate=bool(
            c.get("tls_certificates") or c.get("tls_certificate_sds_secret_configs")
        ),
        certificate=_certificate(issues, c, p, sources),
        validation=_validation(issues, c, p, sources),
        alpn=_alpn(issues, c, p),
        min_version=_min_version(issues, c, p),
        awaited=sources.awaited > awaited,
    )


def _socket(
    issues: Issues, raw: object, path: str, type_name: str, allowed: frozenset[str]
) -> Doc | None:
    """A `TransportSocket` -> its TLS context (`typed_config` of `type_name`)."""
    sock = obj(issues, raw, path, _SOCKET)
    if sock is None:
        return None
    get_str(issues, sock, "name", path, required=True, non_empty=True)
    return typed_config(issues, sock, "typed_config", path, type_name, allowed)


def downstream_tls(
    issues: Issues, raw: object, path: str, sources: Sources
) -> dict[str, Any] | None:
    """A listener's `transport_socket` -> native `DownstreamTls`."""
    ctx = _socket(issues, raw, path, DOWNSTREAM_TLS_TYPE, _DOWNSTREAM)
    if ctx is None:
        return None
    p = at(path, "typed_config")
    common = _common(issues, ctx, p, sources)
    require = get_bool(issues, ctx, "require_client_certificate", p) or False
    if common is None or common.awaited:  # the listener waits for its secrets (warming)
        return None
    cert = common.certificate
    if cert is None:
        if not common.names_certificate:
            issues.add(
                at(p, "common_tls_context"),
                "a server needs a certificate: tls_certificates or "
                "tls_certificate_sds_secret_configs",
            )
        return None
    validation = common.validation
    if require and validation is None:
        issues.add(
            at(p, "require_client_certificate"),
            "requiring a client certificate needs a validation context with trusted_ca or "
            "verify_certificate_hash/spki",
        )
        return None
    policy_at = at(p, "ocsp_staple_policy")
    policy = get_enum(issues, ctx, "ocsp_staple_policy", p, _STAPLE_POLICIES, "lenient")
    out: dict[str, Any] = dict(cert)
    if "ocsp_staple" not in out and _must_staple(out["cert_chain_pem"]):
        # As Envoy, whatever the policy (the engine then serves it as MUST_STAPLE).
        issues.add(
            _certificate_at(ctx, p),
            "the certificate is OCSP must-staple (TLS feature status_request): "
            "it needs an ocsp_staple",
        )
        return None
    if "ocsp_staple" in out:
        out["ocsp_staple"] = {**out["ocsp_staple"], "policy": policy}
    elif policy == "must_staple":  # as Envoy: a config error
        issues.add(policy_at, "MUST_STAPLE needs the certificate's ocsp_staple")
        return None
    if common.alpn:
        out["alpn"] = common.alpn
    if require:
        out["require_client_certificate"] = True
    if validation is not None:
        out["validation"] = validation
    if common.min_version != "1.2":
        out["min_version"] = common.min_version
    return out


def _must_staple(chain_pem: str) -> bool:
    """Whether the chain's leaf has RFC 7633's TLS feature with exactly `status_request`
    (the value Envoy compares with)."""
    from cryptography import x509

    leaf = x509.load_pem_x509_certificates(chain_pem.encode())[0]
    try:
        feature = leaf.extensions.get_extension_for_class(x509.TLSFeature).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    return list(feature) == [x509.TLSFeatureType.status_request]


def _certificate_at(ctx: Doc, path: str) -> str:
    """The path of a (translated) context's one certificate."""
    common = at(path, "common_tls_context")
    c = ctx.get("common_tls_context")
    inline = isinstance(c, Mapping) and bool(c.get("tls_certificates"))
    key = "tls_certificates" if inline else "tls_certificate_sds_secret_configs"
    return item(at(common, key), 0)


def upstream_tls(
    issues: Issues, raw: object, path: str, sources: Sources, *, http2: bool
) -> dict[str, Any] | None:
    """A cluster's `transport_socket` -> native `UpstreamTls`.

    Without `alpn_protocols`, an HTTP/2 cluster offers `h2`, as Envoy's does. None, with
    `sources.awaited` grown, while an SDS secret it names has not arrived.
    """
    ctx = _socket(issues, raw, path, UPSTREAM_TLS_TYPE, _UPSTREAM)
    if ctx is None:
        return None
    p = at(path, "typed_config")
    common = _common(issues, ctx, p, sources)
    sni = get_str(issues, ctx, "sni", p, non_empty=True)
    if common is None or common.awaited:
        return None
    if common.min_version != "1.2":
        issues.add(
            at(at(at(p, "common_tls_context"), "tls_params"), "tls_minimum_protocol_version"),
            f"TLSv1_3 upstream is {NOT_SUPPORTED} (upstream connections offer TLS 1.2 and 1.3)",
        )
    out: dict[str, Any] = dict(common.certificate or {})
    if out.pop("ocsp_staple", None) is not None:
        issues.add(at(p, "common_tls_context"), "ocsp_staple is for a listener's certificate")
    if common.validation is not None:
        out["validation"] = common.validation
    if sni is not None:
        out["sni"] = sni
    alpn = common.alpn or (["h2"] if http2 else [])
    if alpn:
        out["alpn"] = alpn
    return out


# --- static secrets --------------------------------------------------------------------


def translate_secrets(issues: Issues, secrets: list[object], path: str, sources: Sources) -> None:
    """`static_resources.secrets` -> `sources.secrets` (each translated once, here)."""
    first: dict[str, str] = {}
    for i, raw in enumerate(secrets):
        p = item(path, i)
        found = _translate_secret(issues, raw, p, sources)
        if found is None:
            continue
        name, secret = found
        if first.setdefault(name, p) != p:
            issues.add(at(p, "name"), f"duplicate secret name {name!r} (first at {first[name]})")
            continue
        sources.secrets[name] = secret


def translate_sds_secrets(issues: Issues, secrets: Mapping[str, object], sources: Sources) -> None:
    """Secrets received over SDS (by resource name) -> `sources.sds`; errors read
    `Secret[name]...`."""
    sds = sources.sds = {}
    for name, raw in secrets.items():
        found = _translate_secret(issues, raw, f"Secret[{name}]", sources)
        if found is not None:
            sds[found[0]] = found[1]


def _translate_secret(
    issues: Issues, raw: object, path: str, sources: Sources
) -> tuple[str, Secret] | None:
    """One `Secret` -> (name, (kind, value)); None when it has no usable name or kind."""
    s = obj(issues, raw, path, _SECRET)
    if s is None:
        return None
    name = get_str(issues, s, "name", path, required=True, non_empty=True)
    kind = one_of(issues, s, path, _SECRET_KINDS)
    value: dict[str, Any] | None = None
    if kind == "tls_certificate":
        value = tls_certificate(issues, s[kind], at(path, kind), sources)
    elif kind == "validation_context":
        v = _validation_context(issues, s[kind], at(path, kind), sources)
        value = None if v is None else v.secret()
    if name is None or kind is None:
        return None
    return name, (kind, value)
