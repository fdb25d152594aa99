"""TLS contexts naming secrets over SDS (`sds_config: {ads: {}}`), translated with what ADS
delivered: a received secret is used like a static one; a missing one keeps the snapshot
warming, and nothing meant to be TLS is ever translated as plaintext meanwhile."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import pytest

from fastmesh.config import ConfigError, DynamicResources, translate_bootstrap
from tests.controlplane.harness import ads_bootstrap
from tests.support.pki import Pki as SupportPki
from tests.unit.tls_docs import SERVER_ID, Pem, Pki, downstream, inline, upstream

ADS = {"ads": {}, "resource_api_version": "V3"}
BOOTSTRAP = ads_bootstrap(admin_port=9901, xds_port=15010, node_id="sidecar~1~a.default~x")
COMMON: dict[str, Any] = {
    "tls_certificate_sds_secret_configs": [{"name": "default", "sds_config": ADS}],
    "validation_context_sds_secret_config": {"name": "ROOTCA", "sds_config": ADS},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Pem:
    return Pki(Path(tmp_path_factory.mktemp("pki"))).issue(SERVER_ID)


def secrets(pem: Pem) -> dict[str, Any]:
    """Istio's two secrets as the control plane sends them (bytes as proto3 JSON base64)."""
    b64 = {"inline_bytes": base64.b64encode(pem.key.encode()).decode()}
    return {
        "default": {
            "name": "default",
            "tls_certificate": {"certificate_chain": inline(pem.chain), "private_key": b64},
        },
        "ROOTCA": {"name": "ROOTCA", "validation_context": {"trusted_ca": inline(pem.roots)}},
    }


def doc() -> dict[str, Any]:
    """The ADS bootstrap plus a static mTLS listener and a TLS cluster, both over SDS."""
    out = copy.deepcopy(BOOTSTRAP)
    static = out["static_resources"]
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager"
        ".v3.HttpConnectionManager",
        "stat_prefix": "inbound",
        "route_config": {"virtual_hosts": []},
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            }
        ],
    }
    static["listeners"] = [
        {
            "name": "inbound",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 15006}},
            "filter_chains": [
                {
                    "filters": [
                        {
                            "name": "envoy.filters.network.http_connection_manager",
                            "typed_config": hcm,
                        }
                    ],
                    "transport_socket": downstream(
                        require_client_certificate=True, common_tls_context=copy.deepcopy(COMMON)
                    ),
                }
            ],
        }
    ]
    endpoint = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 8443}}}
    static["clusters"].append(
        {
            "name": "peer",
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {
                "cluster_name": "peer",
                "endpoints": [{"lb_endpoints": [{"endpoint": endpoint}]}],
            },
            "transport_socket": upstream(common_tls_context=copy.deepcopy(COMMON)),
        }
    )
    return out


def test_received_secrets_are_used_like_static_ones(server: Pem) -> None:
    boot = translate_bootstrap(doc(), "boot", dynamic=DynamicResources(secrets=secrets(server)))
    assert boot.sds_names == ("ROOTCA", "default")
    assert boot.warming == ()
    (listener,) = boot.snapshot["listeners"]
    assert listener["tls"]["cert_chain_pem"] == server.chain
    assert listener["tls"]["private_key_pem"] == server.key
    assert listener["tls"]["cert_name"] == "default"
    roots = {"trusted_ca_pem": server.roots, "ca_name": "ROOTCA"}
    assert listener["tls"]["validation"] == roots
    assert listener["tls"]["require_client_certificate"] is True
    peer = next(c for c in boot.snapshot["clusters"] if c["name"] == "peer")
    assert peer["tls"]["validation"] == roots
    assert [e["port"] for e in peer["endpoints"]] == [8443]


def test_missing_secrets_warm_and_never_fall_back_to_plaintext(server: Pem) -> None:
    """Before SDS answers: the listener is not bound at all and the cluster has no hosts."""
    for received in ({}, {"default": secrets(server)["default"]}):
        boot = translate_bootstrap(doc(), "boot", dynamic=DynamicResources(secrets=received))
        missing = sorted({"default", "ROOTCA"} - set(received))
        assert boot.warming == tuple(f"Secret {n}" for n in missing)
        assert boot.snapshot["listeners"] == []
        peer = next(c for c in boot.snapshot["clusters"] if c["name"] == "peer")
        assert "tls" not in peer and peer["endpoints"] == []


def test_a_bad_received_secret_is_an_error_at_its_resource(server: Pem) -> None:
    received = secrets(server)
    good = secrets(server)["default"]["tls_certificate"]
    received["default"]["tls_certificate"]["certificate_chain"] = inline("junk")
    received["ROOTCA"] = {"name": "ROOTCA", "tls_certificate": good}
    with pytest.raises(ConfigError) as info:
        translate_bootstrap(doc(), "boot", dynamic=DynamicResources(secrets=received))
    found = {p.path: p.message for p in info.value.problems}
    common = "static_resources.{}.transport_socket.typed_config.common_tls_context"
    bad_ca = "secret 'ROOTCA' is a tls_certificate, expected a validation_context"
    assert found == {
        "Secret[default].tls_certificate.certificate_chain": "the inline value: not a PEM "
        "certificate chain (Unable to load PEM file. See https://cryptography.io/en/latest/faq"
        "/#why-can-t-i-import-my-pem-file for more details. MalformedFraming)",
        f"{common.format('listeners[0].filter_chains[0]')}.validation_context_sds_secret_config"
        ".name": bad_ca,
        f"{common.format('clusters[1]')}.validation_context_sds_secret_config.name": bad_ca,
    }


def test_a_must_staple_secret_needs_its_staple(tmp_path: Path, server: Pem) -> None:
    """An OCSP must-staple certificate over SDS is held to what a static one is: refused
    on the listener without an `ocsp_staple` (the error at its reference to the secret; a
    cluster presenting it as a client certificate is fine, as in Envoy), served with one."""
    pki = SupportPki(tmp_path / "pki")
    leaf = pki.issue("must.test", must_staple=True)
    received = secrets(server)
    cert = received["default"]["tls_certificate"]
    cert["certificate_chain"] = inline(leaf.cert_file.read_text())
    cert["private_key"] = inline(leaf.key_file.read_text())
    with pytest.raises(ConfigError) as info:
        translate_bootstrap(doc(), "boot", dynamic=DynamicResources(secrets=received))
    found = {p.path: p.message for p in info.value.problems}
    common = "static_resources.listeners[0].filter_chains[0].transport_socket.typed_config"
    assert found == {
        f"{common}.common_tls_context.tls_certificate_sds_secret_configs[0]": "the certificate "
        "is OCSP must-staple (TLS feature status_request): it needs an ocsp_staple"
    }
    der = pki.ocsp_staple(leaf).read_bytes()
    cert["ocsp_staple"] = {"inline_bytes": base64.b64encode(der).decode()}
    listener_only = doc()  # a staple is for a listener's certificate only, as in Envoy
    static = listener_only["static_resources"]
    static["clusters"] = [c for c in static["clusters"] if c["name"] != "peer"]
    boot = translate_bootstrap(listener_only, "boot", dynamic=DynamicResources(secrets=received))
    (listener,) = boot.snapshot["listeners"]
    assert listener["tls"]["cert_chain_pem"] == leaf.cert_file.read_text()
    assert bytes.fromhex(listener["tls"]["ocsp_staple"]["der_hex"]) == der
