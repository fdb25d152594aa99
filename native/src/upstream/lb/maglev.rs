//! Maglev consistent hashing (Eisenbud et al., NSDI '16), built as Envoy's
//! `MaglevLoadBalancer` builds it: a prime-sized lookup table where each host claims
//! slots along its own permutation, in turns proportional to its weight. Lookup is
//! one modulo. Removing a host frees its slots; a few others move (Maglev trades a
//! little churn for perfectly even tables).

use std::sync::Arc;

use super::EndpointRt;
use crate::http::hash::xxh64;

const EMPTY: u32 = u32::MAX;

/// The lookup table: slot -> endpoint index.
#[derive(Debug, Default)]
pub struct Maglev {
    table: Vec<u32>,
}

/// One host's walk through the table while it is filled.
struct Claimer {
    host: u32,
    offset: u64,
    skip: u64,
    next: u64,
    weight: f64,
    target: f64,
}

impl Maglev {
    /// `hosts`: endpoint indices into `endpoints`; `table_size` should be prime (it is
    /// rounded up to one, since a composite size can leave a permutation short of free slots).
    pub fn new(hosts: &[u32], endpoints: &[Arc<EndpointRt>], table_size: u64) -> Maglev {
        if hosts.is_empty() {
            return Maglev::default();
        }
        let size = next_prime(table_size.max(2));
        let key = |i: u32| endpoints[i as usize].authority.as_str();
        // Sorted by address so the table does not depend on endpoint order (as Envoy).
        let mut sorted = hosts.to_vec();
        sorted.sort_unstable_by(|&a, &b| key(a).cmp(key(b)));
        let sum: u64 = sorted
            .iter()
            .map(|&i| u64::from(endpoints[i as usize].weight))
            .sum();
        let mut claimers: Vec<Claimer> = sorted
            .iter()
            .map(|&host| Claimer {
                host,
                offset: xxh64(key(host).as_bytes(), 0) % size,
                skip: xxh64(key(host).as_bytes(), 1) % (size - 1) + 1,
                next: 0,
                weight: f64::from(endpoints[host as usize].weight) / sum as f64,
                target: 0.0,
            })
            .collect();
        let max_weight = claimers.iter().map(|c| c.weight).fold(0.0, f64::max);
        let mut table = vec![EMPTY; size as usize];
        let mut filled = 0u64;
        let mut iteration = 1u32;
        while filled < size {
            for c in claimers.iter_mut() {
                if filled == size {
                    break;
                }
                // The heaviest host claims a slot every round, one a third as heavy every third.
                if f64::from(iteration) * c.weight < c.target {
                    continue;
                }
                c.target += max_weight;
                let mut slot = (c.offset + c.skip * c.next) % size;
                while table[slot as usize] != EMPTY {
                    c.next += 1;
                    slot = (c.offset + c.skip * c.next) % size;
                }
                table[slot as usize] = c.host;
                c.next += 1;
                filled += 1;
            }
            iteration += 1;
        }
        Maglev { table }
    }

    /// The host for `hash`. A retry (`attempt > 0`) flips most bits of the hash, as
    /// Envoy does, to land on another slot.
    pub fn pick(&self, hash: u64, attempt: u32) -> Option<u32> {
        if self.table.is_empty() {
            return None;
        }
        let hash = if attempt > 0 {
            hash ^ (u64::MAX - u64::from(attempt) + 1)
        } else {
            hash
        };
        Some(self.table[(hash % self.table.len() as u64) as usize])
    }
}

fn next_prime(mut n: u64) -> u64 {
    while !is_prime(n) {
        n += 1;
    }
    n
}

fn is_prime(n: u64) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::lb::test_endpoints;

    fn keys() -> impl Iterator<Item = u64> {
        (0..20_000u64).map(|k| xxh64(&k.to_le_bytes(), 0))
    }

    fn owners(m: &Maglev) -> Vec<u32> {
        keys()
            .map(|h| m.pick(h, 0).expect("non-empty table"))
            .collect()
    }

    #[test]
    fn weights_set_each_host_share_of_the_table() {
        let eps = test_endpoints(&[(1, 0), (2, 0), (3, 0), (4, 0)]);
        let m = Maglev::new(&[0, 1, 2, 3], &eps, 65537);
        for (host, want) in [(0u32, 0.1), (1, 0.2), (2, 0.3), (3, 0.4)] {
            let slots = m.table.iter().filter(|&&h| h == host).count() as f64;
            assert!(
                (slots / 65537.0 - want).abs() < 0.005,
                "host {host}: {slots}"
            );
        }
    }

    #[test]
    fn removing_a_host_moves_its_keys_and_little_else() {
        let eps = test_endpoints(&[(1, 0); 10]);
        let all: Vec<u32> = (0..10).collect();
        let full = owners(&Maglev::new(&all, &eps, 65537));
        let without: Vec<u32> = all.iter().copied().filter(|&i| i != 4).collect();
        let less = owners(&Maglev::new(&without, &eps, 65537));
        let n = full.len();
        let lost = full.iter().filter(|&&h| h == 4).count();
        let churned = full
            .iter()
            .zip(&less)
            .filter(|(b, a)| b != a && **b != 4)
            .count();
        assert!(less.iter().all(|&h| h != 4));
        assert!(lost > n / 20, "host 4 owned {lost} keys");
        assert!(
            churned < n / 50,
            "{churned} of {n} keys churned between survivors"
        );
    }

    #[test]
    fn the_table_does_not_depend_on_endpoint_order() {
        let eps = test_endpoints(&[(1, 0); 5]);
        let a = Maglev::new(&[0, 1, 2, 3, 4], &eps, 65537);
        let b = Maglev::new(&[4, 2, 0, 3, 1], &eps, 65537);
        assert_eq!(a.table, b.table);
    }

    #[test]
    fn a_composite_size_is_rounded_up_to_a_prime() {
        let eps = test_endpoints(&[(1, 0); 3]);
        let m = Maglev::new(&[0, 1, 2], &eps, 1000);
        assert_eq!(m.table.len(), 1009);
        assert!(m.table.iter().all(|&h| h < 3));
    }

    #[test]
    fn a_retry_lands_elsewhere() {
        let eps = test_endpoints(&[(1, 0); 3]);
        let m = Maglev::new(&[0, 1, 2], &eps, 65537);
        let changed = keys()
            .take(1_000)
            .filter(|&h| (1..=3).any(|a| m.pick(h, a) != m.pick(h, 0)))
            .count();
        assert!(changed > 950, "{changed}");
    }
}
