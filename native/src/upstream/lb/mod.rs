//! Load balancing over a cluster's endpoints, as Envoy does it: priority levels
//! with spill-over and panic (`priority.rs`), then a host of the chosen level by
//! weighted round robin, random or least request (`weighted.rs`), ring hash
//! (`ring_hash.rs`) or Maglev (`maglev.rs`). Picks are lock-free: the endpoint set
//! and the health-derived `View` (`view.rs`) are `ArcSwap`s replaced off the hot path.

mod maglev;
mod priority;
mod ring_hash;
mod view;
mod weighted;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use http::uri::Authority;

use crate::config::Cluster;
use crate::stats::{cluster as cs, StatGroup};
use view::{Policy, View};

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

/// An immutable endpoint list, replaced wholesale when discovery changes it.
#[derive(Debug, Default)]
pub struct EndpointSet {
    pub endpoints: Vec<Arc<EndpointRt>>,
}

impl EndpointSet {
    pub fn new(endpoints: Vec<Arc<EndpointRt>>) -> Self {
        EndpointSet { endpoints }
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

/// Extra picks a retry makes before scanning for a host it has not tried: they keep
/// the policy's distribution (weights, least request, the ring's next host).
const AVOID_REPICKS: u32 = 3;

/// Picks an endpoint per request, lock-free: everything health-dependent is a `View`
/// rebuilt off the hot path and swapped in.
#[derive(Debug)]
pub struct Balancer {
    policy: Policy,
    /// The current endpoints, health flags included (membership counts, admin).
    pub set: ArcSwap<EndpointSet>,
    view: ArcSwap<View>,
    /// Serialises rebuilds so the last view stored reflects the last set and health.
    rebuild: Mutex<()>,
    stats: Arc<StatGroup>,
}

impl Balancer {
    /// `stats`: the cluster's group, for `lb_healthy_panic`.
    pub fn new(cluster: &Cluster, set: EndpointSet, stats: Arc<StatGroup>) -> Self {
        let policy = Policy::of(cluster);
        let set = Arc::new(set);
        Balancer {
            view: ArcSwap::from_pointee(View::build(set.clone(), &policy)),
            set: ArcSwap::new(set),
            policy,
            rebuild: Mutex::new(()),
            stats,
        }
    }

    /// Replace the endpoint list (endpoints that stay keep their `Arc`).
    pub fn set_endpoints(&self, set: EndpointSet) {
        let _guard = self.rebuild.lock().unwrap_or_else(|e| e.into_inner());
        let set = Arc::new(set);
        self.set.store(set.clone());
        self.view.store(Arc::new(View::build(set, &self.policy)));
    }

    /// Rebuild what picking derives from health, after a health flag changed.
    pub fn refresh_health(&self) {
        let _guard = self.rebuild.lock().unwrap_or_else(|e| e.into_inner());
        let set = self.set.load_full();
        self.view.store(Arc::new(View::build(set, &self.policy)));
    }

    /// The endpoint for the next request: a priority level by its load share, then a
    /// host of that level by the cluster's policy. `None` when no host is usable.
    pub fn pick(&self, ctx: &PickCtx<'_>) -> Option<Arc<EndpointRt>> {
        let view = self.view.load();
        let h = ctx
            .hash
            .filter(|_| self.policy.hashes())
            .unwrap_or_else(|| fastrand::u64(..));
        let level = view.level(h)?;
        if level.panic {
            self.stats.inc(cs::LB_PANIC);
        }
        let endpoints = &view.set.endpoints;
        let mut idx = level.pick(endpoints, h, 0)?;
        if !ctx.avoid.is_empty() {
            let avoided = |i: u32| {
                ctx.avoid
                    .iter()
                    .any(|a| Arc::ptr_eq(a, &endpoints[i as usize]))
            };
            let mut attempt = 1;
            while avoided(idx) && attempt <= AVOID_REPICKS {
                idx = level.pick(endpoints, h, attempt)?;
                attempt += 1;
            }
            if avoided(idx) {
                // The re-picks kept landing on tried hosts: take any untried host of
                // the level, else a tried one rather than none.
                idx = level.scan(|i| !avoided(i)).unwrap_or(idx);
            }
        }
        Some(endpoints[idx as usize].clone())
    }
}

/// Endpoints `10.0.x.y:80` with these weights and priorities, for tests here and in
/// the submodules.
#[cfg(test)]
fn test_endpoints(spec: &[(u32, u32)]) -> Vec<Arc<EndpointRt>> {
    spec.iter()
        .enumerate()
        .map(|(i, &(weight, priority))| {
            let addr = format!("10.0.{}.{}:80", i / 250, i % 250 + 1);
            Arc::new(EndpointRt::new(EndpointAddr {
                addr: addr.parse().expect("test address"),
                weight,
                priority,
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LbPolicy;
    use crate::http::hash::xxh64;
    use crate::stats::Registry;

    fn set(weights: &[u32]) -> EndpointSet {
        let spec: Vec<(u32, u32)> = weights.iter().map(|&w| (w, 0)).collect();
        EndpointSet::new(test_endpoints(&spec))
    }

    /// `(healthy, priority)` per host, weight 1.
    fn leveled(spec: &[(bool, u32)]) -> EndpointSet {
        let eps = test_endpoints(&spec.iter().map(|&(_, p)| (1, p)).collect::<Vec<_>>());
        for (e, &(healthy, _)) in eps.iter().zip(spec) {
            e.health.failed_active_hc.store(!healthy, Ordering::Relaxed);
        }
        EndpointSet::new(eps)
    }

    fn cluster(lb_policy: LbPolicy) -> Cluster {
        let mut c: Cluster =
            serde_json::from_str(r#"{"name":"c","discovery":"static","endpoints":[]}"#).unwrap();
        c.lb_policy = lb_policy;
        c
    }

    fn stats() -> Arc<StatGroup> {
        Registry::default().group("cluster.c", cs::NAMES)
    }

    fn balancer(c: &Cluster, set: EndpointSet) -> Balancer {
        Balancer::new(c, set, stats())
    }

    fn index_of(b: &Balancer, e: &Arc<EndpointRt>) -> usize {
        b.set
            .load()
            .endpoints
            .iter()
            .position(|x| Arc::ptr_eq(x, e))
            .expect("picked endpoint is in the set")
    }

    fn pick_index(b: &Balancer, ctx: &PickCtx<'_>) -> usize {
        index_of(b, &b.pick(ctx).expect("a host"))
    }

    fn counts(b: &Balancer, n: usize) -> Vec<usize> {
        let mut c = vec![0; b.set.load().endpoints.len()];
        for _ in 0..n {
            c[pick_index(b, &PickCtx::default())] += 1;
        }
        c
    }

    #[test]
    fn round_robin_follows_weights_exactly() {
        let b = balancer(&cluster(LbPolicy::RoundRobin), set(&[1, 2, 3]));
        assert_eq!(counts(&b, 600), vec![100, 200, 300]);
    }

    #[test]
    fn round_robin_interleaves() {
        let b = balancer(&cluster(LbPolicy::RoundRobin), set(&[1, 1]));
        let first = b.pick(&PickCtx::default()).unwrap();
        let second = b.pick(&PickCtx::default()).unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
    }

    #[test]
    fn random_roughly_follows_weights() {
        let b = balancer(&cluster(LbPolicy::Random), set(&[1, 3]));
        let c = counts(&b, 20_000);
        assert!((4_000..6_000).contains(&c[0]), "{c:?}");
    }

    #[test]
    fn least_request_avoids_busy_hosts() {
        let b = balancer(&cluster(LbPolicy::LeastRequest), set(&[1, 1, 1]));
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
        let b = balancer(&cluster(LbPolicy::RoundRobin), set(&[]));
        assert!(b.pick(&PickCtx::default()).is_none());
    }

    #[test]
    fn unhealthy_hosts_leave_rotation_once_health_is_refreshed() {
        let b = balancer(&cluster(LbPolicy::RoundRobin), set(&[1, 1, 1]));
        b.set.load().endpoints[1]
            .health
            .ejected
            .store(true, Ordering::Relaxed);
        b.refresh_health();
        assert_eq!(counts(&b, 300), vec![150, 0, 150]);
        b.set.load().endpoints[1]
            .health
            .ejected
            .store(false, Ordering::Relaxed);
        b.refresh_health();
        assert_eq!(counts(&b, 300), vec![100, 100, 100]);
    }

    #[test]
    fn new_endpoint_sets_keep_health_out_of_rotation() {
        let b = balancer(&cluster(LbPolicy::RoundRobin), set(&[1, 1, 1]));
        let eps = b.set.load().endpoints.clone();
        eps[0]
            .health
            .failed_active_hc
            .store(true, Ordering::Relaxed);
        // DNS adds a host; the unhealthy one stays with its flags.
        let mut next = eps.clone();
        next.extend(test_endpoints(&[(1, 0); 4]).into_iter().skip(3));
        b.set_endpoints(EndpointSet::new(next));
        assert_eq!(counts(&b, 300), vec![0, 100, 100, 100]);
    }

    #[test]
    fn degraded_level_zero_spills_to_level_one() {
        // Envoy's docs: P0 with 2 of 4 hosts healthy takes 70 %, P1 the other 30 %.
        let spec = [
            (true, 0),
            (true, 0),
            (false, 0),
            (false, 0),
            (true, 1),
            (true, 1),
        ];
        let b = balancer(&cluster(LbPolicy::Random), leveled(&spec));
        let c = counts(&b, 20_000);
        let p0 = c[0] + c[1];
        assert_eq!(c[2] + c[3], 0, "{c:?}");
        assert!((13_300..14_700).contains(&p0), "P0 should get ~70 %: {c:?}");
    }

    #[test]
    fn a_dead_level_zero_fails_over_entirely() {
        let spec = [(false, 0), (false, 0), (true, 1), (true, 1)];
        let b = balancer(&cluster(LbPolicy::RoundRobin), leveled(&spec));
        assert_eq!(counts(&b, 200), vec![0, 0, 100, 100]);
        assert_eq!(b.stats.get(cs::LB_PANIC), 0);
    }

    #[test]
    fn panic_balances_over_all_hosts_and_counts() {
        // 1 of 3 healthy: 33 % < 50 %, so every host takes traffic.
        let spec = [(true, 0), (false, 0), (false, 0)];
        let b = balancer(&cluster(LbPolicy::RoundRobin), leveled(&spec));
        assert_eq!(counts(&b, 300), vec![100, 100, 100]);
        assert_eq!(b.stats.get(cs::LB_PANIC), 300);
    }

    #[test]
    fn zero_panic_threshold_keeps_to_healthy_hosts_or_none() {
        let mut c = cluster(LbPolicy::RoundRobin);
        c.healthy_panic_threshold = 0.0;
        let b = balancer(&c, leveled(&[(true, 0), (false, 0), (false, 0)]));
        assert_eq!(counts(&b, 30), vec![30, 0, 0]);
        let b = balancer(&c, leveled(&[(false, 0), (false, 0)]));
        assert!(b.pick(&PickCtx::default()).is_none());
        assert_eq!(b.stats.get(cs::LB_PANIC), 0);
    }

    #[test]
    fn retries_avoid_tried_hosts_under_every_policy() {
        for policy in [
            LbPolicy::RoundRobin,
            LbPolicy::Random,
            LbPolicy::LeastRequest,
            LbPolicy::RingHash,
            LbPolicy::Maglev,
        ] {
            let b = balancer(&cluster(policy), set(&[1, 1, 1]));
            let eps = b.set.load().endpoints.clone();
            let avoid = [eps[0].clone(), eps[2].clone()];
            for key in 0..200u64 {
                let ctx = PickCtx {
                    hash: Some(xxh64(&key.to_le_bytes(), 0)),
                    avoid: &avoid,
                };
                assert_eq!(pick_index(&b, &ctx), 1, "{policy:?}");
            }
        }
    }

    #[test]
    fn avoiding_every_host_still_picks_one() {
        let b = balancer(&cluster(LbPolicy::Random), set(&[1, 1]));
        let avoid = b.set.load().endpoints.clone();
        let ctx = PickCtx {
            hash: None,
            avoid: &avoid,
        };
        assert!(b.pick(&ctx).is_some());
    }

    #[test]
    fn hashing_policies_are_sticky_per_key_and_random_without_one() {
        for policy in [LbPolicy::RingHash, LbPolicy::Maglev] {
            let b = balancer(&cluster(policy), set(&[1, 1, 1, 1]));
            for key in 0..100u64 {
                let ctx = PickCtx {
                    hash: Some(xxh64(&key.to_le_bytes(), 0)),
                    avoid: &[],
                };
                let first = pick_index(&b, &ctx);
                assert!((0..5).all(|_| pick_index(&b, &ctx) == first), "{policy:?}");
            }
            let c = counts(&b, 4_000);
            assert!(
                c.iter().all(|&n| n > 700),
                "{policy:?} without a hash: {c:?}"
            );
        }
    }

    #[test]
    fn an_ejected_host_moves_only_its_own_keys() {
        // 50 -> 49 healthy hosts keeps 21 ring points per host (see ring_hash.rs), so
        // the ring over the healthy hosts loses exactly the ejected host's points.
        let b = balancer(&cluster(LbPolicy::RingHash), set(&[1; 50]));
        let keys: Vec<u64> = (0..5_000u64).map(|k| xxh64(&k.to_le_bytes(), 7)).collect();
        let at = |b: &Balancer| -> Vec<usize> {
            keys.iter()
                .map(|&h| {
                    pick_index(
                        b,
                        &PickCtx {
                            hash: Some(h),
                            avoid: &[],
                        },
                    )
                })
                .collect()
        };
        let before = at(&b);
        b.set.load().endpoints[3]
            .health
            .ejected
            .store(true, Ordering::Relaxed);
        b.refresh_health();
        let after = at(&b);
        assert!(after.iter().all(|&i| i != 3));
        for (x, y) in before.iter().zip(&after) {
            assert!(x == y || *x == 3, "a key moved from host {x} to {y}");
        }
        assert!(before.iter().filter(|&&x| x == 3).count() > 0);
    }

    /// What Envoy 1.40 answered for `x-key: key-0` .. `key-39` through a header
    /// hash policy, with these four endpoints in this order (backend i at 127.0.0.1:1910(i+1)).
    const ENVOY_RING: &str = "2333013233000203012230302033321033200312";
    const ENVOY_MAGLEV: &str = "3202220333130102321131223023212032301333";

    #[test]
    fn keys_land_on_the_host_envoy_picks() {
        use crate::config::{HashPolicy, HashPolicyKind};
        use crate::http::hash::request_hash;
        let policy = [HashPolicy {
            kind: HashPolicyKind::Header("x-key".into()),
            terminal: false,
        }];
        for (lb, want) in [
            (LbPolicy::RingHash, ENVOY_RING),
            (LbPolicy::Maglev, ENVOY_MAGLEV),
        ] {
            let eps = (1..=4)
                .map(|i| {
                    Arc::new(EndpointRt::new(EndpointAddr {
                        addr: SocketAddr::from(([127, 0, 0, 1], 19100 + i)),
                        weight: 1,
                        priority: 0,
                    }))
                })
                .collect();
            let b = balancer(&cluster(lb), EndpointSet::new(eps));
            let got: String = (0..40)
                .map(|k| {
                    let mut headers = http::HeaderMap::new();
                    let value = http::HeaderValue::from_str(&format!("key-{k}")).unwrap();
                    headers.insert("x-key", value);
                    let peer = std::net::Ipv4Addr::LOCALHOST.into();
                    let hash = request_hash(&policy, &headers, None, peer);
                    let i = pick_index(&b, &PickCtx { hash, avoid: &[] });
                    char::from(b'0' + i as u8)
                })
                .collect();
            assert_eq!(got, want, "{lb:?}");
        }
    }
}
