//! A listener's TLS (Envoy's `DownstreamTlsContext`): the rustls server config
//! compiled for one snapshot, and the handshake each connection runs in its own
//! task, under a deadline, with Istio's PERMISSIVE sniff when plaintext is allowed.
//! A snapshot with a rotated certificate compiles a new `TlsServer`: new
//! handshakes use it, established connections keep the session they have.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustls::server::ServerSessionMemoryCache;
use rustls::{HandshakeKind, ServerConfig};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::DownstreamTls;
use crate::conn::{PeerCert, TlsInfo};
use crate::stats::ssl;
use crate::tls::hello;
use crate::tls::staple::{self, StapleAction, Stapler};
use crate::tls::verify::ClientCertPolicy;
use crate::tls::{cert, cert_chain, count_failure, private_key, provider, validation, versions};
use crate::tls::{Expiry, SslStats};

/// How long a client has to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a PERMISSIVE listener waits for a first byte, and one with
/// `server_names` chains for the ClientHello (Envoy's default
/// `listener_filters_timeout`).
pub(crate) const SNIFF_TIMEOUT: Duration = Duration::from_secs(15);

/// Sessions remembered for resumption by session ID (TLS 1.2 clients without tickets).
const SESSION_CACHE: usize = 4096;

/// A `DownstreamTls` compiled for one snapshot.
#[derive(Debug)]
pub struct TlsServer {
    /// What it was compiled from: an unchanged context is kept across snapshots,
    /// with its session cache and ticket keys.
    pub config: DownstreamTls,
    rustls: Arc<ServerConfig>,
    /// Our certificate's URI SANs: XFCC's `By`.
    local_uri_sans: Arc<[String]>,
    stats: Arc<SslStats>,
    expiry: Expiry,
    /// The certificate's OCSP staple, if it has one.
    stapler: Option<Arc<Stapler>>,
}

/// A connection after the listener's TLS step.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // matched once, then moved into the connection's future
pub enum Accepted {
    Tls(TlsStream<TcpStream>, TlsInfo),
    /// Not a TLS ClientHello on a listener that allows plaintext.
    Plain(TcpStream),
}

impl TlsServer {
    /// `stats` is the listener's `listener.<address>.ssl` group.
    pub fn compile(t: &DownstreamTls, stats: Arc<SslStats>) -> Result<Self, String> {
        let chain = cert_chain(&t.cert_chain_pem)?;
        let key = private_key(&t.private_key_pem)?;
        let mut expiry = Expiry::default();
        expiry
            .certificate(&stats, &t.cert_name, &chain[..1])
            .map_err(|e| format!("cert_chain_pem: {e}"))?;
        if let Some(staple) = &t.ocsp_staple {
            expiry.staple(staple.next_update);
        }
        let local_uri_sans = cert::read(&chain[0])
            .map_err(|e| format!("cert_chain_pem: {e}"))?
            .uri_sans
            .into();
        let provider = provider();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions(&t.min_version)?)
            .map_err(|e| e.to_string())?;
        let verify = validation(t.validation.as_ref(), &stats, &mut expiry)?;
        let builder = if verify.is_none() && !t.require_client_certificate {
            builder.with_no_client_auth()
        } else {
            let policy = ClientCertPolicy::new(
                verify,
                t.require_client_certificate,
                &provider,
                stats.clone(),
            )?;
            builder.with_client_cert_verifier(Arc::new(policy))
        };
        let stapler = match (
            &t.ocsp_staple,
            staple::policy(&chain[0], t.ocsp_staple.as_ref())?,
        ) {
            (Some(staple), Some(policy)) => Some(Arc::new(Stapler::new(
                chain.clone(),
                key.clone_key(),
                staple,
                policy,
                &provider,
            )?)),
            _ => None,
        };
        let mut config = match &stapler {
            None => builder
                .with_single_cert(chain, key)
                .map_err(|e| format!("cert_chain_pem/private_key_pem: {e}"))?,
            Some(stapler) => builder.with_cert_resolver(stapler.clone()),
        };
        config.alpn_protocols = t.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
        config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| e.to_string())?;
        Ok(TlsServer {
            config: t.clone(),
            rustls: Arc::new(config),
            local_uri_sans,
            stats,
            expiry,
            stapler,
        })
    }

    /// What this context holds that expires.
    pub fn expiry(&self) -> &Expiry {
        &self.expiry
    }

    pub fn local_uri_sans(&self) -> &Arc<[String]> {
        &self.local_uri_sans
    }

    /// Run the plaintext sniff (PERMISSIVE only), then the handshake, on a new
    /// connection. `None` when the handshake failed or timed out; the
    /// connection is then dropped.
    pub async fn accept(&self, tcp: TcpStream) -> Option<Accepted> {
        if self.config.allow_plaintext {
            match tokio::time::timeout(SNIFF_TIMEOUT, opens_with_tls_record(&tcp)).await {
                Ok(Ok(true)) => {}
                // A client that says nothing may speak a server-first protocol:
                // plaintext, as Istio's `continue_on_listener_filters_timeout`.
                Ok(Ok(false)) | Err(_) => return Some(Accepted::Plain(tcp)),
                Ok(Err(_)) => return None,
            }
        }
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        if !self.staple_allows(hello::peek(&tcp, deadline).await.asks_for_staple()) {
            return None;
        }
        let handshake = TlsAcceptor::from(self.rustls.clone()).accept(tcp);
        self.complete(handshake, deadline).await
    }

    /// Envoy's OCSP step for a client that asks for a staple (`asked`), counted as
    /// Envoy does: whether the handshake may go on.
    fn staple_allows(&self, asked: bool) -> bool {
        if !asked {
            return true;
        }
        self.stats.inc(ssl::OCSP_STAPLE_REQUESTS);
        match StapleAction::of(self.stapler.as_deref()) {
            StapleAction::Staple => self.stats.inc(ssl::OCSP_STAPLE_RESPONSES),
            StapleAction::Omit => self.stats.inc(ssl::OCSP_STAPLE_OMITTED),
            StapleAction::Fail => {
                self.stats.inc(ssl::OCSP_STAPLE_FAILED);
                self.stats.inc(ssl::CONNECTION_ERROR);
                return false;
            }
        }
        true
    }

    /// The listener's `ssl` stats group.
    pub fn stats(&self) -> &Arc<SslStats> {
        &self.stats
    }

    async fn complete(
        &self,
        handshake: impl Future<Output = std::io::Result<TlsStream<TcpStream>>>,
        deadline: Instant,
    ) -> Option<Accepted> {
        let handshake = async {
            let stream = handshake.await?;
            let info = self.established(&stream)?;
            Ok::<_, std::io::Error>(Accepted::Tls(stream, info))
        };
        match tokio::time::timeout_at(deadline, handshake).await {
            Ok(Ok(accepted)) => Some(accepted),
            Ok(Err(e)) => {
                count_failure(&self.stats, &e);
                None
            }
            Err(_) => {
                self.stats.inc(ssl::CONNECTION_ERROR);
                None
            }
        }
    }

    /// What filters and headers learn about a completed handshake.
    fn established(&self, stream: &TlsStream<TcpStream>) -> std::io::Result<TlsInfo> {
        let (_, conn) = stream.get_ref();
        let peer_cert = match conn.peer_certificates() {
            Some([leaf, intermediates @ ..]) => Some(peer_cert(leaf, intermediates)?),
            _ => None,
        };
        self.stats.inc(ssl::HANDSHAKE);
        self.stats.negotiated(conn);
        if peer_cert.is_none() {
            self.stats.inc(ssl::NO_CERTIFICATE);
        }
        if conn.handshake_kind() == Some(HandshakeKind::Resumed) {
            self.stats.inc(ssl::SESSION_REUSED);
        }
        Ok(TlsInfo {
            sni: conn.server_name().map(str::to_owned),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            peer_cert,
        })
    }
}

