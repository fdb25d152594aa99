//! Peer certificate verification for both directions: the chain to the trusted
//! roots (webpki, through rustls), then what Envoy's validation context adds:
//! `match_subject_alt_names`, the pins (`verify_certificate_hash`/`spki`), and the
//! X.509-SVID rules for a SPIFFE peer.
//! Upstream, as Istio does, there is no hostname check: the SAN matchers are the
//! identity check. Failures are counted under Envoy's `ssl.fail_verify_*` names.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

use crate::config::{SanMatcher, SanType, StringMatch};
use crate::http::router::StringMatcherRt;
use crate::stats::ssl;
use crate::tls::cert::{self, CertFacts};
use crate::tls::pins::CertPins;
use crate::tls::{Chain, SslStats, Validation};

/// One `match_subject_alt_names` entry, compiled.
#[derive(Debug)]
struct SanMatcherRt {
    san_type: SanType,
    matcher: StringMatcherRt,
    /// An exact DNS matcher follows DNS rules instead (a `*.a.com` SAN matches
    /// `b.a.com`), as Envoy's `StringSanMatcher` does.
    dns_exact: Option<String>,
}

impl SanMatcherRt {
    fn compile(m: &SanMatcher) -> Result<Self, String> {
        let dns_exact = match (&m.san_type, &m.matcher.kind) {
            (SanType::Dns, StringMatch::Exact(name)) => Some(name.clone()),
            _ => None,
        };
        Ok(SanMatcherRt {
            san_type: m.san_type,
            matcher: StringMatcherRt::compile(&m.matcher, "match_subject_alt_names")?,
            dns_exact,
        })
    }

    fn matches(&self, c: &CertFacts) -> bool {
        let sans = match self.san_type {
            SanType::Uri => &c.uri_sans,
            SanType::Dns => &c.dns_sans,
            SanType::Email => &c.email_sans,
            SanType::IpAddress => &c.ip_sans,
        };
        sans.iter().any(|san| match &self.dns_exact {
            Some(name) => dns_name_match(name, san),
            None => self.matcher.matches(san),
        })
    }
}

/// Envoy's `Utility::dnsNameMatch`: `dns_name` against a certificate's DNS SAN,
/// which may wildcard (part of) its left-most label only.
pub(crate) fn dns_name_match(dns_name: &str, pattern: &str) -> bool {
    let name = dns_name.to_ascii_lowercase();
    let pattern = pattern.to_ascii_lowercase();
    if name == pattern {
        return true;
    }
    let (Some((p_label, p_rest)), Some((n_label, n_rest))) =
        (pattern.split_once('.'), name.split_once('.'))
    else {
        return false;
    };
    if !p_label.contains('*') || p_rest.contains('*') || p_label.starts_with("xn--") {
        return false;
    }
    n_rest == p_rest && label_wildcard_match(n_label, p_label)
}

fn label_wildcard_match(label: &str, pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.split_once('*') {
        Some((head, tail)) if !tail.contains('*') => {
            pattern.len() <= label.len() + 1 && label.starts_with(head) && label.ends_with(tail)
        }
        _ => false,
    }
}

/// What a verified chain's leaf must also satisfy: the SAN matchers (empty =
/// any), the pins (none = any) and, when it carries a SPIFFE ID, the X.509-SVID
/// rules. Checked in Envoy's order: SANs, then pins.
#[derive(Debug)]
pub(crate) struct IdentityCheck {
    sans: Vec<SanMatcherRt>,
    pins: CertPins,
    stats: Arc<SslStats>,
}

impl IdentityCheck {
    pub(crate) fn compile(
        matchers: &[SanMatcher],
        pins: CertPins,
        stats: Arc<SslStats>,
    ) -> Result<Self, String> {
        Ok(IdentityCheck {
            sans: matchers
                .iter()
                .map(SanMatcherRt::compile)
                .collect::<Result<_, _>>()?,
            pins,
            stats,
        })
    }

    /// Whether a peer must present a certificate: Envoy asks a client for one, and
    /// fails the handshake without it, once SANs or pins are to be checked.
    fn needs_certificate(&self) -> bool {
        !self.sans.is_empty() || !self.pins.is_empty()
    }

