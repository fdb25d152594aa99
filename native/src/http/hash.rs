//! The request hash for ring hash and Maglev clusters (placeholder until the
//! balancer work lands).

use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use crate::config::{HashPolicy, HashPolicyKind};

pub fn request_hash(
    policies: &[HashPolicy],
    headers: &http::HeaderMap,
    _query: Option<&str>,
    peer: IpAddr,
) -> Option<u64> {
    let mut acc: Option<u64> = None;
    for p in policies {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        let found = match &p.kind {
            HashPolicyKind::Header(n) => headers.get(n.as_str()).map(|v| v.hash(&mut h)),
            HashPolicyKind::SourceIp => {
                peer.hash(&mut h);
                Some(())
            }
            _ => None,
        };
        if found.is_some() {
            let v = h.finish();
            acc = Some(acc.map_or(v, |a| a.rotate_left(1) ^ v));
            if p.terminal {
                break;
            }
        }
    }
    acc
}
