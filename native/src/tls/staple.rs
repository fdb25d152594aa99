//! Envoy's OCSP stapling (`TlsCertificate.ocsp_staple`, `ocsp_staple_policy`):
//! rustls staples the response for clients that ask, while it is current. For a
//! client that asks (`tls::hello`), Envoy's `ocspStapleAction` decides and counts
//! before the handshake (`StapleAction`): once the response has expired, a lenient
//! listener serves the certificate bare and a strict one (STRICT_STAPLING,
//! MUST_STAPLE) refuses the handshake; a client that does not ask is served bare.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

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
    pub(crate) fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        staple: &OcspStaple,
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
            policy: staple.policy,
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

    #[test]
    fn hex_decodes_and_refuses_odd_or_bad_digits() {
        assert_eq!(unhex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }
}
