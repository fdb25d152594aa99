"""The translator on TLS: listener and cluster transport sockets, static secrets, Istio's
permissive chain pair, and the files a config references (what live reload watches).

Valid cases state the exact native JSON; error cases the exact path and message.
"""

from __future__ import annotations

import base64
import copy
import json
import pickle
import zlib
from pathlib import Path
from typing import Any

import pytest

from fastmesh.config import ConfigError, translate_bootstrap, translate_resources
from fastmesh.config._compile import (
    compile_bootstrap,
    decode,
    encode,
    encode_error,
    redact_private_keys,
)
from fastmesh.config._stamp import stamp

from .envoy_docs import bootstrap, cluster, hcm, listener, tcp_listener
from .tls_docs import (
    CLIENT_ID,
    SERVER_ID,
    Pem,
    Pki,
    certificate,
    downstream,
    file,
    inline,
    upstream,
    uri_san,
)

NOT_SUPPORTED = "not supported by fastmesh yet (see docs/envoy-subset.md)"
L0 = "static_resources.listeners[0]"
CHAIN0 = f"{L0}.filter_chains[0]"
SOCKET = f"{CHAIN0}.transport_socket.typed_config"
COMMON = f"{SOCKET}.common_tls_context"
CLUSTER_COMMON = "static_resources.clusters[0].transport_socket.typed_config.common_tls_context"
INSPECTOR = {
    "name": "envoy.filters.listener.tls_inspector",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3."
        "TlsInspector"
    },
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def server(pki: Pki) -> Pem:
    return pki.issue(SERVER_ID)


@pytest.fixture
def files(pki: Pki, tmp_path: Path) -> dict[str, Path]:
    """The server's certificate, key and the roots as files of their own (per test)."""
    return pki.write(SERVER_ID, tmp_path)


def translate(doc: dict[str, Any]) -> dict[str, Any]:
    return translate_bootstrap(doc, "test.yaml").snapshot


