//! Envoy's OCSP stapling (`TlsCertificate.ocsp_staple`, `ocsp_staple_policy`):
//! rustls staples the response for clients that ask, while it is current; once
//! it has expired, a lenient listener serves the certificate bare and a strict
//! one (STRICT_STAPLING, MUST_STAPLE) refuses the handshake, as Envoy does.

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

impl ResolvesServerCert for Stapler {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if !self.expired() {
            Some(self.stapled.clone())
        } else if self.policy == StaplePolicy::Lenient {
            Some(self.bare.clone())
        } else {
            None
        }
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
