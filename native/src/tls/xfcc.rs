//! Envoy's `x-forwarded-client-cert` (`forward_client_cert_details` and
//! `set_current_client_cert_details`): comma-separated elements, one per hop,
//! each `Key=value` pairs joined by `;`, in Envoy's order and quoting:
//! `By=<our URI SAN>;Hash=<sha256 of the peer's DER>;Cert="..";Chain="..";
//! Subject="..";URI=..;DNS=..`.

use std::fmt::Write;
use std::sync::{Arc, OnceLock};

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::{ForwardClientCert, XfccDetails};
use crate::conn::{ConnInfo, PeerCert};

pub static X_FORWARDED_CLIENT_CERT: HeaderName = HeaderName::from_static("x-forwarded-client-cert");

/// One connection's part in XFCC: the URI SANs of the certificate its handshake
/// presented (`By`), and this hop's element, the same for every request on the
/// connection, built once.
#[derive(Debug, Default)]
pub struct ConnXfcc {
    local_uri_sans: Option<Arc<[String]>>,
    element: OnceLock<(XfccDetails, Option<HeaderValue>)>,
}

impl ConnXfcc {
    pub fn new(local_uri_sans: Option<Arc<[String]>>) -> Self {
        ConnXfcc {
            local_uri_sans,
            element: OnceLock::new(),
        }
    }

    /// Envoy's `mutateXfccRequestHeader` for one request on this connection.
    pub fn apply(
        &self,
        mode: ForwardClientCert,
        details: XfccDetails,
        conn: &ConnInfo,
        headers: &mut HeaderMap,
    ) {
        if mode == ForwardClientCert::AlwaysForwardOnly {
            return;
        }
        let peer = match conn.peer_cert() {
            Some(p) if mode != ForwardClientCert::Sanitize => p,
            // Sanitize, or not mutual TLS: the client's value is never trusted.
            _ => {
                headers.remove(&X_FORWARDED_CLIENT_CERT);
                return;
            }
        };
        if mode == ForwardClientCert::ForwardOnly {
            return;
        }
        // A SAN with bytes no header may carry: forward no claim rather than a broken one.
        let Some(mine) = self.element(details, peer) else {
            headers.remove(&X_FORWARDED_CLIENT_CERT);
            return;
        };
        let value = if mode == ForwardClientCert::AppendForward {
            appended(headers, &mine)
        } else {
            Some(mine)
        };
        match value {
            Some(v) => headers.insert(&X_FORWARDED_CLIENT_CERT, v),
            None => headers.remove(&X_FORWARDED_CLIENT_CERT),
        };
    }

    fn element(&self, details: XfccDetails, peer: &PeerCert) -> Option<HeaderValue> {
        if let Some((built_for, v)) = self.element.get() {
            if *built_for == details {
                return v.clone();
            }
        }
        let by = self.local_uri_sans.as_deref().unwrap_or_default();
        let v = HeaderValue::try_from(element(details, peer, by)).ok();
        // A snapshot changing the details mid-connection builds anew each time.
        let _ = self.element.set((details, v.clone()));
        v
    }
}

/// The client's value (several header lines count as one comma-joined value,
/// as Envoy reads them), then ours.
fn appended(headers: &HeaderMap, mine: &HeaderValue) -> Option<HeaderValue> {
    let mut theirs = headers.get_all(&X_FORWARDED_CLIENT_CERT).iter().peekable();
    if theirs.peek().is_none() {
        return Some(mine.clone());
    }
    let mut all = Vec::new();
    for v in theirs {
        all.extend_from_slice(v.as_bytes());
        all.push(b',');
    }
    all.extend_from_slice(mine.as_bytes());
    HeaderValue::from_bytes(&all).ok()
}

