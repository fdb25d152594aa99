//! Lock-free counters and gauges, grouped and named the way Envoy names them.
//!
//! Each group (one listener, one HTTP connection manager, one cluster, one
//! route...) is an `Arc<StatGroup>` of atomics, looked up by name once when a
//! snapshot is compiled; the hot path only does relaxed atomic adds. The
//! registry's mutex is touched at apply time and when stats are exported.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One named set of counters sharing a prefix (`cluster.web.`).
#[derive(Debug)]
pub struct StatGroup {
    prefix: String,
    names: &'static [&'static str],
    values: Box<[AtomicU64]>,
}

impl StatGroup {
    fn new(prefix: String, names: &'static [&'static str]) -> Self {
        let values = names.iter().map(|_| AtomicU64::new(0)).collect();
        StatGroup {
            prefix,
            names,
            values,
        }
    }

    #[inline]
    pub fn inc(&self, idx: usize) {
        self.values[idx].fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn add(&self, idx: usize, n: u64) {
        self.values[idx].fetch_add(n, Ordering::Relaxed);
    }

    #[inline]
    pub fn dec(&self, idx: usize) {
        self.values[idx].fetch_sub(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn set(&self, idx: usize, v: u64) {
        self.values[idx].store(v, Ordering::Relaxed);
    }

    #[inline]
    pub fn get(&self, idx: usize) -> u64 {
        self.values[idx].load(Ordering::Relaxed)
    }

    /// Count a response status into the `_2xx`.. `_5xx` slot that follows `base`.
    #[inline]
    pub fn inc_class(&self, base_2xx: usize, status: u16) {
        let class = (status / 100) as usize;
        if (2..=5).contains(&class) {
            self.inc(base_2xx + class - 2);
        }
    }
}

/// Names of `http.<stat_prefix>.*`.
pub mod http {
    pub const NAMES: &[&str] = &[
        "downstream_rq_total",
        "downstream_rq_2xx",
        "downstream_rq_3xx",
        "downstream_rq_4xx",
        "downstream_rq_5xx",
        "downstream_cx_total",
        "downstream_cx_active",
        "downstream_rq_active",
        "no_route",
        "rq_direct_response",
        "downstream_rq_too_large",
    ];
    pub const RQ_TOTAL: usize = 0;
    pub const RQ_2XX: usize = 1;
    pub const CX_TOTAL: usize = 5;
    pub const CX_ACTIVE: usize = 6;
    pub const RQ_ACTIVE: usize = 7;
    pub const NO_ROUTE: usize = 8;
    pub const DIRECT: usize = 9;
    pub const TOO_LARGE: usize = 10;
}

/// Names of `listener.<address>.*`.
pub mod listener {
    pub const NAMES: &[&str] = &[
        "downstream_cx_total",
        "downstream_cx_active",
        "downstream_cx_overflow",
    ];
    pub const CX_TOTAL: usize = 0;
    pub const CX_ACTIVE: usize = 1;
    pub const CX_OVERFLOW: usize = 2;
}

/// Names of `cluster.<name>.*`.
pub mod cluster {
    pub const NAMES: &[&str] = &[
        "upstream_rq_total",
        "upstream_rq_2xx",
        "upstream_rq_3xx",
        "upstream_rq_4xx",
        "upstream_rq_5xx",
        "upstream_rq_active",
        "upstream_cx_total",
        "upstream_cx_connect_fail",
        "upstream_cx_connect_timeout",
        "upstream_rq_timeout",
        "membership_healthy",
        "membership_total",
        "upstream_cx_none_healthy",
        "upstream_rq_rx_reset",
        "upstream_cx_tx_bytes_total",
        "upstream_cx_rx_bytes_total",
    ];
    pub const RQ_TOTAL: usize = 0;
    pub const RQ_2XX: usize = 1;
    pub const RQ_ACTIVE: usize = 5;
    pub const CX_TOTAL: usize = 6;
    pub const CX_CONNECT_FAIL: usize = 7;
    pub const CX_CONNECT_TIMEOUT: usize = 8;
    pub const RQ_TIMEOUT: usize = 9;
    pub const MEMBERSHIP_HEALTHY: usize = 10;
    pub const MEMBERSHIP_TOTAL: usize = 11;
    pub const NONE_HEALTHY: usize = 12;
    pub const RQ_RESET: usize = 13;
    pub const TX_BYTES: usize = 14;
    pub const RX_BYTES: usize = 15;
}

/// Names of `vhost.<vhost>.route.<route>.*`.
pub mod route {
    pub const NAMES: &[&str] = &[
        "upstream_rq_total",
        "upstream_rq_2xx",
        "upstream_rq_3xx",
        "upstream_rq_4xx",
        "upstream_rq_5xx",
        "upstream_rq_timeout",
    ];
    pub const RQ_TOTAL: usize = 0;
    pub const RQ_2XX: usize = 1;
    pub const RQ_TIMEOUT: usize = 5;
}

/// Names of `tcp.<stat_prefix>.*`.
pub mod tcp {
    pub const NAMES: &[&str] = &[
        "downstream_cx_total",
        "downstream_cx_active",
        "downstream_cx_rx_bytes_total",
        "downstream_cx_tx_bytes_total",
        "idle_timeout",
        "upstream_flush_total",
        "downstream_cx_no_route",
    ];
    pub const CX_TOTAL: usize = 0;
    pub const CX_ACTIVE: usize = 1;
    pub const RX_BYTES: usize = 2;
    pub const TX_BYTES: usize = 3;
    pub const IDLE_TIMEOUT: usize = 4;
    pub const NO_ROUTE: usize = 6;
}

/// Every stat group the engine ever created, by prefix. Groups live as long as
/// the engine so counters keep counting across snapshots, as Envoy's do.
#[derive(Debug, Default)]
pub struct Registry {
    groups: Mutex<BTreeMap<String, Arc<StatGroup>>>,
}

impl Registry {
    /// The group for `prefix` (e.g. `cluster.web`), created on first use.
    pub fn group(&self, prefix: &str, names: &'static [&'static str]) -> Arc<StatGroup> {
        let mut groups = self.groups.lock().unwrap();
        if let Some(g) = groups.get(prefix) {
            if std::ptr::eq(g.names, names) {
                return g.clone();
            }
        }
        let g = Arc::new(StatGroup::new(prefix.to_owned(), names));
        groups.insert(prefix.to_owned(), g.clone());
        g
    }

    /// Every value by full name (`<prefix>.<name>`).
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        let groups = self.groups.lock().unwrap();
        let mut out = Vec::new();
        for g in groups.values() {
            for (i, n) in g.names.iter().enumerate() {
                out.push((format!("{}.{}", g.prefix, n), g.get(i)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_name_the_right_counters() {
        assert_eq!(http::NAMES[http::RQ_ACTIVE], "downstream_rq_active");
        assert_eq!(http::NAMES[http::TOO_LARGE], "downstream_rq_too_large");
        assert_eq!(http::NAMES[http::RQ_2XX + 3], "downstream_rq_5xx");
        assert_eq!(
            cluster::NAMES[cluster::RX_BYTES],
            "upstream_cx_rx_bytes_total"
        );
        assert_eq!(cluster::NAMES[cluster::RQ_RESET], "upstream_rq_rx_reset");
        assert_eq!(
            cluster::NAMES[cluster::MEMBERSHIP_HEALTHY],
            "membership_healthy"
        );
        assert_eq!(route::NAMES[route::RQ_TIMEOUT], "upstream_rq_timeout");
        assert_eq!(tcp::NAMES[tcp::NO_ROUTE], "downstream_cx_no_route");
        assert_eq!(listener::NAMES[listener::CX_ACTIVE], "downstream_cx_active");
    }

    #[test]
    fn groups_are_shared_by_prefix() {
        let r = Registry::default();
        let a = r.group("cluster.web", cluster::NAMES);
        let b = r.group("cluster.web", cluster::NAMES);
        a.inc(cluster::RQ_TOTAL);
        b.inc_class(cluster::RQ_2XX, 204);
        b.inc_class(cluster::RQ_2XX, 503);
        let s: BTreeMap<_, _> = r.snapshot().into_iter().collect();
        assert_eq!(s["cluster.web.upstream_rq_total"], 1);
        assert_eq!(s["cluster.web.upstream_rq_2xx"], 1);
        assert_eq!(s["cluster.web.upstream_rq_5xx"], 1);
    }
}