/// Whether the first bytes are a TLS handshake record (type 0x16, major
/// version 3), left unread for the handshake or the plaintext server.
async fn opens_with_tls_record(tcp: &TcpStream) -> std::io::Result<bool> {
    let mut head = [0u8; 2];
    let n = tcp.peek(&mut head).await?;
    Ok(n >= 1 && head[0] == 0x16 && (n == 1 || head[1] == 0x03))
}

fn peer_cert(
    leaf: &rustls::pki_types::CertificateDer<'_>,
    intermediates: &[rustls::pki_types::CertificateDer<'_>],
) -> std::io::Result<PeerCert> {
    let facts = cert::read(leaf).map_err(std::io::Error::other)?;
    Ok(PeerCert {
        uri_sans: facts.uri_sans,
        dns_sans: facts.dns_sans,
        subject: facts.subject,
        der: Bytes::copy_from_slice(leaf),
        intermediates: intermediates
            .iter()
            .map(|c| Bytes::copy_from_slice(c))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Registry;
    use tokio::net::TcpListener;

    fn server(allow_plaintext: bool, stats: &Arc<Registry>) -> TlsServer {
        let key = rcgen::KeyPair::generate().expect("a key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .and_then(|p| p.self_signed(&key))
            .expect("a certificate");
        let config = DownstreamTls {
            cert_chain_pem: cert.pem(),
            private_key_pem: key.serialize_pem(),
            cert_name: "c".to_owned(),
            alpn: Vec::new(),
            require_client_certificate: false,
            validation: None,
            min_version: "1.2".to_owned(),
            allow_plaintext,
            ocsp_staple: None,
        };
        TlsServer::compile(&config, SslStats::new(stats, "listener.t.ssl")).expect("compiles")
    }

    /// A server-side socket whose client connected and says nothing.
    async fn silent_client() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(l.local_addr().expect("addr"))
            .await
            .expect("connect");
        (l.accept().await.expect("accept").0, client)
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_plaintext_when_permissive_and_timed_out_otherwise() {
        let stats = Arc::new(Registry::default());
        let (tcp, _client) = silent_client().await;
        let permissive = server(true, &stats).accept(tcp).await;
        assert!(matches!(permissive, Some(Accepted::Plain(_))));

        let (tcp, _client) = silent_client().await;
        let strict = server(false, &stats);
        assert!(strict.accept(tcp).await.is_none());
        assert_eq!(strict.stats.get(ssl::CONNECTION_ERROR), 1);
    }
}
