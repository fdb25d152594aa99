//! The request hash for ring hash and Maglev clusters (Envoy's route `hash_policy`),
//! and the xxHash64 it is made of.
//!
//! Envoy hashes with xxHash64 (seed 0) everywhere: request keys, ring points, Maglev
//! offsets. Using the same function lets a fastmesh proxy send a key to the same host
//! an Envoy sidecar with the same endpoints would.

use std::io::Write;
use std::net::IpAddr;

use http::HeaderMap;

use crate::config::{HashPolicy, HashPolicyKind};

/// The hash of one request under `policies`, `None` when no policy yields a value.
///
/// As in Envoy: policies run in order; one that finds nothing is skipped; each new
/// hash is folded in as `rotl(acc, 1) ^ h` so equal rules do not cancel out; a
/// `terminal` policy stops the walk once some hash exists.
pub fn request_hash(
    policies: &[HashPolicy],
    headers: &HeaderMap,
    query: Option<&str>,
    peer: IpAddr,
) -> Option<u64> {
    let mut acc: Option<u64> = None;
    for policy in policies {
        let h = match &policy.kind {
            HashPolicyKind::Header(name) => header_hash(headers, name),
            HashPolicyKind::Cookie(name) => cookie_value(headers, name).map(|v| xxh64(v, 0)),
            HashPolicyKind::SourceIp => Some(ip_hash(peer)),
            HashPolicyKind::QueryParameter(name) => query
                .and_then(|q| query_value(q, name))
                .map(|v| xxh64(v, 0)),
        };
        if let Some(h) = h {
            acc = Some(acc.map_or(0, |a| a.rotate_left(1)) ^ h);
        }
        if policy.terminal && acc.is_some() {
            break;
        }
    }
    acc
}

/// All values of the header, sorted so their order does not matter, hashed as one
/// byte string (Envoy hashes the span of sorted values).
fn header_hash(headers: &HeaderMap, name: &str) -> Option<u64> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(xxh64(first.as_bytes(), 0));
    };
    // Several values: rare, so the sort and the joined copy may allocate.
    let mut all: Vec<&[u8]> = [first, second]
        .into_iter()
        .chain(values)
        .map(|v| v.as_bytes())
        .collect();
    all.sort_unstable();
    Some(xxh64(&all.concat(), 0))
}

/// The value of cookie `name` in the request's `cookie` header(s), surrounding
/// double quotes removed. An empty value counts as absent, as in Envoy.
fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            (pair[..eq].trim_ascii() == name.as_bytes())
                .then(|| unquote(pair[eq + 1..].trim_ascii()))
        })
        .filter(|v| !v.is_empty())
}

fn unquote(v: &[u8]) -> &[u8] {
    match v {
        [b'"', inner @ .., b'"'] => inner,
        _ => v,
    }
}

/// The raw (not percent-decoded) value of the first `name` parameter; a bare `name`
/// has the empty value, as Envoy parses it.
fn query_value<'q>(query: &'q str, name: &str) -> Option<&'q [u8]> {
    query
        .split('&')
        .find_map(|param| match param.split_once('=') {
            Some((k, v)) => (k == name).then_some(v.as_bytes()),
            None => (param == name).then_some(&b""[..]),
        })
}

/// The hash of the IP's text form (`10.0.0.1`, `::1`), formatted on the stack.
fn ip_hash(ip: IpAddr) -> u64 {
    // Longest text form: an IPv4-mapped IPv6 address, 45 bytes.
    let mut buf = [0u8; 64];
    let mut w = &mut buf[..];
    let len = match write!(w, "{ip}") {
        Ok(()) => 64 - w.len(),
        Err(_) => 0,
    };
    xxh64(&buf[..len], 0)
}

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

