//! What picking needs, precomputed from the endpoint set and its health: the
//! priority levels, each with the hosts it balances over (its healthy ones, or all
//! of them in panic) and a picker built for the cluster's policy. Rebuilt when
//! endpoints or health change, which is rare; picks only read it.

use std::sync::Arc;

use super::maglev::Maglev;
use super::priority::{LevelHosts, PriorityLoad};
use super::ring_hash::Ring;
use super::weighted::{Schedule, Weights};
use super::{EndpointRt, EndpointSet};
use crate::config::{Cluster, LbPolicy};

/// Envoy's defaults for `ring_hash_lb_config` and `maglev_lb_config`; the ring's
/// default maximum is also Envoy's upper bound.
const DEFAULT_MIN_RING: u64 = 1024;
const MAX_RING: u64 = 8 * 1024 * 1024;
const DEFAULT_MAGLEV_TABLE: u64 = 65537;
/// Envoy's largest accepted Maglev table (a prime).
const MAX_MAGLEV_TABLE: u64 = 5_000_011;

/// The balancer settings a view is built with, taken from the cluster once.
#[derive(Debug, Clone)]
pub struct Policy {
    pub lb: LbPolicy,
    pub panic_threshold: f64,
    pub ring: (u64, u64),
    pub maglev_table_size: u64,
}

impl Policy {
    pub fn of(cluster: &Cluster) -> Policy {
        Policy {
            lb: cluster.lb_policy,
            panic_threshold: cluster.healthy_panic_threshold,
            // Bounded as Envoy's config validation bounds them, so a bad snapshot
            // cannot make a rebuild allocate without limit.
            ring: cluster
                .ring_hash
                .as_ref()
                .map_or((DEFAULT_MIN_RING, MAX_RING), |r| {
                    (r.min_ring_size.min(MAX_RING), r.max_ring_size.min(MAX_RING))
                }),
            maglev_table_size: cluster
                .maglev_table_size
                .unwrap_or(DEFAULT_MAGLEV_TABLE)
                .min(MAX_MAGLEV_TABLE),
        }
    }

    /// The policy places requests by their hash (which then also picks the level, as
    /// Envoy's ring hash and Maglev do); the others draw at random.
    pub fn hashes(&self) -> bool {
        matches!(self.lb, LbPolicy::RingHash | LbPolicy::Maglev)
    }
}

/// Chooses among one level's hosts (endpoint indices).
#[derive(Debug)]
enum Picker {
    RoundRobin(Schedule),
    Random(Weights),
    LeastRequest(Weights),
    RingHash(Ring),
    Maglev(Maglev),
}

/// One priority level as picking sees it.
#[derive(Debug)]
pub struct Level {
    /// Endpoint indices this level balances over.
    hosts: Vec<u32>,
    /// Health is ignored here (Envoy's panic mode): `hosts` are all of the level's.
    pub panic: bool,
    picker: Picker,
}

impl Level {
    fn new(hosts: Vec<u32>, panic: bool, endpoints: &[Arc<EndpointRt>], policy: &Policy) -> Level {
        let picker = match policy.lb {
            LbPolicy::RoundRobin => Picker::RoundRobin(Schedule::new(&hosts, endpoints)),
            LbPolicy::Random => Picker::Random(Weights::new(&hosts, endpoints)),
            LbPolicy::LeastRequest => Picker::LeastRequest(Weights::new(&hosts, endpoints)),
            LbPolicy::RingHash => {
                let (min, max) = policy.ring;
                Picker::RingHash(Ring::new(&hosts, endpoints, min, max))
            }
            LbPolicy::Maglev => {
                Picker::Maglev(Maglev::new(&hosts, endpoints, policy.maglev_table_size))
            }
        };
        Level {
            hosts,
            panic,
            picker,
        }
    }

    /// An endpoint index. `hash` drives the hashing policies (random ones ignore it);
    /// `attempt` > 0 asks a hashing policy for an alternative to its first answer.
    pub fn pick(&self, endpoints: &[Arc<EndpointRt>], hash: u64, attempt: u32) -> Option<u32> {
        match &self.picker {
            Picker::RoundRobin(s) => s.pick(),
            Picker::Random(w) => w.random(),
            Picker::LeastRequest(w) => w.least_request(endpoints),
            Picker::RingHash(r) => r.pick(hash, attempt),
            Picker::Maglev(m) => m.pick(hash, attempt),
        }
    }

    /// The first host of this level, scanning from a random place, that `accept`s.
    pub fn scan(&self, accept: impl Fn(u32) -> bool) -> Option<u32> {
        let n = self.hosts.len();
        if n == 0 {
            return None;
        }
        let start = fastrand::usize(..n);
        (0..n)
            .map(|k| self.hosts[(start + k) % n])
            .find(|&i| accept(i))
    }
}

/// The endpoint set with its levels and their load split.
#[derive(Debug)]
pub struct View {
    pub set: Arc<EndpointSet>,
    levels: Vec<Level>,
    load: PriorityLoad,
}

impl View {
    /// Reads each endpoint's health flags once, now.
    pub fn build(set: Arc<EndpointSet>, policy: &Policy) -> View {
        let endpoints = &set.endpoints;
        // Endpoint indices grouped by priority, levels in priority order, empty ones
        // left out (they never take load, as in Envoy).
        let mut order: Vec<u32> = (0..endpoints.len() as u32).collect();
        order.sort_by_key(|&i| endpoints[i as usize].priority);
        let groups: Vec<&[u32]> = order
            .chunk_by(|&a, &b| endpoints[a as usize].priority == endpoints[b as usize].priority)
            .collect();
        let healthy: Vec<Vec<u32>> = groups
            .iter()
            .map(|g| {
                g.iter()
                    .copied()
                    .filter(|&i| endpoints[i as usize].health.is_healthy())
                    .collect()
            })
            .collect();
        let counts: Vec<LevelHosts> = groups
            .iter()
            .zip(&healthy)
            .map(|(g, h)| LevelHosts {
                healthy: h.len(),
                total: g.len(),
            })
            .collect();
        let load = PriorityLoad::compute(&counts, policy.panic_threshold);
        let levels = groups
            .iter()
            .zip(healthy)
            .zip(&load.panic)
            .map(|((all, healthy), &panic)| {
                let hosts = if panic { all.to_vec() } else { healthy };
                Level::new(hosts, panic, endpoints, policy)
            })
            .collect();
        View { set, levels, load }
    }

    /// The level a request with this hash (or random number) goes to.
    pub fn level(&self, h: u64) -> Option<&Level> {
        self.levels.get(self.load.choose(h))
    }
}
