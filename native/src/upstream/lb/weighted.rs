//! The weight-driven pickers over one level's hosts: smooth weighted round robin,
//! weighted random, and least request (power of two choices). Each is built once per
//! health change; picking reads only immutable vectors and relaxed counters.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::EndpointRt;

/// Largest round-robin schedule; heavier weight sets are scaled down to fit.
const MAX_SCHEDULE: u64 = 4096;

/// nginx's smooth weighted round robin, unrolled once into a fixed order.
#[derive(Debug)]
pub struct Schedule {
    /// Endpoint indices in serving order.
    order: Vec<u32>,
    next: AtomicUsize,
}

impl Schedule {
    /// `hosts`: endpoint indices; `endpoints`: the set they index.
    pub fn new(hosts: &[u32], endpoints: &[Arc<EndpointRt>]) -> Self {
        let g = hosts
            .iter()
            .fold(0, |g, &i| gcd(g, endpoints[i as usize].weight));
        let mut weights: Vec<u64> = hosts
            .iter()
            .map(|&i| u64::from(endpoints[i as usize].weight / g.max(1)))
            .collect();
        let total: u64 = weights.iter().sum();
        if total > MAX_SCHEDULE {
            for w in &mut weights {
                *w = (*w * MAX_SCHEDULE / total).max(1);
            }
        }
        let total: u64 = weights.iter().sum();
        let mut current = vec![0i64; weights.len()];
        let mut order = Vec::with_capacity(total as usize);
        for _ in 0..total {
            let mut best = 0;
            for i in 0..weights.len() {
                current[i] += weights[i] as i64;
                if current[i] > current[best] {
                    best = i;
                }
            }
            current[best] -= total as i64;
            order.push(hosts[best]);
        }
        Schedule {
            order,
            // Start anywhere so proxies restarted together do not all hit the same host first.
            next: AtomicUsize::new(fastrand::usize(..1024)),
        }
    }

    pub fn pick(&self) -> Option<u32> {
        if self.order.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        Some(self.order[i % self.order.len()])
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Cumulative weights for weighted random draws.
#[derive(Debug)]
pub struct Weights {
    hosts: Vec<u32>,
    cumulative: Vec<u64>,
    /// Equal weights draw uniformly, without the binary search.
    all_equal: bool,
}

impl Weights {
    pub fn new(hosts: &[u32], endpoints: &[Arc<EndpointRt>]) -> Self {
        let mut acc = 0;
        let cumulative = hosts
            .iter()
            .map(|&i| {
                acc += u64::from(endpoints[i as usize].weight);
                acc
            })
            .collect();
        let all_equal = hosts
            .windows(2)
            .all(|w| endpoints[w[0] as usize].weight == endpoints[w[1] as usize].weight);
        Weights {
            hosts: hosts.to_vec(),
            cumulative,
            all_equal,
        }
    }

    /// A host drawn with probability proportional to its weight.
    pub fn random(&self) -> Option<u32> {
        self.random_position().map(|p| self.hosts[p])
    }

    fn random_position(&self) -> Option<usize> {
        let total = *self.cumulative.last()?;
        if self.all_equal {
            return Some(fastrand::usize(..self.hosts.len()));
        }
        let r = fastrand::u64(..total);
        Some(self.cumulative.partition_point(|&c| c <= r))
    }

    /// Power of two choices: of two weighted draws, the one with fewer active
    /// requests per unit of weight.
    pub fn least_request(&self, endpoints: &[Arc<EndpointRt>]) -> Option<u32> {
        let n = self.hosts.len();
        let (a, b) = match n {
            0 => return None,
            1 => return Some(self.hosts[0]),
            _ if self.all_equal => {
                // Two distinct hosts, uniformly.
                let a = fastrand::usize(..n);
                let b = fastrand::usize(..n - 1);
                (a, if b >= a { b + 1 } else { b })
            }
            _ => (self.random_position()?, self.random_position()?),
        };
        let (ia, ib) = (self.hosts[a], self.hosts[b]);
        let (ea, eb) = (&endpoints[ia as usize], &endpoints[ib as usize]);
        let la = (ea.active.load(Ordering::Relaxed) + 1) * u64::from(eb.weight);
        let lb = (eb.active.load(Ordering::Relaxed) + 1) * u64::from(ea.weight);
        Some(if la <= lb { ia } else { ib })
    }
}
