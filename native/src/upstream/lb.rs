//! Load balancing over a cluster's endpoints: weighted round robin, least request
//! (power of two choices), weighted random. Lock-free: the endpoint set is an
//! `ArcSwap` replaced wholesale when DNS changes it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::uri::Authority;

use crate::config::{Cluster, LbPolicy};

/// A discovered endpoint address, before it becomes an `EndpointRt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointAddr {
    pub addr: SocketAddr,
    pub weight: u32,
    pub priority: u32,
}

/// Why an endpoint is out of rotation. Written by active health checks and
/// outlier detection, which call `Balancer::refresh_health` after a change.
#[derive(Debug, Default)]
pub struct EndpointHealth {
    /// The active health check marked it unhealthy (Envoy `/failed_active_hc`).
    pub failed_active_hc: AtomicBool,
    /// Outlier detection ejected it (Envoy `/failed_outlier_check`).
    pub ejected: AtomicBool,
}

impl EndpointHealth {
    pub fn is_healthy(&self) -> bool {
        !self.failed_active_hc.load(Ordering::Relaxed) && !self.ejected.load(Ordering::Relaxed)
    }
}

/// One upstream host and its live counters.
#[derive(Debug)]
pub struct EndpointRt {
    pub addr: SocketAddr,
    pub weight: u32,
    pub priority: u32,
    pub health: EndpointHealth,
    /// `ip:port`, ready to put in a request URI.
    pub authority: Authority,
    pub active: AtomicU64,
    pub rq_total: AtomicU64,
    pub rq_error: AtomicU64,
    pub cx_connect_fail: AtomicU64,
    /// Outlier detection's counters for this host.
    pub outlier: crate::upstream::outlier::EndpointOutlier,
    /// HTTP/2 upstream connection to this endpoint, when the cluster speaks h2.
    pub(crate) h2: crate::upstream::pool::H2Slot,
    /// Idle HTTP/1.1 upstream connections to this endpoint.
    pub(crate) h1: crate::upstream::pool::H1Idle,
}

impl EndpointRt {
    pub fn new(a: EndpointAddr) -> Self {
        let EndpointAddr {
            addr,
            weight,
            priority,
        } = a;
        let authority =
            Authority::try_from(addr.to_string().as_str()).expect("socket address is an authority");
        EndpointRt {
            addr,
            weight: weight.max(1),
            priority,
            health: EndpointHealth::default(),
            authority,
            active: AtomicU64::new(0),
            rq_total: AtomicU64::new(0),
            rq_error: AtomicU64::new(0),
            cx_connect_fail: AtomicU64::new(0),
            outlier: Default::default(),
            h2: Default::default(),
            h1: Default::default(),
        }
    }
}

/// An immutable endpoint list with its precomputed round-robin schedule.
#[derive(Debug, Default)]
pub struct EndpointSet {
    pub endpoints: Vec<Arc<EndpointRt>>,
    /// Smooth weighted round-robin order (indices into `endpoints`).
    schedule: Vec<u32>,
    /// Cumulative weights for weighted random.
    cumulative: Vec<u64>,
    all_equal: bool,
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl EndpointSet {
    pub fn new(endpoints: Vec<Arc<EndpointRt>>) -> Self {
        let g = endpoints.iter().fold(0, |g, e| gcd(g, e.weight));
        let mut weights: Vec<u64> = endpoints
            .iter()
            .map(|e| u64::from(e.weight / g.max(1)))
            .collect();
        let total: u64 = weights.iter().sum();
        // Keep the schedule small: scale weights down past 4096 slots.
        if total > 4096 {
            for w in &mut weights {
                *w = (*w * 4096 / total).max(1);
            }
        }
        let total: u64 = weights.iter().sum();
        // nginx's smooth weighted round robin, unrolled once.
        let mut current = vec![0i64; weights.len()];
        let mut schedule = Vec::with_capacity(total as usize);
        for _ in 0..total {
            let mut best = 0;
            for i in 0..weights.len() {
                current[i] += weights[i] as i64;
                if current[i] > current[best] {
                    best = i;
                }
            }
            current[best] -= total as i64;
            schedule.push(best as u32);
        }
        let mut acc = 0;
        let cumulative = endpoints
            .iter()
            .map(|e| {
                acc += u64::from(e.weight);
                acc
            })
            .collect();
        let all_equal = endpoints.windows(2).all(|w| w[0].weight == w[1].weight);
        EndpointSet {
            endpoints,
            schedule,
            cumulative,
            all_equal,
        }
    }
}

/// What one pick may take into account.
#[derive(Debug, Default, Clone, Copy)]
pub struct PickCtx<'a> {
    /// The request's hash (from the route's hash policy) for ring hash and Maglev;
    /// `None` picks at random.
    pub hash: Option<u64>,
    /// Hosts a retry should avoid when another is available (previous attempts).
    pub avoid: &'a [Arc<EndpointRt>],
}

/// Picks an endpoint per request.
#[derive(Debug)]
pub struct Balancer {
    policy: LbPolicy,
    pub set: ArcSwap<EndpointSet>,
    next: AtomicUsize,
}

