//! Envoy's per-handshake TLS parameter counters: `ssl.ciphers.<cipher>`,
//! `ssl.versions.<version>`, `ssl.curves.<group>` and `ssl.sigalgs.<scheme>`,
//! under the names BoringSSL gives them (Envoy prints what it reports: OpenSSL
//! cipher names for TLS 1.2, IANA ones for TLS 1.3). They appear once used.

use std::ops::Deref;
use std::sync::{Arc, Mutex};

use rustls::{CipherSuite, CommonState, NamedGroup, ProtocolVersion, SignatureScheme};

use crate::stats::{ssl, ssl_certificate, Registry, StatGroup};

const CIPHERS: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
];
const VERSIONS: &[&str] = &["TLSv1.2", "TLSv1.3"];
const CURVES: &[&str] = &["X25519", "P-256", "P-384", "P-521", "X25519MLKEM768"];
const SIGALGS: &[&str] = &[
    "rsa_pkcs1_sha1",
    "rsa_pkcs1_sha256",
    "rsa_pkcs1_sha384",
    "rsa_pkcs1_sha512",
    "ecdsa_sha1",
    "ecdsa_secp256r1_sha256",
    "ecdsa_secp384r1_sha384",
    "ecdsa_secp521r1_sha512",
    "rsa_pss_rsae_sha256",
    "rsa_pss_rsae_sha384",
    "rsa_pss_rsae_sha512",
    "ed25519",
];

fn cipher_name(s: CipherSuite) -> Option<&'static str> {
    use CipherSuite::*;
    Some(match s {
        TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-ECDSA-CHACHA20-POLY1305",
        TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        _ => return None,
    })
}

fn version_name(v: ProtocolVersion) -> Option<&'static str> {
    match v {
        ProtocolVersion::TLSv1_2 => Some("TLSv1.2"),
        ProtocolVersion::TLSv1_3 => Some("TLSv1.3"),
        _ => None,
    }
}

fn curve_name(g: NamedGroup) -> Option<&'static str> {
    match g {
        NamedGroup::X25519 => Some("X25519"),
        NamedGroup::secp256r1 => Some("P-256"),
        NamedGroup::secp384r1 => Some("P-384"),
        NamedGroup::secp521r1 => Some("P-521"),
        NamedGroup::X25519MLKEM768 => Some("X25519MLKEM768"),
        _ => None,
    }
}

fn sigalg_name(s: SignatureScheme) -> Option<&'static str> {
    use SignatureScheme::*;
    Some(match s {
        RSA_PKCS1_SHA1 => "rsa_pkcs1_sha1",
        RSA_PKCS1_SHA256 => "rsa_pkcs1_sha256",
        RSA_PKCS1_SHA384 => "rsa_pkcs1_sha384",
        RSA_PKCS1_SHA512 => "rsa_pkcs1_sha512",
        ECDSA_SHA1_Legacy => "ecdsa_sha1",
        ECDSA_NISTP256_SHA256 => "ecdsa_secp256r1_sha256",
        ECDSA_NISTP384_SHA384 => "ecdsa_secp384r1_sha384",
        ECDSA_NISTP521_SHA512 => "ecdsa_secp521r1_sha512",
        RSA_PSS_SHA256 => "rsa_pss_rsae_sha256",
        RSA_PSS_SHA384 => "rsa_pss_rsae_sha384",
        RSA_PSS_SHA512 => "rsa_pss_rsae_sha512",
        ED25519 => "ed25519",
        _ => return None,
    })
}

/// A TLS context's `ssl.*` counters: the fixed ones (it derefs to them) and the
/// per-parameter ones; and its certificates' expiry gauges (`tls::expiry`). One per
/// compiled context: the counters are shared by its prefix (a context's replacement
/// carries them on) and go with the last context of the prefix, as its listener's or
/// cluster's; the expiry gauges are its own and go with it (with the last connection
/// it served).
#[derive(Debug)]
pub struct SslStats {
    registry: Arc<Registry>,
    prefix: String,
    fixed: Arc<StatGroup>,
    ciphers: Arc<StatGroup>,
    versions: Arc<StatGroup>,
    curves: Arc<StatGroup>,
    sigalgs: Arc<StatGroup>,
    /// `<prefix>.certificate.<name>` groups, exported while this context lives.
    certificates: Mutex<Vec<Arc<StatGroup>>>,
}

impl SslStats {
    /// `prefix`: `listener.<address>.ssl` or `cluster.<name>.ssl`.
    pub fn new(registry: &Arc<Registry>, prefix: &str) -> Arc<Self> {
        let lazy =
            |kind: &str, names| registry.scoped_lazy_group(&format!("{prefix}.{kind}"), names);
        Arc::new(SslStats {
            registry: registry.clone(),
            prefix: prefix.to_owned(),
            fixed: registry.scoped_group(prefix, ssl::NAMES),
            ciphers: lazy("ciphers", CIPHERS),
            versions: lazy("versions", VERSIONS),
            curves: lazy("curves", CURVES),
            sigalgs: lazy("sigalgs", SIGALGS),
            certificates: Mutex::default(),
        })
    }

    /// Count a completed handshake's cipher, version and key exchange group.
    pub(crate) fn negotiated(&self, conn: &CommonState) {
        if let Some(name) = conn
            .negotiated_cipher_suite()
            .and_then(|s| cipher_name(s.suite()))
        {
            self.ciphers.inc_name(name);
        }
        if let Some(name) = conn.protocol_version().and_then(version_name) {
            self.versions.inc_name(name);
        }
        if let Some(name) = conn
            .negotiated_key_exchange_group()
            .and_then(|g| curve_name(g.name()))
        {
            self.curves.inc_name(name);
        }
    }

    /// Set `<prefix>.certificate.<name>.expiration_unix_time_seconds` (Envoy's gauge),
    /// exported until this context is dropped (Envoy removes it with the context).
    pub(crate) fn certificate_expires(&self, name: &str, not_after: u64) {
        let group = self.registry.owned_group(
            &format!("{}.certificate.{name}", self.prefix),
            ssl_certificate::NAMES,
        );
        group.set(ssl_certificate::EXPIRATION, not_after);
        self.certificates.lock().unwrap().push(group);
    }

    /// Count the scheme of the peer's verified handshake signature (Envoy's
    /// `SSL_get_peer_signature_algorithm`).
    pub(crate) fn peer_signature(&self, scheme: SignatureScheme) {
        if let Some(name) = sigalg_name(scheme) {
            self.sigalgs.inc_name(name);
        }
    }
}

impl Deref for SslStats {
    type Target = StatGroup;

    fn deref(&self) -> &StatGroup {
        &self.fixed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_the_provider_can_negotiate_is_a_counter() {
        let provider = rustls::crypto::ring::default_provider();
        for s in &provider.cipher_suites {
            let name = cipher_name(s.suite()).expect("a cipher name");
            assert!(CIPHERS.contains(&name), "{name}");
        }
        for g in &provider.kx_groups {
            let name = curve_name(g.name()).expect("a curve name");
            assert!(CURVES.contains(&name), "{name}");
        }
        for s in provider
            .signature_verification_algorithms
            .supported_schemes()
        {
            let name = sigalg_name(s).expect("a sigalg name");
            assert!(SIGALGS.contains(&name), "{name}");
        }
        for v in [ProtocolVersion::TLSv1_2, ProtocolVersion::TLSv1_3] {
            assert!(VERSIONS.contains(&version_name(v).expect("a version name")));
        }
    }
}