    fn check(&self, leaf: &CertificateDer<'_>) -> Result<(), Error> {
        let facts = cert::read(leaf).map_err(|why| {
            tracing::debug!("peer certificate unreadable: {why}");
            self.stats.inc(ssl::FAIL_VERIFY_ERROR);
            Error::InvalidCertificate(CertificateError::BadEncoding)
        })?;
        if let Some(why) = facts.svid_violation {
            tracing::debug!("peer certificate is not a valid X.509-SVID: {why}");
            self.stats.inc(ssl::FAIL_VERIFY_ERROR);
            return Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        if !self.sans.is_empty() && !self.sans.iter().any(|m| m.matches(&facts)) {
            self.stats.inc(ssl::FAIL_VERIFY_SAN);
            return Err(Error::InvalidCertificate(CertificateError::NotValidForName));
        }
        if !self.pins.accept(leaf) {
            tracing::debug!("peer certificate matches no verify_certificate_hash/spki");
            // Envoy counts a hash and a pin mismatch alike (and alerts
            // bad_certificate_hash_value, which rustls cannot send).
            self.stats.inc(ssl::FAIL_VERIFY_CERT_HASH);
            return Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(())
    }
}

/// A listener's client-certificate policy (Envoy's `require_client_certificate`
/// and validation context).
#[derive(Debug)]
pub(crate) struct ClientCertPolicy {
    /// The chain check, when the context has a trusted CA.
    chain: Option<Arc<dyn ClientCertVerifier>>,
    /// The identity rules; `None` accepts any certificate (`require_client_certificate`
    /// without a validation context, as Envoy).
    identity: Option<IdentityCheck>,
    mandatory: bool,
    algs: WebPkiSupportedAlgorithms,
    stats: Arc<SslStats>,
}

impl ClientCertPolicy {
    pub(crate) fn new(
        verify: Option<Validation>,
        require_client_certificate: bool,
        provider: &Arc<rustls::crypto::CryptoProvider>,
        stats: Arc<SslStats>,
    ) -> Result<Self, String> {
        let (chain, identity) = match verify {
            Some(v) => {
                let chain = v
                    .chain
                    .map(|c| {
                        let mut b =
                            WebPkiClientVerifier::builder_with_provider(c.roots, provider.clone())
                                .with_crls(c.crls)
                                .enforce_revocation_expiration();
                        if c.leaf_crl_only {
                            b = b.only_check_end_entity_revocation();
                        }
                        b.build()
                            .map_err(|e| format!("trusted_ca_pem/crl_pem: {e}"))
                    })
                    .transpose()?;
                (chain, Some(v.identity))
            }
            None => (None, None),
        };
        let mandatory = require_client_certificate
            || identity
                .as_ref()
                .is_some_and(IdentityCheck::needs_certificate);
        Ok(ClientCertPolicy {
            chain,
            identity,
            mandatory,
            algs: provider.signature_verification_algorithms,
            stats,
        })
    }
}

impl ClientCertVerifier for ClientCertPolicy {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        match &self.chain {
            Some(chain) => chain.root_hint_subjects(),
            None => &[],
        }
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if let Some(chain) = &self.chain {
            chain
                .verify_client_cert(end_entity, intermediates, now)
                .inspect_err(|_| self.stats.inc(ssl::FAIL_VERIFY_ERROR))?;
        }
        if let Some(identity) = &self.identity {
            identity.check(end_entity)?;
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let valid = verify_tls12_signature(message, cert, dss, &self.algs)?;
        self.stats.peer_signature(dss.scheme);
        Ok(valid)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let valid = verify_tls13_signature(message, cert, dss, &self.algs)?;
        self.stats.peer_signature(dss.scheme);
        Ok(valid)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        boringssl_order(self.algs.supported_schemes())
    }
}

/// A cluster's server-certificate policy: the chain to the trusted roots (and
/// the CRLs), then the identity rules, no hostname check; `None` accepts any
/// certificate (Envoy without a validation context).
#[derive(Debug)]
pub(crate) struct ServerCertPolicy {
    /// The chain check, when the context has a trusted CA.
    chain: Option<Arc<WebPkiServerVerifier>>,
    identity: Option<IdentityCheck>,
    algs: WebPkiSupportedAlgorithms,
    stats: Arc<SslStats>,
}

impl ServerCertPolicy {
    pub(crate) fn new(
        verify: Option<Validation>,
        provider: &Arc<rustls::crypto::CryptoProvider>,
        stats: Arc<SslStats>,
    ) -> Result<Self, String> {
        let (chain, identity) = match verify {
            Some(v) => (
                v.chain.map(|c| server_chain(c, provider)).transpose()?,
                Some(v.identity),
            ),
            None => (None, None),
        };
        Ok(ServerCertPolicy {
            chain,
            identity,
            algs: provider.signature_verification_algorithms,
            stats,
        })
    }
}

fn server_chain(
    c: Chain,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, String> {
    let mut b = WebPkiServerVerifier::builder_with_provider(c.roots, provider.clone())
        .with_crls(c.crls)
        .enforce_revocation_expiration();
    if c.leaf_crl_only {
        b = b.only_check_end_entity_revocation();
    }
    b.build()
        .map_err(|e| format!("trusted_ca_pem/crl_pem: {e}"))
}

impl ServerCertVerifier for ServerCertPolicy {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if let Some(chain) = &self.chain {
            // webpki checks the chain and revocation first and the name last: a
            // name mismatch means all else passed (Istio checks SANs, not names).
            match chain.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Ok(_)
                | Err(Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => {}
                Err(e) => {
                    self.stats.inc(ssl::FAIL_VERIFY_ERROR);
                    return Err(e);
                }
            }
        }
        if let Some(identity) = &self.identity {
            identity.check(end_entity)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let valid = verify_tls12_signature(message, cert, dss, &self.algs)?;
        self.stats.peer_signature(dss.scheme);
        Ok(valid)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let valid = verify_tls13_signature(message, cert, dss, &self.algs)?;
        self.stats.peer_signature(dss.scheme);
        Ok(valid)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        boringssl_order(self.algs.supported_schemes())
    }
}

/// The schemes we offer a peer to sign with, in BoringSSL's default preference
/// (SHA-256 first), so a TLS 1.2 peer picks what it would pick with Envoy.
fn boringssl_order(mut schemes: Vec<SignatureScheme>) -> Vec<SignatureScheme> {
    use SignatureScheme::*;
    const ORDER: &[SignatureScheme] = &[
        ECDSA_NISTP256_SHA256,
        RSA_PSS_SHA256,
        RSA_PKCS1_SHA256,
        ECDSA_NISTP384_SHA384,
        RSA_PSS_SHA384,
        RSA_PKCS1_SHA384,
        RSA_PSS_SHA512,
        RSA_PKCS1_SHA512,
    ];
    schemes.sort_by_key(|s| ORDER.iter().position(|o| o == s).unwrap_or(ORDER.len()));
    schemes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StringMatcher;

    fn matcher(san_type: SanType, kind: StringMatch) -> SanMatcherRt {
        SanMatcherRt::compile(&SanMatcher {
            san_type,
            matcher: StringMatcher {
                kind,
                ignore_case: false,
            },
        })
        .expect("compiles")
    }

    fn facts(uris: &[&str], dns: &[&str]) -> CertFacts {
        CertFacts {
            uri_sans: uris.iter().map(|s| s.to_string()).collect(),
            dns_sans: dns.iter().map(|s| s.to_string()).collect(),
            ..CertFacts::default()
        }
    }

    #[test]
    fn uri_matchers_look_only_at_uri_sans() {
        let m = matcher(
            SanType::Uri,
            StringMatch::Exact("spiffe://td/ns/a/sa/web".into()),
        );
        assert!(m.matches(&facts(&["spiffe://td/ns/a/sa/web"], &[])));
        assert!(!m.matches(&facts(&["spiffe://td/ns/a/sa/other"], &[])));
        assert!(!m.matches(&facts(&[], &["spiffe://td/ns/a/sa/web"])));
        let prefix = matcher(
            SanType::Uri,
            StringMatch::Prefix("spiffe://td/ns/a/".into()),
        );
        assert!(prefix.matches(&facts(&["x:y", "spiffe://td/ns/a/sa/any"], &[])));
    }

    #[test]
    fn exact_dns_matchers_follow_wildcard_certificates() {
        let m = matcher(SanType::Dns, StringMatch::Exact("api.example.com".into()));
        assert!(m.matches(&facts(&[], &["*.example.com"])));
        assert!(m.matches(&facts(&[], &["API.example.com"])));
        assert!(!m.matches(&facts(&[], &["*.other.com"])));
        // A suffix matcher compares the SAN text as it is.
        let s = matcher(SanType::Dns, StringMatch::Suffix(".example.com".into()));
        assert!(s.matches(&facts(&[], &["*.example.com"])));
        assert!(!s.matches(&facts(&[], &["example.org"])));
    }

    #[test]
    fn sha256_schemes_are_offered_first() {
        use SignatureScheme::*;
        let got = boringssl_order(vec![ED25519, ECDSA_NISTP384_SHA384, RSA_PKCS1_SHA256]);
        assert_eq!(got, vec![RSA_PKCS1_SHA256, ECDSA_NISTP384_SHA384, ED25519]);
    }

    #[test]
    fn dns_wildcards_cover_one_left_most_label() {
        assert!(dns_name_match("a.b.com", "*.b.com"));
        assert!(dns_name_match("foo-1.b.com", "foo-*.b.com"));
        assert!(!dns_name_match("a.c.b.com", "*.b.com"));
        assert!(!dns_name_match("b.com", "*.b.com"));
        assert!(!dns_name_match("a.b.com", "a.*.com"));
        assert!(!dns_name_match("xn--a.b.com", "xn--*.b.com"));
        assert!(!dns_name_match("com", "*"));
    }
}