/// xxHash64 (XXH64) of `data`, the function Envoy's `HashUtil::xxHash64` computes.
pub fn xxh64(data: &[u8], seed: u64) -> u64 {
    let mut rest = data;
    let mut h = if rest.len() >= 32 {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        while rest.len() >= 32 {
            for (i, lane) in v.iter_mut().enumerate() {
                *lane = round(*lane, read_u64(&rest[i * 8..]));
            }
            rest = &rest[32..];
        }
        let mut h = v[0]
            .rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18));
        for lane in v {
            h = (h ^ round(0, lane)).wrapping_mul(P1).wrapping_add(P4);
        }
        h
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(data.len() as u64);
    while rest.len() >= 8 {
        h ^= round(0, read_u64(rest));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        let k = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        h ^= u64::from(k).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = &rest[4..];
    }
    for &b in rest {
        h ^= u64::from(b).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

#[inline]
fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

#[inline]
fn read_u64(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_le_bytes(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn xxh64_matches_reference_vectors() {
        // From the xxHash reference implementation (XXH64, seed 0).
        assert_eq!(xxh64(b"", 0), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"a", 0), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(xxh64(b"abc", 0), 0x44BC_2CF5_AD77_0999);
        // 39 bytes: the 32-byte stripe loop, then the 4- and 1-byte tails.
        assert_eq!(
            xxh64(b"Nobody inspects the spammish repetition", 0),
            0xFBCE_A83C_8A37_8BF1
        );
    }

    #[test]
    fn xxh64_seed_changes_the_hash() {
        assert_ne!(xxh64(b"10.0.0.1:80", 0), xxh64(b"10.0.0.1:80", 1));
    }

    fn policy(kind: HashPolicyKind, terminal: bool) -> HashPolicy {
        HashPolicy { kind, terminal }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3));

    #[test]
    fn header_policy_hashes_the_value() {
        let p = [policy(HashPolicyKind::Header("x-user".into()), false)];
        let h = request_hash(&p, &headers(&[("x-user", "alice")]), None, PEER);
        assert_eq!(h, Some(xxh64(b"alice", 0)));
        assert_eq!(request_hash(&p, &HeaderMap::new(), None, PEER), None);
    }

    #[test]
    fn multi_valued_header_ignores_value_order() {
        let p = [policy(HashPolicyKind::Header("x-k".into()), false)];
        let ab = request_hash(&p, &headers(&[("x-k", "b"), ("x-k", "a")]), None, PEER);
        let ba = request_hash(&p, &headers(&[("x-k", "a"), ("x-k", "b")]), None, PEER);
        assert_eq!(ab, ba);
        assert_eq!(ab, Some(xxh64(b"ab", 0)));
    }

    #[test]
    fn cookie_policy_finds_the_named_cookie_across_headers() {
        let p = [policy(HashPolicyKind::Cookie("session".into()), false)];
        let h = headers(&[
            ("cookie", "a=1; sess=2"),
            ("cookie", "x=y;  session=\"abc\" "),
        ]);
        assert_eq!(request_hash(&p, &h, None, PEER), Some(xxh64(b"abc", 0)));
        let none = headers(&[("cookie", "sessionid=1; session=")]);
        assert_eq!(request_hash(&p, &none, None, PEER), None);
    }

    #[test]
    fn source_ip_hashes_the_address_text() {
        let p = [policy(HashPolicyKind::SourceIp, false)];
        let h = request_hash(&p, &HeaderMap::new(), None, PEER);
        assert_eq!(h, Some(xxh64(b"10.1.2.3", 0)));
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let h6 = request_hash(&p, &HeaderMap::new(), None, v6);
        assert_eq!(h6, Some(xxh64(b"2001:db8::1", 0)));
    }

    #[test]
    fn query_parameter_uses_the_first_occurrence() {
        let p = [policy(HashPolicyKind::QueryParameter("id".into()), false)];
        let q = Some("idx=9&id=7&id=8");
        assert_eq!(
            request_hash(&p, &HeaderMap::new(), q, PEER),
            Some(xxh64(b"7", 0))
        );
        assert_eq!(
            request_hash(&p, &HeaderMap::new(), Some("id"), PEER),
            Some(xxh64(b"", 0))
        );
        assert_eq!(request_hash(&p, &HeaderMap::new(), Some("x=1"), PEER), None);
        assert_eq!(request_hash(&p, &HeaderMap::new(), None, PEER), None);
    }

    #[test]
    fn hashes_combine_with_a_rotation_and_missing_ones_are_skipped() {
        let p = [
            policy(HashPolicyKind::Header("x-a".into()), false),
            policy(HashPolicyKind::Header("x-missing".into()), false),
            policy(HashPolicyKind::Header("x-b".into()), false),
        ];
        let h = request_hash(&p, &headers(&[("x-a", "1"), ("x-b", "2")]), None, PEER);
        let (a, b) = (xxh64(b"1", 0), xxh64(b"2", 0));
        assert_eq!(h, Some(a.rotate_left(1) ^ b));
        // The same rule twice does not cancel out to zero.
        let twice = [p[0].clone(), p[0].clone()];
        let h = request_hash(&twice, &headers(&[("x-a", "1")]), None, PEER);
        assert_eq!(h, Some(a.rotate_left(1) ^ a));
        assert_ne!(h, Some(0));
    }

    #[test]
    fn terminal_stops_only_once_a_hash_exists() {
        let p = [
            policy(HashPolicyKind::Header("x-missing".into()), true),
            policy(HashPolicyKind::Header("x-a".into()), true),
            policy(HashPolicyKind::SourceIp, false),
        ];
        let h = request_hash(&p, &headers(&[("x-a", "1")]), None, PEER);
        assert_eq!(h, Some(xxh64(b"1", 0)));
    }
}
