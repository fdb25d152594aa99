//! What a connection's ClientHello says, read with `peek` before the handshake
//! (or the upstream, when the chain passes TLS through) consumes it: its SNI, by
//! which the listener picks a filter chain (Envoy's TLS inspector), and whether it
//! asks for an OCSP staple, by which Envoy counts and decides stapling
//! (`ssl.ocsp_staple_*`) and rustls does not tell.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

/// A TLS record header and the largest record body.
const MAX_RECORD: usize = 5 + (1 << 14);
const HANDSHAKE: u8 = 0x16;
const CLIENT_HELLO: u8 = 1;
const SERVER_NAME: u16 = 0;
const HOST_NAME: u8 = 0;
const STATUS_REQUEST: u16 = 5;

/// The head of a new connection.
#[derive(Debug, PartialEq)]
pub(crate) enum Peeked {
    /// A ClientHello, whole in the first record.
    Hello {
        sni: Option<String>,
        asks_for_staple: bool,
    },
    /// Bytes that are no ClientHello in one record (plaintext, or a ClientHello
    /// split over records, which the handshake still reads).
    Other,
    /// The peer closed, or sent no whole first record by the deadline.
    Nothing,
}

impl Peeked {
    pub(crate) fn asks_for_staple(&self) -> bool {
        matches!(
            self,
            Peeked::Hello {
                asks_for_staple: true,
                ..
            }
        )
    }
}

/// Peek at the head of `tcp` until its first record is whole, or `deadline`.
pub(crate) async fn peek(tcp: &TcpStream, deadline: Instant) -> Peeked {
    let mut buf = vec![0; MAX_RECORD];
    let mut wait = Duration::from_millis(1);
    loop {
        let n = match tokio::time::timeout_at(deadline, tcp.peek(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return Peeked::Nothing,
        };
        match read(&buf[..n]) {
            Some(peeked) => return peeked,
            None if n == buf.len() => return Peeked::Other,
            // The rest of the record is still on its way: peek again (a peek
            // with data waiting returns at once, so wait between them).
            None => {
                if Instant::now() >= deadline {
                    return Peeked::Nothing;
                }
                tokio::time::sleep_until((Instant::now() + wait).min(deadline)).await;
                wait = (wait * 2).min(Duration::from_millis(100));
            }
        }
    }
}

/// `None` while the first record is incomplete; then what it is.
fn read(bytes: &[u8]) -> Option<Peeked> {
    let (header, rest) = bytes.split_at_checked(5)?;
    if header[0] != HANDSHAKE {
        return Some(Peeked::Other);
    }
    let record = rest.get(..usize::from(u16::from_be_bytes([header[3], header[4]])))?;
    let Some(mut ext) = client_hello_extensions(record) else {
        return Some(Peeked::Other);
    };
    let (mut sni, mut asks_for_staple) = (None, false);
    while let (Some(kind), Some(body)) = (ext.u16(), ext.vec16()) {
        match kind {
            SERVER_NAME => sni = host_name(body),
            STATUS_REQUEST => asks_for_staple = true,
            _ => {}
        }
    }
    Some(Peeked::Hello {
        sni,
        asks_for_staple,
    })
}

/// The `host_name` of a `server_name` extension (RFC 6066 3), when it is text.
fn host_name(body: &[u8]) -> Option<String> {
    let mut list = Reader(Reader(body).vec16()?);
    while let Some(kind) = list.take(1) {
        let name = list.vec16()?;
        if kind == [HOST_NAME] {
            return std::str::from_utf8(name).ok().map(str::to_owned);
        }
    }
    None
}

/// The extensions block of the ClientHello that fills `record`.
fn client_hello_extensions(record: &[u8]) -> Option<Reader<'_>> {
    let mut r = Reader(record);
    if r.take(1)? != [CLIENT_HELLO] {
        return None;
    }
    let len = r.take(3)?;
    let len = usize::from(len[0]) << 16 | usize::from(len[1]) << 8 | usize::from(len[2]);
    let mut hello = Reader(r.take(len)?);
    hello.take(2 + 32)?; // legacy_version, random
    hello.vec8()?; // legacy_session_id
    hello.vec16()?; // cipher_suites
    hello.vec8()?; // legacy_compression_methods
    hello.vec16().map(Reader)
}

/// A cursor over TLS's length-prefixed encoding.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.take(1)?[0];
        self.take(usize::from(n))
    }

    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello record with these extensions (type, body).
    fn hello(extensions: &[(u16, &[u8])]) -> Vec<u8> {
        let mut ext = Vec::new();
        for (t, body) in extensions {
            ext.extend(t.to_be_bytes());
            ext.extend((body.len() as u16).to_be_bytes());
            ext.extend(*body);
        }
        let mut body = vec![3, 3];
        body.extend([7; 32]); // random
        body.extend([1, 9]); // a 1-byte session id
        body.extend([0, 2, 0x13, 0x01]); // one cipher suite
        body.extend([1, 0]); // null compression
        body.extend((ext.len() as u16).to_be_bytes());
        body.extend(ext);
        let mut msg = vec![CLIENT_HELLO, 0, (body.len() >> 8) as u8, body.len() as u8];
        msg.extend(body);
        let mut record = vec![HANDSHAKE, 3, 1];
        record.extend((msg.len() as u16).to_be_bytes());
        record.extend(msg);
        record
    }

    fn hello_of(sni: Option<&str>, asks_for_staple: bool) -> Option<Peeked> {
        Some(Peeked::Hello {
            sni: sni.map(str::to_owned),
            asks_for_staple,
        })
    }

    #[test]
    fn reads_the_sni_and_the_staple_request_among_the_extensions() {
        let sni: &[u8] = b"\x00\x06\x00\x00\x03a.b";
        let asked = hello(&[(0, sni), (STATUS_REQUEST, b"\x01\x00\x00\x00\x00")]);
        assert_eq!(read(&asked), hello_of(Some("a.b"), true));
        assert_eq!(read(&hello(&[(0, sni)])), hello_of(Some("a.b"), false));
        assert_eq!(read(&hello(&[])), hello_of(None, false));
        let not_a_host_name: &[u8] = b"\x00\x06\x07\x00\x03a.b";
        assert_eq!(read(&hello(&[(0, not_a_host_name)])), hello_of(None, false));
    }

    #[test]
    fn an_incomplete_record_needs_more_and_garbage_is_other() {
        let asked = hello(&[(STATUS_REQUEST, b"\x01\x00\x00\x00\x00")]);
        for cut in [0, 4, 5, asked.len() - 1] {
            assert_eq!(read(&asked[..cut]), None, "{cut}");
        }
        assert_eq!(read(b"GET / HTTP/1.1\r\n"), Some(Peeked::Other));
        let mut truncated = asked.clone();
        truncated[8] = 0xff; // a handshake length past the record
        assert_eq!(read(&truncated), Some(Peeked::Other));
    }
}