/// This hop's element: `By` and `Hash` always, then the configured details in
/// Envoy's order (Cert, Chain, Subject, URI, DNS).
pub fn element(details: XfccDetails, peer: &PeerCert, local_uri_sans: &[String]) -> String {
    let mut parts: Vec<String> = local_uri_sans.iter().map(|u| format!("By={u}")).collect();
    parts.push(format!("Hash={}", sha256_hex(&peer.der)));
    if details.cert {
        parts.push(format!("Cert=\"{}\"", url_encoded_pem(&[&peer.der])));
    }
    if details.chain {
        let chain: Vec<&[u8]> = std::iter::once(&peer.der)
            .chain(&peer.intermediates)
            .map(|c| c.as_ref())
            .collect();
        parts.push(format!("Chain=\"{}\"", url_encoded_pem(&chain)));
    }
    if details.subject {
        // Present even when empty, as Envoy's.
        parts.push(format!("Subject=\"{}\"", peer.subject));
    }
    if details.uri {
        if peer.uri_sans.is_empty() {
            parts.push("URI=".to_owned());
        }
        parts.extend(peer.uri_sans.iter().map(|u| format!("URI={u}")));
    }
    if details.dns {
        parts.extend(peer.dns_sans.iter().map(|d| format!("DNS={d}")));
    }
    parts.join(";")
}