def problems(doc: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        translate_bootstrap(doc, "envoy.yaml")
    return {p.path: p.message for p in info.value.problems}


def tls_listener(socket: dict[str, Any], **extra: Any) -> dict[str, Any]:
    lst = listener(**extra)
    lst["filter_chains"][0]["transport_socket"] = socket
    return lst


def server_socket(pem: Pem, **context: Any) -> dict[str, Any]:
    common = {"tls_certificates": [certificate(inline(pem.chain), inline(pem.key))]}
    return downstream(common_tls_context={**common, **context.pop("common", {})}, **context)


class TestDownstream:
    def test_files_are_read_and_reported(self, files: dict[str, Path]) -> None:
        socket = downstream(
            require_client_certificate=True,
            common_tls_context={
                "tls_params": {"tls_minimum_protocol_version": "TLSv1_3"},
                "tls_certificates": [certificate(file(files["chain"]), file(files["key"]))],
                "validation_context": {
                    "trusted_ca": file(files["roots"]),
                    "match_typed_subject_alt_names": [
                        uri_san(CLIENT_ID.uri),
                        {"san_type": "DNS", "matcher": {"suffix": ".mesh", "ignore_case": True}},
                    ],
                },
                "alpn_protocols": ["h2", "http/1.1"],
            },
        )
        b = translate_bootstrap(bootstrap([tls_listener(socket)]), "test.yaml")
        assert b.snapshot["listeners"][0]["tls"] == {
            "cert_chain_pem": files["chain"].read_text(),
            "private_key_pem": files["key"].read_text(),
            "alpn": ["h2", "http/1.1"],
            "require_client_certificate": True,
            "validation": {
                "trusted_ca_pem": files["roots"].read_text(),
                "match_subject_alt_names": [
                    {
                        "san_type": "uri",
                        "matcher": {"kind": {"exact": CLIENT_ID.uri}, "ignore_case": False},
                    },
                    {
                        "san_type": "dns",
                        "matcher": {"kind": {"suffix": ".mesh"}, "ignore_case": True},
                    },
                ],
            },
            "min_version": "1.3",
        }
        assert b.files == {str(files[k]): stamp(files[k]) for k in ("chain", "key", "roots")}
        assert list(b.files) == [str(files["chain"]), str(files["key"]), str(files["roots"])]

    def test_minimal_server_context_and_tls_auto(self, server: Pem) -> None:
        socket = server_socket(
            server,
            common={
                "tls_params": {
                    "tls_minimum_protocol_version": "TLS_AUTO",
                    "tls_maximum_protocol_version": "TLSv1_3",
                }
            },
        )
        lst = translate(bootstrap([tls_listener(socket)]))["listeners"][0]
        assert lst["tls"] == {"cert_chain_pem": server.chain, "private_key_pem": server.key}
        assert list(lst) == ["name", "address", "tls", "filter", "chain_id"]

    def test_rotating_a_file_changes_the_version(self, files: dict[str, Path]) -> None:
        socket = downstream(
            common_tls_context={
                "tls_certificates": [certificate(file(files["chain"]), file(files["key"]))]
            }
        )
        doc = bootstrap([tls_listener(socket)])
        first = translate_bootstrap(doc, "test.yaml")
        assert translate_bootstrap(doc, "test.yaml").version == first.version
        assert first.snapshot["version"] == first.version
        files["chain"].write_text(files["chain"].read_text() + "\n")
        rotated = translate_bootstrap(doc, "test.yaml")
        assert len(rotated.version) == 12
        assert rotated.version != first.version
        assert rotated.snapshot["version"] == rotated.version

    def test_permissive_pair_is_one_listener_allowing_plaintext(self, server: Pem) -> None:
        tls_chain = {
            "filter_chain_match": {"transport_protocol": "tls"},
            "filters": tcp_listener()["filter_chains"][0]["filters"],
            "transport_socket": server_socket(server),
        }
        plain_chain = {
            "name": "plaintext",
            "filter_chain_match": {"transport_protocol": "raw_buffer"},
            "filters": copy.deepcopy(tls_chain["filters"]),
        }
        lst = tcp_listener()
        lst["listener_filters"] = [INSPECTOR]
        lst["filter_chains"] = [plain_chain, tls_chain]
        native = translate(bootstrap([lst]))["listeners"][0]
        ids = {key: native.pop(key) for key in ("chain_id", "plaintext_chain_id")}
        assert native == {
            "name": "tcp",
            "address": "127.0.0.1:10001",
            "tls": {
                "cert_chain_pem": server.chain,
                "private_key_pem": server.key,
                "allow_plaintext": True,
            },
            "filter": {"type": "tcp", "stat_prefix": "tcp", "cluster": "backend"},
        }
        # Each side is known as the lone chain it stands for (STRICT's TLS chain, with or
        # without its match; DISABLE's plaintext one), so a mode change drains only the
        # connections of the side that goes.
        strict = tcp_listener()
        strict["filter_chains"] = [{k: tls_chain[k] for k in ("filters", "transport_socket")}]
        assert translate(bootstrap([strict]))["listeners"][0]["chain_id"] == ids["chain_id"]
        assert (
            translate(bootstrap([tcp_listener()]))["listeners"][0]["chain_id"]
            == (ids["plaintext_chain_id"])
        )

    def test_single_tls_chain_may_match_its_transport(self, server: Pem) -> None:
        lst = tls_listener(server_socket(server), listener_filters=[{"name": INSPECTOR["name"]}])
        lst["filter_chains"][0]["filter_chain_match"] = {"transport_protocol": "tls"}
        assert "allow_plaintext" not in translate(bootstrap([lst]))["listeners"][0]["tls"]


class TestSecrets:
    def test_istio_sidecar_shape_with_static_secrets(self, server: Pem) -> None:
        # The contexts our control plane's Envoy sidecars use (tests/controlplane/
        # test_sds_envoy.py `tls_context`): certificate from secret `default`, trust from
        # `ROOTCA` merged with the default context's SAN matcher; XFCC set for the app.
        common: dict[str, Any] = {
            "tls_certificate_sds_secret_configs": [{"name": "default"}],
            "combined_validation_context": {
                "default_validation_context": {
                    "match_typed_subject_alt_names": [uri_san(CLIENT_ID.uri)]
                },
                "validation_context_sds_secret_config": {"name": "ROOTCA"},
            },
        }
        secrets = [
            {
                "name": "default",
                "tls_certificate": {
                    "certificate_chain": inline(server.chain),
                    "private_key": {"inline_bytes": base64.b64encode(server.key.encode()).decode()},
                },
            },
            {"name": "ROOTCA", "validation_context": {"trusted_ca": inline(server.roots)}},
        ]
        typed = hcm(
            forward_client_cert_details="SANITIZE_SET",
            set_current_client_cert_details={"uri": True},
        )
        socket = downstream(require_client_certificate=True, common_tls_context=common)
        upstream_socket = upstream(common_tls_context=copy.deepcopy(common), sni="reviews")
        doc = bootstrap(
            [tls_listener(socket, typed_config=typed)],
            [cluster(transport_socket=upstream_socket)],
        )
        doc["static_resources"]["secrets"] = secrets
        snap = translate_bootstrap(doc, "test.yaml")
        # Envoy names the certificates by their secrets in its expiry gauges.
        validation = {
            "trusted_ca_pem": server.roots,
            "ca_name": "ROOTCA",
            "match_subject_alt_names": [
                {
                    "san_type": "uri",
                    "matcher": {"kind": {"exact": CLIENT_ID.uri}, "ignore_case": False},
                }
            ],
        }
        lst = snap.snapshot["listeners"][0]
        assert lst["tls"] == {
            "cert_chain_pem": server.chain,
            "private_key_pem": server.key,
            "cert_name": "default",
            "require_client_certificate": True,
            "validation": validation,
        }
        assert lst["filter"]["forward_client_cert"] == "sanitize_set"
        assert lst["filter"]["client_cert_details"] == {"uri": True}
        assert snap.snapshot["clusters"][0]["tls"] == {
            "cert_chain_pem": server.chain,
            "private_key_pem": server.key,
            "cert_name": "default",
            "validation": validation,
            "sni": "reviews",
        }
        assert snap.files == {}

        # The same contexts with SDS over ADS need dynamic_resources (tests/xds/test_sds.py).
        ref = common["tls_certificate_sds_secret_configs"][0]
        ref["sds_config"] = {"ads": {}, "resource_api_version": "V3"}
        found = problems(doc)
        assert found == {
            f"{COMMON}.tls_certificate_sds_secret_configs[0].sds_config": "SDS needs "
            "dynamic_resources.ads_config"
        }

    def test_secret_errors(self, server: Pem) -> None:
        common = {
            "tls_certificate_sds_secret_configs": [{"name": "ROOTCA"}],
            "validation_context_sds_secret_config": {"name": "nope"},
        }
        doc = bootstrap([tls_listener(downstream(common_tls_context=common))])
        doc["static_resources"]["secrets"] = [
            {"name": "ROOTCA", "validation_context": {"trusted_ca": inline(server.roots)}},
            {"name": "ROOTCA", "validation_context": {}},
            {"name": "both", "tls_certificate": {}, "validation_context": {}},
            {"name": "keys", "session_ticket_keys": {}},
        ]
        s = "static_resources.secrets"
        assert problems(doc) == {
            f"{s}[1].name": f"duplicate secret name 'ROOTCA' (first at {s}[0])",
            f"{s}[2]": "expected exactly one of tls_certificate, validation_context, got "
            "tls_certificate, validation_context",
            f"{s}[3].session_ticket_keys": f"{NOT_SUPPORTED}; supported here: name, "
            "tls_certificate, validation_context",
            f"{s}[3]": "expected exactly one of tls_certificate, validation_context",
            f"{COMMON}.tls_certificate_sds_secret_configs[0].name": "secret 'ROOTCA' is a "
            "validation_context, expected a tls_certificate",
            f"{COMMON}.validation_context_sds_secret_config.name": "unknown secret 'nope' (no "
            "static_resources.secrets entry)",
        }

    def test_a_broken_secret_is_reported_once_at_its_own_path(self, server: Pem) -> None:
        common = {"tls_certificate_sds_secret_configs": [{"name": "default"}]}
        doc = bootstrap([tls_listener(downstream(common_tls_context=common))])
        doc["static_resources"]["secrets"] = [
            {"name": "default", "tls_certificate": certificate(inline("junk"), inline(server.key))}
        ]
        found = problems(doc)
        ((path, message),) = found.items()
        assert path == "static_resources.secrets[0].tls_certificate.certificate_chain"
        assert message.startswith("the inline value: not a PEM certificate chain")


class TestUpstream:
    def test_client_certificate_is_optional_and_h2_clusters_offer_h2(self, server: Pem) -> None:
        validation = {"validation_context": {"trusted_ca": inline(server.roots)}}
        plain = cluster("a", transport_socket=upstream(common_tls_context=validation))
        h2 = cluster(
            "b",
            http2_protocol_options={},
            transport_socket=upstream(common_tls_context={**validation}, sni="b.mesh"),
        )
        chosen = cluster(
            "c",
            http2_protocol_options={},
            transport_socket=upstream(common_tls_context={"alpn_protocols": ["http/1.1"]}),
        )
        clusters = translate(bootstrap([tcp_listener("a")], [plain, h2, chosen]))["clusters"]
        assert [c["tls"] for c in clusters] == [
            {"validation": {"trusted_ca_pem": server.roots}},
            {"validation": {"trusted_ca_pem": server.roots}, "sni": "b.mesh", "alpn": ["h2"]},
            {"alpn": ["http/1.1"]},
        ]

    def test_upstream_errors(self, server: Pem) -> None:
        context = {
            "tls_params": {"tls_minimum_protocol_version": "TLSv1_3"},
            "tls_certificates": [certificate(inline(server.chain), inline(server.key))],
        }
        bad = cluster(
            transport_socket=upstream(common_tls_context=context, sni="", allow_renegotiation=True)
        )
        found = problems(bootstrap([tcp_listener()], [bad]))
        sock = "static_resources.clusters[0].transport_socket.typed_config"
        assert found == {
            f"{sock}.allow_renegotiation": f"{NOT_SUPPORTED}; supported here: @type, "
            "common_tls_context, sni",
            f"{sock}.sni": "expected a non-empty string",
            f"{CLUSTER_COMMON}.tls_params.tls_minimum_protocol_version": f"TLSv1_3 upstream is "
            f"{NOT_SUPPORTED} (upstream connections offer TLS 1.2 and 1.3)",
        }


class TestErrors:
    def test_unreadable_file_names_the_file_and_the_field(self, tmp_path: Path) -> None:
        missing = tmp_path / "gone.pem"
        socket = downstream(
            common_tls_context={"tls_certificates": [certificate(file(missing), file(missing))]}
        )
        with pytest.raises(ConfigError) as info:
            translate_bootstrap(bootstrap([tls_listener(socket)]), "envoy.yaml")
        cert = f"{COMMON}.tls_certificates[0]"
        assert {p.path: p.message for p in info.value.problems} == {
            f"{cert}.certificate_chain.filename": f"cannot read {missing}: No such file or "
            "directory",
            f"{cert}.private_key.filename": f"cannot read {missing}: No such file or directory",
        }
        # Live reload watches the missing file too: creating it retries the config.
        assert info.value.files == {str(missing): None}
        assert pickle.loads(pickle.dumps(info.value)).files == {str(missing): None}

    def test_bad_pem_and_mismatched_key(self, pki: Pki, server: Pem, tmp_path: Path) -> None:
        other = pki.issue(CLIENT_ID)
        junk = tmp_path / "junk.pem"
        junk.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        mismatched = server_socket(server)
        cert = mismatched["typed_config"]["common_tls_context"]["tls_certificates"][0]
        cert["private_key"] = inline(other.key)
        junk_ca = server_socket(server, common={"validation_context": {"trusted_ca": file(junk)}})
        doc = bootstrap([tls_listener(mismatched), tls_listener(junk_ca, name="b", port=2)])
        found = problems(doc)
        assert found.pop(f"{COMMON}.tls_certificates[0].private_key") == (
            "the inline value: not the private key of the certificate_chain's first certificate"
        )
        ((path, message),) = found.items()
        assert path == (
            "static_resources.listeners[1].filter_chains[0].transport_socket.typed_config"
            ".common_tls_context.validation_context.trusted_ca"
        )
        assert message.startswith(f"{junk}: not a PEM certificate chain")

    def test_context_errors(self, server: Pem) -> None:
        two = [certificate(inline(server.chain), inline(server.key))] * 2
        cases = [
            (
                downstream(common_tls_context={}),
                f"{COMMON}",
                "a server needs a certificate: tls_certificates or "
                "tls_certificate_sds_secret_configs",
            ),
            (
                downstream(),
                f"{SOCKET}.common_tls_context",
                "a server needs a certificate: tls_certificates or "
                "tls_certificate_sds_secret_configs",
            ),
            (
                server_socket(server, require_client_certificate=True),
                f"{SOCKET}.require_client_certificate",
                "requiring a client certificate needs a validation context with trusted_ca or "
                "verify_certificate_hash/spki",
            ),
            (
                server_socket(
                    server,
                    common={
                        "validation_context": {"match_typed_subject_alt_names": [uri_san("x")]}
                    },
                ),
                f"{COMMON}.validation_context",
                "match_typed_subject_alt_names needs trusted_ca",
            ),
            (
                server_socket(
                    server, common={"tls_params": {"tls_minimum_protocol_version": "TLSv1_1"}}
                ),
                f"{COMMON}.tls_params.tls_minimum_protocol_version",
                "TLSv1_1 is not supported: fastmesh speaks TLS 1.2 and 1.3 only",
            ),
            (
                server_socket(
                    server, common={"tls_params": {"tls_maximum_protocol_version": "TLSv1_2"}}
                ),
                f"{COMMON}.tls_params.tls_maximum_protocol_version",
                f"TLSv1_2 is {NOT_SUPPORTED}: the maximum is always TLS 1.3",
            ),
            (
                downstream(common_tls_context={"tls_certificates": two}),
                f"{COMMON}",
                "expected one certificate in tls_certificates or "
                "tls_certificate_sds_secret_configs; "
                f"several (e.g. RSA and ECDSA) are {NOT_SUPPORTED}",
            ),
            (
                server_socket(
                    server,
                    common={
                        "validation_context": {
                            "trusted_ca": inline(server.roots),
                            "match_typed_subject_alt_names": [
                                {"san_type": "OTHER_NAME", "matcher": {"exact": "x"}}
                            ],
                        }
                    },
                ),
                f"{COMMON}.validation_context.match_typed_subject_alt_names[0].san_type",
                f"OTHER_NAME is {NOT_SUPPORTED}",
            ),
            (
                server_socket(
                    server, common={"validation_context": {}, "combined_validation_context": {}}
                ),
                f"{COMMON}",
                "expected exactly one of validation_context, "
                "validation_context_sds_secret_config, combined_validation_context, got "
                "validation_context, combined_validation_context",
            ),
            (
                server_socket(server, require_sni=True),
                f"{SOCKET}.require_sni",
                f"{NOT_SUPPORTED}; supported here: @type, common_tls_context, "
                f"ocsp_staple_policy, require_client_certificate",
            ),
            (
                {
                    "name": "envoy.transport_sockets.tls",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.transport_sockets"
                        ".raw_buffer.v3.RawBuffer"
                    },
                },
                f"{SOCKET}.@type",
                'expected "type.googleapis.com/envoy.extensions.transport_sockets'
                ".tls.v3.DownstreamTlsContext\", got 'type.googleapis.com/envoy.extensions."
                "transport_sockets.raw_buffer.v3.RawBuffer'",
            ),
        ]
        for socket, path, message in cases:
            assert problems(bootstrap([tls_listener(socket)])) == {path: message}, path

    def test_chain_shapes_other_than_the_permissive_pair(self, server: Pem) -> None:
        def pair(**change: Any) -> dict[str, Any]:
            tls = {
                "filter_chain_match": {"transport_protocol": "tls"},
                "filters": listener()["filter_chains"][0]["filters"],
                "transport_socket": server_socket(server),
            }
            plain = {
                "filter_chain_match": {"transport_protocol": "raw_buffer"},
                "filters": listener()["filter_chains"][0]["filters"],
            }
            for key, value in change.items():
                chain, field = key.split("__")
                target = tls if chain == "tls" else plain
                if value is None:
                    del target[field]
                else:
                    target[field] = value
            lst = listener(listener_filters=[INSPECTOR])
            lst["filter_chains"] = [tls, plain]
            return lst

        why = "two filter chains are supported only as Istio's permissive TLS-or-plaintext pair: "
        chains = f"{L0}.filter_chains"
        cases = [
            (
                pair(plain__filter_chain_match={"transport_protocol": "tls"}),
                "one chain must match transport_protocol tls and the other raw_buffer",
            ),
            (
                pair(plain__transport_socket=server_socket(server)),
                "the tls chain must have the transport_socket and the raw_buffer chain none",
            ),
            (
                pair(
                    plain__filters=[
                        {
                            "name": "envoy.filters.network.http_connection_manager",
                            "typed_config": hcm(stat_prefix="other"),
                        }
                    ]
                ),
                "both chains must have identical filters",
            ),
        ]
        for lst, reason in cases:
            assert problems(bootstrap([lst])) == {chains: why + reason}
        no_inspector = pair()
        del no_inspector["listener_filters"]
        assert problems(bootstrap([no_inspector])) == {
            chains: why + "listener_filters must include envoy.filters.listener.tls_inspector "
            "to tell them apart"
        }
        three = pair()
        three["filter_chains"].append(three["filter_chains"][1])
        assert problems(bootstrap([three])) == {
            chains: "expected one filter chain (or Istio's permissive pair, or chains by "
            "filter_chain_match.server_names), got 3"
        }
        bad_match = pair(
            plain__filter_chain_match={"transport_protocol": "quic", "source_type": "ANY"}
        )
        assert problems(bootstrap([bad_match])) == {
            f"{chains}[1].filter_chain_match.source_type": f"{NOT_SUPPORTED}; supported here: "
            "server_names, transport_protocol",
            f"{chains}[1].filter_chain_match.transport_protocol": "expected one of tls, "
            "raw_buffer, got 'quic'",
            chains: why + "one chain must match transport_protocol tls and the other raw_buffer",
        }

    def test_single_chain_match_and_listener_filters(self, server: Pem) -> None:
        lst = tls_listener(server_socket(server))
        lst["filter_chains"][0]["filter_chain_match"] = {"transport_protocol": "tls"}
        match = f"{CHAIN0}.filter_chain_match.transport_protocol"
        assert problems(bootstrap([lst])) == {
            match: "needs envoy.filters.listener.tls_inspector in listener_filters"
        }
        plain = listener(
            listener_filters=[INSPECTOR, {"name": "envoy.filters.listener.http_inspector"}]
        )
        plain["filter_chains"][0]["filter_chain_match"] = {"transport_protocol": "tls"}
        assert problems(bootstrap([plain])) == {
            match: "tls does not match the chain's transport_socket",
            f"{L0}.listener_filters[1].name": "listener filter 'envoy.filters.listener."
            f"http_inspector' is {NOT_SUPPORTED}; expected envoy.filters.listener.tls_inspector",
        }

    def test_xds_resources_take_files_but_no_secrets(self, server: Pem) -> None:
        common = {"tls_certificate_sds_secret_configs": [{"name": "default"}]}
        lst = tls_listener(downstream(common_tls_context=common))
        with pytest.raises(ConfigError) as info:
            translate_resources([lst], [cluster()], source="xds", version="1")
        assert [(p.path, p.message) for p in info.value.problems] == [
            (
                "listeners[0].filter_chains[0].transport_socket.typed_config.common_tls_context"
                ".tls_certificate_sds_secret_configs[0].name",
                "unknown secret 'default' (no static_resources.secrets entry)",
            )
        ]


