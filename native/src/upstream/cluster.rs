//! A cluster as the engine runs it: its endpoints and balancer, its circuit
//! breakers and outlier detector, and its connection settings. Sending requests
//! lives in `pool.rs`; discovery in `dns.rs`; health in `health_check.rs` and
//! `outlier.rs`.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Cluster, DiscoveryType};
use crate::stats::{cluster as cs, StatGroup};
use crate::tls::TlsClient;
use crate::upstream::breaker::Breakers;
use crate::upstream::lb::{Balancer, EndpointAddr, EndpointRt, EndpointSet};
use crate::upstream::outlier::{Outcome, OutlierDetector};

#[derive(Debug)]
pub struct ClusterRt {
    pub name: String,
    pub config: Cluster,
    pub stats: Arc<StatGroup>,
    pub lb: Balancer,
    pub breakers: Breakers,
    pub outlier: Option<OutlierDetector>,
    pub(crate) connect_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_idle: usize,
    /// Originate TLS (Envoy's `UpstreamTlsContext`).
    pub(crate) tls: Option<TlsClient>,
}

impl ClusterRt {
    /// Build the runtime for `config` over already-resolved endpoints.
    pub fn new(config: Cluster, endpoints: Vec<EndpointAddr>, stats: Arc<StatGroup>) -> Self {
        let eps = endpoints
            .into_iter()
            .map(|a| Arc::new(EndpointRt::new(a)))
            .collect();
        let set = EndpointSet::new(eps);
        stats.set(cs::MEMBERSHIP_HEALTHY, set.endpoints.len() as u64);
        stats.set(cs::MEMBERSHIP_TOTAL, set.endpoints.len() as u64);
        ClusterRt {
            name: config.name.clone(),
            lb: Balancer::new(&config, set, stats.clone()),
            breakers: Breakers::new(&config.circuit_breakers, stats.clone()),
            outlier: config
                .outlier_detection
                .as_ref()
                .map(|od| OutlierDetector::new(od, stats.clone())),
            stats,
            connect_timeout: Duration::from_millis(config.connect_timeout_ms.max(1)),
            idle_timeout: Duration::from_millis(config.idle_timeout_ms.unwrap_or(3_600_000)),
            max_idle: config.max_idle_per_endpoint.map_or(1024, |n| n as usize),
            tls: None,
            config,
        }
    }

    /// Originate TLS with `tls`, compiled from `config.tls`.
    pub fn with_tls(mut self, tls: Option<TlsClient>) -> Self {
        self.tls = tls;
        self
    }

    pub fn is_dns(&self) -> bool {
        self.config.discovery != DiscoveryType::Static
    }

    /// Replace the endpoint list (DNS refresh, EDS), keeping the counters,
    /// connections and health of endpoints that stay.
    pub fn set_endpoints(&self, addrs: Vec<EndpointAddr>) {
        let old = self.lb.set.load();
        let same =
            old.endpoints.len() == addrs.len()
                && old.endpoints.iter().zip(&addrs).all(|(e, a)| {
                    e.addr == a.addr && e.weight == a.weight && e.priority == a.priority
                });
        if same {
            return;
        }
        let eps: Vec<_> = addrs
            .into_iter()
            .map(|a| {
                old.endpoints
                    .iter()
                    .find(|e| e.addr == a.addr && e.weight == a.weight && e.priority == a.priority)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(EndpointRt::new(a)))
            })
            .collect();
        self.stats.set(cs::MEMBERSHIP_TOTAL, eps.len() as u64);
        self.lb.set_endpoints(EndpointSet::new(eps));
        self.update_membership();
    }

    /// Recount `membership_healthy` and let the balancer rebuild its health view.
    pub fn update_membership(&self) {
        self.lb.refresh_health();
        let set = self.lb.set.load();
        let healthy = set
            .endpoints
            .iter()
            .filter(|e| e.health.is_healthy())
            .count();
        self.stats.set(cs::MEMBERSHIP_HEALTHY, healthy as u64);
    }

    /// Tell outlier detection how a request to `ep` went.
    #[inline]
    pub fn record_outcome(&self, ep: &EndpointRt, outcome: Outcome) {
        if let Some(od) = &self.outlier {
            if od.report(&self.lb.set, ep, outcome) {
                self.update_membership();
            }
        }
    }
}