impl Balancer {
    pub fn new(cluster: &Cluster, set: EndpointSet) -> Self {
        Balancer {
            policy: cluster.lb_policy,
            set: ArcSwap::from_pointee(set),
            next: AtomicUsize::new(fastrand::usize(..1024)),
        }
    }

    /// Replace the endpoint list (endpoints that stay keep their `Arc`).
    pub fn set_endpoints(&self, set: EndpointSet) {
        self.set.store(Arc::new(set));
    }

    /// Rebuild what picking derives from health, after a health flag changed.
    pub fn refresh_health(&self) {}

    /// The endpoint for the next request, `None` if the cluster has no hosts.
    pub fn pick(&self, _ctx: &PickCtx<'_>) -> Option<Arc<EndpointRt>> {
        let set = self.set.load();
        let n = set.endpoints.len();
        if n == 0 {
            return None;
        }
        if n == 1 {
            return Some(set.endpoints[0].clone());
        }
        let idx = match self.policy {
            LbPolicy::RoundRobin => {
                let i = self.next.fetch_add(1, Ordering::Relaxed);
                set.schedule[i % set.schedule.len()] as usize
            }
            LbPolicy::Random | LbPolicy::RingHash | LbPolicy::Maglev => Self::weighted_random(&set),
            LbPolicy::LeastRequest => {
                let (a, b) = if set.all_equal {
                    let a = fastrand::usize(..n);
                    let mut b = fastrand::usize(..n - 1);
                    if b >= a {
                        b += 1;
                    }
                    (a, b)
                } else {
                    (Self::weighted_random(&set), Self::weighted_random(&set))
                };
                let ea = &set.endpoints[a];
                let eb = &set.endpoints[b];
                // Fewest active requests per unit of weight wins.
                let la = (ea.active.load(Ordering::Relaxed) + 1) * u64::from(eb.weight);
                let lb = (eb.active.load(Ordering::Relaxed) + 1) * u64::from(ea.weight);
                if la <= lb {
                    a
                } else {
                    b
                }
            }
        };
        Some(set.endpoints[idx].clone())
    }

    fn weighted_random(set: &EndpointSet) -> usize {
        let total = *set.cumulative.last().unwrap_or(&1);
        let r = fastrand::u64(..total);
        set.cumulative.partition_point(|&c| c <= r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(weights: &[u32]) -> EndpointSet {
        EndpointSet::new(
            weights
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    Arc::new(EndpointRt::new(EndpointAddr {
                        addr: format!("10.0.0.{}:80", i + 1).parse().unwrap(),
                        weight: *w,
                        priority: 0,
                    }))
                })
                .collect(),
        )
    }

    fn cluster(lb_policy: LbPolicy) -> Cluster {
        let mut c: Cluster =
            serde_json::from_str(r#"{"name":"c","discovery":"static","endpoints":[]}"#).unwrap();
        c.lb_policy = lb_policy;
        c
    }

    fn counts(b: &Balancer, n: usize) -> Vec<usize> {
        let len = b.set.load().endpoints.len();
        let mut c = vec![0; len];
        for _ in 0..n {
            let e = b.pick(&PickCtx::default()).unwrap();
            let i = b
                .set
                .load()
                .endpoints
                .iter()
                .position(|x| Arc::ptr_eq(x, &e))
                .unwrap();
            c[i] += 1;
        }
        c
    }

    #[test]
    fn round_robin_follows_weights_exactly() {
        let b = Balancer::new(&cluster(LbPolicy::RoundRobin), set(&[1, 2, 3]));
        assert_eq!(counts(&b, 600), vec![100, 200, 300]);
    }

    #[test]
    fn round_robin_interleaves() {
        let b = Balancer::new(&cluster(LbPolicy::RoundRobin), set(&[1, 1]));
        let first = b.pick(&PickCtx::default()).unwrap();
        let second = b.pick(&PickCtx::default()).unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
    }

    #[test]
    fn random_roughly_follows_weights() {
        let b = Balancer::new(&cluster(LbPolicy::Random), set(&[1, 3]));
        let c = counts(&b, 20_000);
        assert!((4_000..6_000).contains(&c[0]), "{c:?}");
    }

    #[test]
    fn least_request_avoids_busy_hosts() {
        let b = Balancer::new(&cluster(LbPolicy::LeastRequest), set(&[1, 1, 1]));
        b.set.load().endpoints[0]
            .active
            .store(100, Ordering::Relaxed);
        let c = counts(&b, 3_000);
        // P2C: the busy host is only chosen when both picks land on it, which never happens.
        assert_eq!(c[0], 0, "{c:?}");
        assert!(c[1] > 1_000 && c[2] > 1_000, "{c:?}");
    }

    #[test]
    fn empty_cluster_has_no_pick() {
        let b = Balancer::new(&cluster(LbPolicy::RoundRobin), set(&[]));
        assert!(b.pick(&PickCtx::default()).is_none());
    }
}
