//! A cluster's TLS origination (Envoy's `UpstreamTlsContext`): the rustls client
//! config compiled once per cluster, the handshake on a fresh upstream
//! connection, and the stream type upstream connections have either way.

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, HandshakeKind};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::UpstreamTls;
use crate::stats::ssl;
use crate::tls::verify::ServerCertPolicy;
use crate::tls::{cert_chain, count_failure, private_key, provider, validation};
use crate::tls::{Expiry, SslStats};

/// An `UpstreamTls` compiled for one cluster.
#[derive(Debug)]
pub struct TlsClient {
    rustls: Arc<ClientConfig>,
    /// Envoy's `sni`; without it none is sent and sessions are kept per endpoint IP.
    sni: Option<ServerName<'static>>,
    stats: Arc<SslStats>,
    expiry: Expiry,
}

impl TlsClient {
    /// `stats` is the cluster's `cluster.<name>.ssl` group.
    pub fn compile(t: &UpstreamTls, stats: Arc<SslStats>) -> Result<Self, String> {
        let provider = provider();
        let mut expiry = Expiry::default();
        let policy = ServerCertPolicy::new(
            validation(t.validation.as_ref(), &stats, &mut expiry)?,
            &provider,
            stats.clone(),
        )?;
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(rustls::DEFAULT_VERSIONS)
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(policy));
        let mut config = match (&t.cert_chain_pem, &t.private_key_pem) {
            (Some(chain), Some(key)) => {
                let chain = cert_chain(chain)?;
                expiry
                    .certificate(&stats, &t.cert_name, &chain[..1])
                    .map_err(|e| format!("cert_chain_pem: {e}"))?;
                builder
                    .with_client_auth_cert(chain, private_key(key)?)
                    .map_err(|e| format!("cert_chain_pem/private_key_pem: {e}"))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err("cert_chain_pem and private_key_pem go together".into()),
        };
        config.alpn_protocols = t.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        config.enable_sni = t.sni.is_some();
        let sni = t
            .sni
            .as_deref()
            .map(|s| ServerName::try_from(s.to_owned()).map_err(|e| format!("sni {s:?}: {e}")))
            .transpose()?;
        Ok(TlsClient {
            rustls: Arc::new(config),
            sni,
            stats,
            expiry,
        })
    }

    /// What this context holds that expires.
    pub fn expiry(&self) -> &Expiry {
        &self.expiry
    }

    /// Run the client handshake on a new connection to `ip`.
    pub async fn connect(&self, tcp: TcpStream, ip: IpAddr) -> io::Result<TlsStream<TcpStream>> {
        let name = self
            .sni
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(ip.into()));
        match TlsConnector::from(self.rustls.clone())
            .connect(name, tcp)
            .await
        {
            Ok(stream) => {
                self.stats.inc(ssl::HANDSHAKE);
                self.stats.negotiated(stream.get_ref().1);
                if stream.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed) {
                    self.stats.inc(ssl::SESSION_REUSED);
                }
                Ok(stream)
            }
            Err(e) => {
                count_failure(&self.stats, &e);
                Err(e)
            }
        }
    }
}

/// An upstream connection, TLS or not. The TLS state is boxed so plaintext
/// connections stay small.
#[derive(Debug)]
pub enum UpstreamStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for UpstreamStream {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write(cx, data),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
        }
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamStream::Plain(s) => s.is_write_vectored(),
            UpstreamStream::Tls(s) => s.is_write_vectored(),
        }
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
