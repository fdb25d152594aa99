//! Ketama-style consistent hash ring, built as Envoy's `RingHashLoadBalancer` builds
//! it so a key lands on the same host an Envoy sidecar would pick.
//!
//! Each host gets ring points in proportion to its weight: point `i` of a host sits at
//! `xxh64("<ip:port>_<i>")`. A request goes to the first point at or after its hash,
//! wrapping around. Removing a host removes only its points, so only its keys move,
//! up to the point counts the ring size rescaling changes (Envoy's behaviour too).

use std::fmt::Write;
use std::sync::Arc;

use super::EndpointRt;
use crate::http::hash::xxh64;

/// A sorted ring of (point, endpoint index).
#[derive(Debug, Default)]
pub struct Ring {
    points: Vec<u64>,
    hosts: Vec<u32>,
}

impl Ring {
    /// `hosts`: endpoint indices into `endpoints`; the ring gets about
    /// `min_size` points (more so the lightest host gets a whole number), at most `max_size`.
    pub fn new(hosts: &[u32], endpoints: &[Arc<EndpointRt>], min_size: u64, max_size: u64) -> Ring {
        if hosts.is_empty() {
            return Ring::default();
        }
        let max_size = max_size.max(1);
        let min_size = min_size.clamp(1, max_size);
        let sum: u64 = hosts
            .iter()
            .map(|&i| u64::from(endpoints[i as usize].weight))
            .sum();
        let normalized = |i: u32| f64::from(endpoints[i as usize].weight) / sum as f64;
        let min_weight = hosts
            .iter()
            .map(|&i| normalized(i))
            .fold(f64::INFINITY, f64::min);
        // The lightest host gets a whole number of points; capped at max_size.
        let scale = ((min_weight * min_size as f64).ceil() / min_weight).min(max_size as f64);
        let mut entries: Vec<(u64, u32)> = Vec::with_capacity(scale.ceil() as usize);
        // Running sums across hosts so fractional shares add up to the ring size.
        let (mut current, mut target) = (0.0f64, 0.0f64);
        let mut key = String::new();
        for &host in hosts {
            key.clear();
            key.push_str(endpoints[host as usize].authority.as_str());
            key.push('_');
            let base = key.len();
            target += scale * normalized(host);
            let mut i = 0u64;
            while current < target {
                key.truncate(base);
                let _ = write!(key, "{i}");
                entries.push((xxh64(key.as_bytes(), 0), host));
                i += 1;
                current += 1.0;
            }
        }
        entries.sort_unstable();
        Ring {
            points: entries.iter().map(|e| e.0).collect(),
            hosts: entries.iter().map(|e| e.1).collect(),
        }
    }

    /// The host owning `hash`: the first point at or after it. A retry (`attempt > 0`)
    /// walks that many points further, as Envoy does, to reach another host.
    pub fn pick(&self, hash: u64, attempt: u32) -> Option<u32> {
        let len = self.points.len();
        if len == 0 {
            return None;
        }
        let first = self.points.partition_point(|&p| p < hash) % len;
        Some(self.hosts[(first + attempt as usize) % len])
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.points.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::lb::test_endpoints;

    fn equal(n: usize) -> Vec<Arc<EndpointRt>> {
        test_endpoints(&vec![(1, 0); n])
    }

    fn all(eps: &[Arc<EndpointRt>]) -> Vec<u32> {
        (0..eps.len() as u32).collect()
    }

    fn keys() -> impl Iterator<Item = u64> {
        (0..20_000u64).map(|k| xxh64(&k.to_le_bytes(), 0))
    }

    /// Host of each key on `ring`.
    fn owners(ring: &Ring) -> Vec<u32> {
        keys()
            .map(|h| ring.pick(h, 0).expect("non-empty ring"))
            .collect()
    }

    #[test]
    fn ring_size_is_the_minimum_rounded_to_whole_shares_and_capped() {
        let eps = equal(3);
        // 1024 / 3 rounds up to 342 points per host.
        assert_eq!(Ring::new(&all(&eps), &eps, 1024, 8 << 20).len(), 1026);
        assert_eq!(Ring::new(&all(&eps), &eps, 1024, 300).len(), 300);
        assert_eq!(Ring::new(&[], &eps, 1024, 8 << 20).pick(1, 0), None);
    }

    #[test]
    fn removing_a_host_moves_only_its_keys_when_shares_stay_whole() {
        // 50 and 49 hosts both get 21 points each from a 1024 minimum.
        let eps = equal(50);
        let full = owners(&Ring::new(&all(&eps), &eps, 1024, 8 << 20));
        let without: Vec<u32> = all(&eps).into_iter().filter(|&i| i != 7).collect();
        let less = owners(&Ring::new(&without, &eps, 1024, 8 << 20));
        let mut moved = 0;
        for (before, after) in full.iter().zip(&less) {
            if before != after {
                assert_eq!(*before, 7, "key moved off a surviving host");
                moved += 1;
            }
        }
        // About 1/50 of the keys.
        assert!((200..600).contains(&moved), "{moved} keys moved");
    }

    #[test]
    fn rescaling_the_ring_adds_bounded_churn() {
        // 5 -> 4 hosts: points per host grow 205 -> 256 (Envoy rescales to the minimum
        // size), and the new points take some keys from other survivors.
        let eps = equal(5);
        let full = owners(&Ring::new(&all(&eps), &eps, 1024, 8 << 20));
        let less = owners(&Ring::new(&[0, 1, 2, 4], &eps, 1024, 8 << 20));
        let churned = full
            .iter()
            .zip(&less)
            .filter(|(b, a)| b != a && **b != 3)
            .count();
        let n = full.len();
        assert!(
            churned < n / 8,
            "{churned} of {n} keys churned between survivors"
        );
    }

    #[test]
    fn weights_set_each_host_share() {
        let eps = test_endpoints(&[(1, 0), (2, 0), (3, 0), (4, 0)]);
        let o = owners(&Ring::new(&all(&eps), &eps, 1024, 8 << 20));
        for (host, want) in [(0u32, 0.1), (1, 0.2), (2, 0.3), (3, 0.4)] {
            let share = o.iter().filter(|&&h| h == host).count() as f64 / o.len() as f64;
            assert!((share - want).abs() < 0.03, "host {host}: {share}");
        }
    }

    #[test]
    fn a_retry_walks_to_the_next_points() {
        let eps = equal(3);
        let ring = Ring::new(&all(&eps), &eps, 1024, 8 << 20);
        let changed = keys()
            .take(1_000)
            .filter(|&h| (1..=3).any(|a| ring.pick(h, a) != ring.pick(h, 0)))
            .count();
        assert!(changed > 950, "{changed}");
    }
}