class TestCompiled:
    def test_files_survive_encode_and_decode(self, files: dict[str, Path]) -> None:
        socket = downstream(
            common_tls_context={
                "tls_certificates": [certificate(file(files["chain"]), file(files["key"]))]
            }
        )
        doc = bootstrap([tls_listener(socket)])
        compiled = compile_bootstrap(translate_bootstrap(doc, "test.yaml"), doc)
        back = decode(encode(compiled), 0)
        assert (
            back.files
            == compiled.files
            == {
                str(files["chain"]): stamp(files["chain"]),
                str(files["key"]): stamp(files["key"]),
            }
        )

    def test_error_files_survive_encode_and_decode(self, tmp_path: Path) -> None:
        err = ConfigError("envoy.yaml", [], files={str(tmp_path / "a"): None, "b": (1, 2, 3)})
        with pytest.raises(ConfigError) as info:
            decode(encode_error(err), 3)
        assert info.value.files == {str(tmp_path / "a"): None, "b": (1, 2, 3)}

    def test_private_keys_are_redacted_for_the_config_dump(
        self, server: Pem, files: dict[str, Path]
    ) -> None:
        secret = {
            "name": "default",
            "tls_certificate": certificate(inline(server.chain), inline(server.key)),
        }
        upstream_socket = upstream(
            common_tls_context={
                "tls_certificates": [certificate(file(files["chain"]), file(files["key"]))]
            }
        )
        common = {"tls_certificate_sds_secret_configs": [{"name": "default"}]}
        doc = bootstrap(
            [tls_listener(downstream(common_tls_context=common))],
            [cluster(transport_socket=upstream_socket)],
        )
        doc["static_resources"]["secrets"] = [secret]
        compiled = compile_bootstrap(translate_bootstrap(doc, "test.yaml"), doc)

        dumped = json.loads(zlib.decompress(compiled.document_zjson))
        expected = copy.deepcopy(doc)
        expected["static_resources"]["secrets"][0]["tls_certificate"]["private_key"] = {
            "inline_string": "[redacted]"
        }
        tls = expected["static_resources"]["clusters"][0]["transport_socket"]["typed_config"]
        tls["common_tls_context"]["tls_certificates"][0]["private_key"] = {"filename": "[redacted]"}
        assert dumped == expected

        snapshot = json.loads(redact_private_keys(compiled.snapshot_json))
        assert snapshot["listeners"][0]["tls"]["private_key_pem"] == "[redacted]"
        assert snapshot["clusters"][0]["tls"]["private_key_pem"] == "[redacted]"
        assert snapshot["listeners"][0]["tls"]["cert_chain_pem"] == server.chain
        assert json.loads(compiled.snapshot_json)["listeners"][0]["tls"]["private_key_pem"] == (
            server.key
        )  # the engine gets the key
