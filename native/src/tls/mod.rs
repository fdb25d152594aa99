//! TLS in the data path (rustls with the ring provider): a listener's server
//! side (`server`), a cluster's client side (`client`), peer verification with
//! SAN matching and the SPIFFE rules (`verify`, `cert`), and Envoy's
//! `x-forwarded-client-cert` (`xfcc`). Configs are compiled once per snapshot;
//! a handshake only runs them.

mod cert;
pub mod client;
pub mod expiry;
pub(crate) mod hello;
mod params;
mod pins;
pub mod server;
mod staple;
mod verify;
pub mod xfcc;

pub use client::{TlsClient, UpstreamStream};
pub use expiry::Expiry;
pub use params::SslStats;
pub use server::{Accepted, TlsServer};

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::{RootCertStore, SupportedProtocolVersion};

use crate::config::CertValidation;
use crate::stats::ssl;
use pins::CertPins;
use verify::IdentityCheck;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

static TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// Envoy's `tls_minimum_protocol_version`, as the snapshot spells it.
fn versions(min: &str) -> Result<&'static [&'static SupportedProtocolVersion], String> {
    match min {
        "1.2" => Ok(rustls::DEFAULT_VERSIONS),
        "1.3" => Ok(TLS13_ONLY),
        other => Err(format!(
            "min_version {other:?}: fastmesh speaks TLS 1.2 and 1.3"
        )),
    }
}

fn cert_chain(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cert_chain_pem: {e}"))?;
    if chain.is_empty() {
        return Err("cert_chain_pem: no certificate".into());
    }
    Ok(chain)
}

fn private_key(pem: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| format!("private_key_pem: {e}"))
}

/// A validation context, compiled: what the chain check and the identity check need.
#[derive(Debug)]
pub(crate) struct Validation {
    /// The chain check; `None` when the context has no trusted CA (pins only).
    chain: Option<Chain>,
    identity: IdentityCheck,
}

/// The trusted roots and the CRLs checked against them.
#[derive(Debug)]
struct Chain {
    roots: Arc<RootCertStore>,
    crls: Vec<CertificateRevocationListDer<'static>>,
    leaf_crl_only: bool,
}

/// The validation context's roots, CRLs, pins and identity rules, compiled; the
/// roots' expiry is recorded in `expiry`.
fn validation(
    v: Option<&CertValidation>,
    stats: &Arc<SslStats>,
    expiry: &mut Expiry,
) -> Result<Option<Validation>, String> {
    let Some(v) = v else {
        return Ok(None);
    };
    let pins = CertPins::compile(&v.verify_certificate_hash, &v.verify_certificate_spki)?;
    let chain = match &v.trusted_ca_pem {
        Some(pem) => Some(chain(v, pem, stats, expiry)?),
        // As Envoy: without a CA only pins verify; SAN matchers or CRLs alone
        // would trust any self-made certificate.
        None if pins.is_empty() => {
            return Err("trusted_ca_pem: needed without verify_certificate_hash/spki".into())
        }
        None if !v.match_subject_alt_names.is_empty() || v.crl_pem.is_some() => {
            return Err("match_subject_alt_names and crl_pem need trusted_ca_pem".into())
        }
        None => None,
    };
    Ok(Some(Validation {
        chain,
        identity: IdentityCheck::compile(&v.match_subject_alt_names, pins, stats.clone())?,
    }))
}

fn chain(
    v: &CertValidation,
    pem: &str,
    stats: &Arc<SslStats>,
    expiry: &mut Expiry,
) -> Result<Chain, String> {
    let cas = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("trusted_ca_pem: {e}"))?;
    if cas.is_empty() {
        return Err("trusted_ca_pem: no certificate".into());
    }
    expiry
        .certificate(stats, &v.ca_name, &cas)
        .map_err(|e| format!("trusted_ca_pem: {e}"))?;
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots.add(ca).map_err(|e| format!("trusted_ca_pem: {e}"))?;
    }
    let crls = match &v.crl_pem {
        None => Vec::new(),
        Some(pem) => {
            let crls = CertificateRevocationListDer::pem_slice_iter(pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("crl_pem: {e}"))?;
            if crls.is_empty() {
                return Err("crl_pem: no CRL".into());
            }
            crls
        }
    };
    Ok(Chain {
        roots: Arc::new(roots),
        crls,
        leaf_crl_only: v.only_verify_leaf_cert_crl,
    })
}

/// Count a failed handshake as Envoy does: a missing peer certificate as
/// `fail_verify_no_cert`; a certificate the verifier refused is counted there
/// (`fail_verify_*`) and not again; anything else as `connection_error`.
/// rustls' error travels inside the `io::Error` tokio-rustls returns.
fn count_failure(stats: &SslStats, e: &std::io::Error) {
    match e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::NoCertificatesPresented) => stats.inc(ssl::FAIL_VERIFY_NO_CERT),
        Some(rustls::Error::InvalidCertificate(_)) => {}
        _ => stats.inc(ssl::CONNECTION_ERROR),
    }
}