fn sha256_hex(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The certificates as PEM (64-column base64, as OpenSSL writes them), with the
/// few characters Envoy escapes (`\n`, space, `+`, `/`, `=`) percent-encoded.
fn url_encoded_pem(certs: &[&[u8]]) -> String {
    let mut out = String::new();
    for der in certs {
        out.push_str("-----BEGIN%20CERTIFICATE-----%0A");
        let b64 = base64(der);
        for line in b64.as_bytes().chunks(64) {
            for &c in line {
                match c {
                    b'+' => out.push_str("%2B"),
                    b'/' => out.push_str("%2F"),
                    b'=' => out.push_str("%3D"),
                    c => out.push(char::from(c)),
                }
            }
            out.push_str("%0A");
        }
        out.push_str("-----END%20CERTIFICATE-----%0A");
    }
    out
}

/// Standard base64 with padding.
pub(crate) fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from_be_bytes([0, b[0], b[1], b[2]]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::TlsInfo;

    fn peer() -> PeerCert {
        PeerCert {
            uri_sans: vec!["spiffe://td/ns/a/sa/client".into()],
            dns_sans: vec!["client.a".into(), "c.a".into()],
            subject: "CN=client,O=a".into(),
            der: bytes::Bytes::from_static(b"abc"),
            intermediates: vec![bytes::Bytes::from_static(b"\xfb\xff")],
        }
    }

    fn conn(peer_cert: Option<PeerCert>) -> ConnInfo {
        ConnInfo {
            peer: "127.0.0.1:1".parse().unwrap(),
            local: "127.0.0.1:2".parse().unwrap(),
            tls: Some(TlsInfo {
                peer_cert,
                ..TlsInfo::default()
            }),
        }
    }

    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const BY: &str = "spiffe://td/ns/a/sa/server";

    fn run(mode: ForwardClientCert, c: &ConnInfo, incoming: &[&str]) -> Vec<String> {
        let mut h = HeaderMap::new();
        for v in incoming {
            h.append(&X_FORWARDED_CLIENT_CERT, HeaderValue::from_str(v).unwrap());
        }
        let details = XfccDetails {
            uri: true,
            ..XfccDetails::default()
        };
        ConnXfcc::new(Some(Arc::from([BY.to_owned()]))).apply(mode, details, c, &mut h);
        h.get_all(&X_FORWARDED_CLIENT_CERT)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn elements_follow_envoys_order_and_quoting() {
        let all = XfccDetails {
            subject: true,
            uri: true,
            dns: true,
            cert: false,
            chain: false,
        };
        assert_eq!(
            element(all, &peer(), &[BY.to_owned()]),
            format!(
                "By={BY};Hash={ABC_SHA256};Subject=\"CN=client,O=a\";\
                 URI=spiffe://td/ns/a/sa/client;DNS=client.a;DNS=c.a"
            )
        );
        let mut bare = peer();
        bare.uri_sans.clear();
        bare.subject.clear();
        let some = XfccDetails {
            subject: true,
            uri: true,
            ..XfccDetails::default()
        };
        assert_eq!(
            element(some, &bare, &[]),
            format!("Hash={ABC_SHA256};Subject=\"\";URI=")
        );
    }

    #[test]
    fn certificates_are_url_encoded_pem() {
        let d = XfccDetails {
            cert: true,
            chain: true,
            ..XfccDetails::default()
        };
        // "abc" is YWJj; 0xfb 0xff is +/8= in base64.
        let leaf = "-----BEGIN%20CERTIFICATE-----%0AYWJj%0A-----END%20CERTIFICATE-----%0A";
        let inter = "-----BEGIN%20CERTIFICATE-----%0A%2B%2F8%3D%0A-----END%20CERTIFICATE-----%0A";
        assert_eq!(
            element(d, &peer(), &[]),
            format!("Hash={ABC_SHA256};Cert=\"{leaf}\";Chain=\"{leaf}{inter}\"")
        );
    }

    #[test]
    fn pem_lines_wrap_at_64_columns() {
        let encoded = url_encoded_pem(&[&[0u8; 60]]);
        let body = encoded
            .trim_start_matches("-----BEGIN%20CERTIFICATE-----%0A")
            .trim_end_matches("-----END%20CERTIFICATE-----%0A");
        let lines: Vec<&str> = body.split("%0A").filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.iter().map(|l| l.len()).collect::<Vec<_>>(), [64, 16]);
    }

    #[test]
    fn modes_treat_the_clients_value_as_envoy_does() {
        let mtls = conn(Some(peer()));
        let tls_only = conn(None);
        let plain = ConnInfo::plain(mtls.peer, mtls.local);
        let mine = format!("By={BY};Hash={ABC_SHA256};URI=spiffe://td/ns/a/sa/client");
        let theirs = ["By=x;Hash=1", "By=y;Hash=2"];

        assert!(run(ForwardClientCert::Sanitize, &mtls, &theirs).is_empty());
        assert_eq!(run(ForwardClientCert::ForwardOnly, &mtls, &theirs), theirs);
        assert!(run(ForwardClientCert::ForwardOnly, &tls_only, &theirs).is_empty());
        assert_eq!(
            run(ForwardClientCert::AppendForward, &mtls, &theirs),
            [format!("By=x;Hash=1,By=y;Hash=2,{mine}")]
        );
        assert_eq!(
            run(ForwardClientCert::AppendForward, &mtls, &[]),
            [mine.as_str()]
        );
        assert_eq!(run(ForwardClientCert::SanitizeSet, &mtls, &theirs), [mine]);
        assert!(run(ForwardClientCert::SanitizeSet, &plain, &theirs).is_empty());
        assert_eq!(
            run(ForwardClientCert::AlwaysForwardOnly, &plain, &theirs),
            theirs
        );
    }

    #[test]
    fn a_connections_element_follows_the_details_of_each_snapshot() {
        let x = ConnXfcc::new(None);
        let c = conn(Some(peer()));
        let set = |details| {
            let mut h = HeaderMap::new();
            x.apply(ForwardClientCert::SanitizeSet, details, &c, &mut h);
            h[&X_FORWARDED_CLIENT_CERT].to_str().unwrap().to_owned()
        };
        let uri = XfccDetails {
            uri: true,
            ..XfccDetails::default()
        };
        let dns = XfccDetails {
            dns: true,
            ..XfccDetails::default()
        };
        let with_uri = format!("Hash={ABC_SHA256};URI=spiffe://td/ns/a/sa/client");
        assert_eq!(set(uri), with_uri);
        assert_eq!(set(uri), with_uri);
        assert_eq!(set(dns), format!("Hash={ABC_SHA256};DNS=client.a;DNS=c.a"));
        assert_eq!(set(uri), with_uri);
    }

    #[test]
    fn base64_pads_like_rfc_4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
