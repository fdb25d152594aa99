//! Whether a connection's ClientHello asks for an OCSP staple (its `status_request`
//! extension), read with `peek` before the handshake consumes it: Envoy counts and
//! decides stapling by it (`ssl.ocsp_staple_*`), and rustls does not tell.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

/// A TLS record header and the largest record body.
const MAX_RECORD: usize = 5 + (1 << 14);
const HANDSHAKE: u8 = 0x16;
const CLIENT_HELLO: u8 = 1;
const STATUS_REQUEST: u16 = 5;

/// Whether the ClientHello at the head of `tcp` asks for a staple; `false` when the
/// bytes are no ClientHello in one record, or it is not whole by `deadline` (the
/// handshake then fails on its own).
pub(crate) async fn asks_for_staple(tcp: &TcpStream, deadline: Instant) -> bool {
    let mut buf = vec![0; MAX_RECORD];
    let mut wait = Duration::from_millis(1);
    loop {
        let n = match tokio::time::timeout_at(deadline, tcp.peek(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return false,
        };
        match status_request(&buf[..n]) {
            Some(asked) => return asked,
            None if n == buf.len() => return false,
            // The rest of the record is still on its way: peek again (a peek
            // with data waiting returns at once, so wait between them).
            None => {
                tokio::time::sleep_until((Instant::now() + wait).min(deadline)).await;
                wait = (wait * 2).min(Duration::from_millis(100));
            }
        }
    }
}

/// `None` while the first record is incomplete; then whether it is a ClientHello
/// carrying `status_request`.
fn status_request(bytes: &[u8]) -> Option<bool> {
    let (header, rest) = bytes.split_at_checked(5)?;
    if header[0] != HANDSHAKE {
        return Some(false);
    }
    let record = rest.get(..usize::from(u16::from_be_bytes([header[3], header[4]])))?;
    Some(client_hello_extensions(record).is_some_and(|mut ext| {
        std::iter::from_fn(|| Some((ext.u16()?, ext.vec16()?))).any(|(t, _)| t == STATUS_REQUEST)
    }))
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

    #[test]
    fn finds_status_request_among_the_extensions() {
        let sni: &[u8] = b"\x00\x06\x00\x00\x03a.b";
        let asked = hello(&[(0, sni), (STATUS_REQUEST, b"\x01\x00\x00\x00\x00")]);
        assert_eq!(status_request(&asked), Some(true));
        assert_eq!(status_request(&hello(&[(0, sni)])), Some(false));
        assert_eq!(status_request(&hello(&[])), Some(false));
    }

    #[test]
    fn an_incomplete_record_needs_more_and_garbage_asks_nothing() {
        let asked = hello(&[(STATUS_REQUEST, b"\x01\x00\x00\x00\x00")]);
        for cut in [0, 4, 5, asked.len() - 1] {
            assert_eq!(status_request(&asked[..cut]), None, "{cut}");
        }
        assert_eq!(status_request(b"GET / HTTP/1.1\r\n"), Some(false));
        let mut truncated = asked.clone();
        truncated[8] = 0xff; // a handshake length past the record
        assert_eq!(status_request(&truncated), Some(false));
    }
}
