//! What the engine knows about one downstream connection: its addresses and,
//! for TLS, what was negotiated and the verified peer certificate. Built once
//! per connection; routing, filters (RBAC), access logs and
//! `x-forwarded-client-cert` read it.

use std::net::SocketAddr;

/// One downstream connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// Set when the connection is TLS.
    pub tls: Option<TlsInfo>,
}

#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    /// The SNI the client sent.
    pub sni: Option<String>,
    /// The ALPN protocol agreed on.
    pub alpn: Option<Vec<u8>>,
    /// The client's certificate, verified; `None` when it sent none.
    pub peer_cert: Option<PeerCert>,
}

/// A verified peer certificate, as far as policy and headers need it.
#[derive(Debug, Clone, Default)]
pub struct PeerCert {
    pub uri_sans: Vec<String>,
    pub dns_sans: Vec<String>,
    /// RFC 2253 subject, as Envoy prints it.
    pub subject: String,
    /// The leaf, DER.
    pub der: bytes::Bytes,
    /// The certificates the peer sent after its leaf, DER (XFCC's `Chain`).
    pub intermediates: Vec<bytes::Bytes>,
}

impl ConnInfo {
    /// A plaintext connection.
    pub fn plain(peer: SocketAddr, local: SocketAddr) -> Self {
        ConnInfo {
            peer,
            local,
            tls: None,
        }
    }

    /// The peer's verified certificate, if it presented one.
    pub fn peer_cert(&self) -> Option<&PeerCert> {
        self.tls.as_ref()?.peer_cert.as_ref()
    }

    /// The authenticated identity, as Envoy's RBAC `authenticated.principal_name`
    /// sees it: the first URI SAN (a SPIFFE ID in a mesh), else the first DNS SAN,
    /// else the subject.
    pub fn principal(&self) -> Option<&str> {
        let c = self.peer_cert()?;
        c.uri_sans
            .first()
            .or(c.dns_sans.first())
            .map(String::as_str)
            .or(Some(c.subject.as_str()))
    }
}

/// A plaintext loopback connection for unit tests.
#[cfg(test)]
pub(crate) fn test_conn() -> &'static ConnInfo {
    static CONN: std::sync::OnceLock<ConnInfo> = std::sync::OnceLock::new();
    CONN.get_or_init(|| {
        ConnInfo::plain(
            "127.0.0.1:1".parse().expect("an address"),
            "127.0.0.1:2".parse().expect("an address"),
        )
    })
}
