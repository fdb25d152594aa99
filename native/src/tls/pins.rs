//! Envoy's certificate pinning (`verify_certificate_hash`, `verify_certificate_spki`):
//! the peer's leaf must have one of the SHA-256 digests of its DER, or of its
//! SubjectPublicKeyInfo. The digests are parsed as Envoy parses them: hex (the
//! 95-character colon-separated fingerprint too) and padded base64.

use ring::digest::{digest, SHA256};
use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

type Sha256 = [u8; 32];

/// A validation context's pins, compiled; empty = no pinning.
#[derive(Debug, Default)]
pub(crate) struct CertPins {
    hashes: Vec<Sha256>,
    spkis: Vec<Sha256>,
}

impl CertPins {
    pub(crate) fn compile(hashes: &[String], spkis: &[String]) -> Result<Self, String> {
        let hashes = hashes
            .iter()
            .map(|h| {
                parse_hash(h).ok_or_else(|| {
                    format!("verify_certificate_hash: {h:?} is not a hex-encoded SHA-256")
                })
            })
            .collect::<Result<_, _>>()?;
        let spkis = spkis
            .iter()
            .map(|s| {
                parse_spki(s).ok_or_else(|| {
                    format!("verify_certificate_spki: {s:?} is not a base64-encoded SHA-256")
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(CertPins { hashes, spkis })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.hashes.is_empty() && self.spkis.is_empty()
    }

    /// Whether `leaf` matches a hash or a pin (true when there are none).
    pub(crate) fn accept(&self, leaf: &CertificateDer<'_>) -> bool {
        if self.is_empty() {
            return true;
        }
        if !self.hashes.is_empty() && self.hashes.contains(&sha256(leaf)) {
            return true;
        }
        if self.spkis.is_empty() {
            return false;
        }
        match X509Certificate::from_der(leaf) {
            Ok((_, cert)) => self.spkis.contains(&sha256(cert.public_key().raw)),
            Err(_) => false,
        }
    }
}

fn sha256(data: &[u8]) -> Sha256 {
    let mut out = [0; 32];
    out.copy_from_slice(digest(&SHA256, data).as_ref());
    out
}

/// Envoy's hash: 64 hex digits (either case), or the 95-character fingerprint with
/// a colon after each pair (Envoy drops the colons only at that length).
fn parse_hash(s: &str) -> Option<Sha256> {
    let hex: String = if s.len() == 95 {
        s.chars().filter(|&c| c != ':').collect()
    } else {
        s.to_owned()
    };
    // `from_str_radix` would take a sign: digits only.
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Envoy's pin: standard, padded base64 of 32 bytes (44 characters).
fn parse_spki(s: &str) -> Option<Sha256> {
    let bytes = s.as_bytes();
    if bytes.len() != 44 || bytes[43] != b'=' {
        return None;
    }
    let mut bits: u32 = 0;
    let mut n = 0;
    let mut out = Vec::with_capacity(33);
    for &c in &bytes[..43] {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    // 43 digits carry 258 bits: 32 bytes and 2 bits that must be zero.
    (out.len() == 32 && bits == 0).then(|| out.try_into().expect("32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::xfcc::base64;

    const HEX: &str = "df6ff72fe9116521268f6f2dd4966f51df479883fe7037b39f75916ac3049d1a";
    const FINGERPRINT: &str = "DF:6F:F7:2F:E9:11:65:21:26:8F:6F:2D:D4:96:6F:51:\
                               DF:47:98:83:FE:70:37:B3:9F:75:91:6A:C3:04:9D:1A";

    #[test]
    fn hashes_are_hex_or_a_fingerprint_in_either_case() {
        let want = parse_hash(HEX).expect("hex");
        assert_eq!(want[0], 0xdf);
        assert_eq!(want[31], 0x1a);
        assert_eq!(parse_hash(&HEX.to_uppercase()), Some(want));
        assert_eq!(FINGERPRINT.len(), 95);
        assert_eq!(parse_hash(FINGERPRINT), Some(want));
    }

    #[test]
    fn bad_hashes_are_refused() {
        for bad in [
            "",
            &HEX[..62],
            &format!("{HEX}00"),
            &HEX.replace('d', "g"),
            &format!("+{}", &HEX[1..]),
            // Colons only at the fingerprint's length, as Envoy.
            &FINGERPRINT.replacen(':', "", 1),
            &FINGERPRINT.replace(':', "-"),
        ] {
            assert_eq!(parse_hash(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn pins_are_padded_base64_of_32_bytes() {
        let pin = parse_spki("NvqYIYSbgK2vCJpQhObf77vv+bQWtc5ek5RIOwPiC9A=").expect("a pin");
        assert_eq!(&pin[..3], &[0x36, 0xfa, 0x98]);
        assert_eq!(pin[31], 0xd0);
        for bad in [
            "NvqYIYSbgK2vCJpQhObf77vv+bQWtc5ek5RIOwPiC9A",
            "NvqYIYSbgK2vCJpQhObf77vv+bQWtc5ek5RIOwPiC9B=",
            "NvqYIYSbgK2vCJpQhObf77vv-bQWtc5ek5RIOwPiC9A=",
            "NvqYIYSbgK2vCJpQhObf77vv+bQWtc5ek5RIOwPiC9A==",
            "",
        ] {
            assert_eq!(parse_spki(bad), None, "{bad:?}");
        }
    }

    fn cert() -> (CertificateDer<'static>, Vec<u8>) {
        let key = rcgen::KeyPair::generate().expect("a key");
        let cert = rcgen::CertificateParams::new(vec!["a.test".to_owned()])
            .and_then(|p| p.self_signed(&key))
            .expect("a certificate");
        (
            cert.der().clone(),
            rcgen::PublicKeyData::subject_public_key_info(&key),
        )
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn a_leaf_matches_its_hash_or_its_key_pin() {
        let (leaf, spki) = cert();
        let (other, other_spki) = cert();
        let by_hash = CertPins::compile(&[hex(&sha256(&leaf))], &[]).expect("compiles");
        assert!(by_hash.accept(&leaf));
        assert!(!by_hash.accept(&other));
        let by_key = CertPins::compile(&[], &[base64(&sha256(&spki))]).expect("compiles");
        assert!(by_key.accept(&leaf));
        assert!(!by_key.accept(&other));
        // Either list may match, as Envoy.
        let either = CertPins::compile(&[hex(&sha256(&leaf))], &[base64(&sha256(&other_spki))])
            .expect("compiles");
        assert!(either.accept(&leaf) && either.accept(&other));
        assert!(CertPins::default().accept(&leaf), "no pins: anything");
    }

    #[test]
    fn a_bad_digest_names_its_field() {
        let e = CertPins::compile(&["xyz".into()], &[]).unwrap_err();
        assert_eq!(
            e,
            "verify_certificate_hash: \"xyz\" is not a hex-encoded SHA-256"
        );
        let e = CertPins::compile(&[], &["xyz".into()]).unwrap_err();
        assert!(e.starts_with("verify_certificate_spki: "), "{e}");
    }
}
