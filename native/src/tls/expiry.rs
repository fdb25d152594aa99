//! Envoy's certificate expiry stats. A TLS context, when compiled, sets
//! `ssl.certificate.<name>.expiration_unix_time_seconds` for its certificate (the
//! leaf's notAfter) and for its trusted CAs (the soonest notAfter of the bundle, as
//! Envoy reports it), under the names the translator gives them. What a context
//! holds that expires (`Expiry`) feeds the server-wide gauges, computed when stats
//! are read: `server.days_until_first_cert_expiring` and
//! `server.seconds_until_first_ocsp_response_expiring`.

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::tls::SslStats;

const DAY: u64 = 86_400;

/// What one TLS context holds that expires, in Unix seconds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    /// The soonest notAfter of its certificate and trusted CAs.
    first_cert: Option<u64>,
    /// Its OCSP staple's nextUpdate (0 for a staple without one: always expired).
    staple: Option<u64>,
}

impl Expiry {
    /// Record `certs` (a leaf, or a CA bundle) as certificate `name` of the context
    /// counting into `stats`: its gauge is their soonest notAfter.
    pub(crate) fn certificate(
        &mut self,
        stats: &SslStats,
        name: &str,
        certs: &[CertificateDer<'_>],
    ) -> Result<(), String> {
        let soonest = certs
            .iter()
            .map(not_after)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .min();
        if let Some(t) = soonest {
            stats.certificate_expires(name, t);
            self.first_cert = sooner(self.first_cert, Some(t));
        }
        Ok(())
    }

    pub(crate) fn staple(&mut self, next_update: Option<u64>) {
        self.staple = Some(next_update.unwrap_or(0));
    }
}

fn not_after(der: &CertificateDer<'_>) -> Result<u64, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    Ok(u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0))
}

fn sooner(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    a.into_iter().chain(b).min()
}

/// The server-wide gauges over the live contexts at `now` (Unix seconds), as Envoy
/// computes them: whole days until the first certificate expires (0 once one has;
/// `u32::MAX` without any), seconds until the first OCSP staple expires (0 without any).
pub fn server_gauges<'a>(
    contexts: impl IntoIterator<Item = &'a Expiry>,
    now: u64,
) -> [(&'static str, u64); 2] {
    let (mut cert, mut staple) = (None, None);
    for e in contexts {
        cert = sooner(cert, e.first_cert);
        staple = sooner(staple, e.staple);
    }
    [
        (
            "server.days_until_first_cert_expiring",
            cert.map_or(u64::from(u32::MAX), |t| t.saturating_sub(now) / DAY),
        ),
        (
            "server.seconds_until_first_ocsp_response_expiring",
            staple.map_or(0, |t| t.saturating_sub(now)),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Registry;
    use std::sync::Arc;

    /// A self-signed certificate valid until 1 January of `year`, and that time.
    fn cert(year: i32) -> (CertificateDer<'static>, u64) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["a.test".to_owned()]).unwrap();
        params.not_after = rcgen::date_time_ymd(year, 1, 1);
        let at = u64::try_from(params.not_after.unix_timestamp()).unwrap();
        (params.self_signed(&key).unwrap().der().clone(), at)
    }

    #[test]
    fn each_certificate_gets_a_gauge_and_a_bundle_its_soonest_expiry() {
        let registry = Arc::new(Registry::default());
        let stats = SslStats::new(&registry, "listener.l.ssl");
        let ((leaf, leaf_at), (late, _), (early, early_at)) = (cert(2033), cert(2040), cert(2031));
        let mut e = Expiry::default();
        e.certificate(&stats, "unnamed_cert_e3b0c442", &[leaf])
            .unwrap();
        e.certificate(&stats, "my-ca", &[late, early]).unwrap();
        let s: Vec<_> = registry
            .snapshot()
            .into_iter()
            .filter(|(k, _)| k.contains(".certificate."))
            .collect();
        let at = "listener.l.ssl.certificate";
        assert_eq!(
            s,
            [
                (format!("{at}.my-ca.expiration_unix_time_seconds"), early_at),
                (
                    format!("{at}.unnamed_cert_e3b0c442.expiration_unix_time_seconds"),
                    leaf_at
                ),
            ]
        );
        assert_eq!(e.first_cert, Some(early_at));
    }

    #[test]
    fn server_gauges_take_the_soonest_of_every_context() {
        let now = 1_800_000_000;
        let leaf = Expiry {
            first_cert: Some(now + 10 * DAY + DAY / 2),
            staple: None,
        };
        let stapled = Expiry {
            first_cert: Some(now + 30 * DAY),
            staple: Some(now + 3600),
        };
        let gauges = |contexts: &[Expiry]| server_gauges(contexts, now).map(|(_, v)| v);
        assert_eq!(gauges(&[leaf, stapled]), [10, 3600], "whole days");
        assert_eq!(gauges(&[]), [u64::from(u32::MAX), 0], "nothing expires");
        let expired = Expiry {
            first_cert: Some(now - 1),
            staple: Some(0),
        };
        assert_eq!(gauges(&[leaf, expired]), [0, 0]);
    }
}
