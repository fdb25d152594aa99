//! Envoy's OCSP stapling (`TlsCertificate.ocsp_staple`, `ocsp_staple_policy`):
//! rustls staples the response for clients that ask, while it is current. For a
//! client that asks (`tls::hello`), Envoy's `ocspStapleAction` decides and counts
//! before the handshake (`StapleAction`): once the response has expired, a lenient
//! listener serves the certificate bare and a strict one (STRICT_STAPLING,
//! MUST_STAPLE) refuses the handshake; a client that does not ask is served bare.
//! A certificate with RFC 7633's OCSP Must-Staple feature is served as under
//! MUST_STAPLE whatever the policy, and needs a staple (`Stapler::policy`).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use x509_parser::oid_registry::Oid;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::config::{OcspStaple, StaplePolicy};

/// The certificate with and without its staple, chosen per handshake.
#[derive(Debug)]
pub(crate) struct Stapler {
    stapled: Arc<CertifiedKey>,
    bare: Arc<CertifiedKey>,
    next_update: Option<u64>,
    policy: StaplePolicy,
}

impl Stapler {
    /// `policy`: the staple's, or MUST_STAPLE for a must-staple certificate (`policy`).
    pub(crate) fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        staple: &OcspStaple,
        policy: StaplePolicy,
        provider: &CryptoProvider,
    ) -> Result<Self, String> {
        let bare = CertifiedKey::from_der(chain, key, provider)
            .map_err(|e| format!("cert_chain_pem/private_key_pem: {e}"))?;
        let mut stapled = bare.clone();
        stapled.ocsp = Some(unhex(&staple.der_hex).ok_or("ocsp_staple.der_hex: not hex")?);
        Ok(Stapler {
            stapled: Arc::new(stapled),
            bare: Arc::new(bare),
            next_update: staple.next_update,
            policy,
        })
    }

    /// Envoy's `isExpired`: past `nextUpdate`, or without one.
    fn expired(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.next_update.is_none_or(|t| t < now)
    }
}

/// What a handshake whose client asks for a staple gets (Envoy's `OcspStapleAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StapleAction {
    Staple,
    Omit,
    Fail,
}

impl StapleAction {
    /// For a certificate with `stapler` (`None`: without a staple, which is left out
    /// whatever the policy: MUST_STAPLE without one is a config error).
    pub(crate) fn of(stapler: Option<&Stapler>) -> Self {
        match stapler {
            None => StapleAction::Omit,
            Some(s) if !s.expired() => StapleAction::Staple,
            Some(s) if s.policy == StaplePolicy::Lenient => StapleAction::Omit,
            Some(_) => StapleAction::Fail,
        }
    }
}

impl ResolvesServerCert for Stapler {
    /// A refused handshake never gets here (`StapleAction::Fail`).
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            if self.expired() {
                &self.bare
            } else {
                &self.stapled
            }
            .clone(),
        )
    }
}

/// RFC 7633's TLS feature extension (id-pe-tlsfeature).
const TLS_FEATURE: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 24];
/// Its value for OCSP Must-Staple: `SEQUENCE { INTEGER 5 }` (status_request). Envoy
/// compares the value with exactly this (other feature lists are not must-staple).
const MUST_STAPLE: &[u8] = &[0x30, 0x03, 0x02, 0x01, 0x05];

/// Whether `leaf` carries OCSP Must-Staple.
pub(crate) fn must_staple(leaf: &CertificateDer<'_>) -> Result<bool, String> {
    let (_, cert) = X509Certificate::from_der(leaf).map_err(|e| e.to_string())?;
    let oid = Oid::from(TLS_FEATURE).map_err(|_| "the TLS feature OID")?;
    Ok(cert
        .extensions()
        .iter()
        .any(|e| e.oid == oid && e.value == MUST_STAPLE))
}

/// The stapling policy a certificate gets, as Envoy decides it: a must-staple
/// certificate is served as under MUST_STAPLE (an expired staple fails the
/// handshake of a client that asks), and without a staple it is an error.
pub(crate) fn policy(
    leaf: &CertificateDer<'_>,
    staple: Option<&OcspStaple>,
) -> Result<Option<StaplePolicy>, String> {
    let must = must_staple(leaf).map_err(|e| format!("cert_chain_pem: {e}"))?;
    match staple {
        Some(_) if must => Ok(Some(StaplePolicy::MustStaple)),
        Some(s) => Ok(Some(s.policy)),
        None if must => Err("cert_chain_pem: an OCSP must-staple certificate needs an \
                             ocsp_staple"
            .into()),
        None => Ok(None),
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(features: Option<&[u8]>) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().expect("a key");
        let mut params = rcgen::CertificateParams::new(vec!["a.test".to_owned()]).expect("params");
        if let Some(value) = features {
            params
                .custom_extensions
                .push(rcgen::CustomExtension::from_oid_content(
                    TLS_FEATURE,
                    value.to_vec(),
                ));
        }
        params
            .self_signed(&key)
            .expect("a certificate")
            .der()
            .clone()
    }

    fn staple(policy: StaplePolicy) -> OcspStaple {
        OcspStaple {
            der_hex: String::new(),
            next_update: None,
            policy,
        }
    }

    #[test]
    fn must_staple_certificates_get_must_staple_and_need_a_staple() {
        let must = leaf(Some(MUST_STAPLE));
        assert_eq!(must_staple(&must), Ok(true));
        let lenient = staple(StaplePolicy::Lenient);
        assert_eq!(
            policy(&must, Some(&lenient)),
            Ok(Some(StaplePolicy::MustStaple))
        );
        let e = policy(&must, None).unwrap_err();
        assert!(
            e.contains("must-staple certificate needs an ocsp_staple"),
            "{e}"
        );
        // Other feature lists (here status_request_v2, 17) are not must-staple, as Envoy.
        let other = leaf(Some(&[0x30, 0x03, 0x02, 0x01, 0x11]));
        assert_eq!(must_staple(&other), Ok(false));
        assert_eq!(policy(&other, None), Ok(None));
        let plain = leaf(None);
        assert_eq!(
            policy(&plain, Some(&lenient)),
            Ok(Some(StaplePolicy::Lenient))
        );
    }

    #[test]
    fn hex_decodes_and_refuses_odd_or_bad_digits() {
        assert_eq!(unhex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }
}
