//! Lock-free counters and gauges, grouped and named the way Envoy names them.
//!
//! Each group (one listener, one HTTP connection manager, one cluster, one
//! route...) is an `Arc<StatGroup>` of atomics, looked up by name once when a
//! snapshot is compiled; the hot path only does relaxed atomic adds. The
//! registry's mutex is touched at apply time and when stats are exported.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// One named set of counters sharing a prefix (`cluster.web.`).
#[derive(Debug)]
pub struct StatGroup {
    prefix: String,
    names: &'static [&'static str],
    values: Box<[AtomicU64]>,
    /// Exported only once counted, as Envoy's dynamically named counters
    /// (`ssl.ciphers.<name>`) exist only once used.
    lazy: bool,
    /// Dropped from the registry once nothing else holds it (`Registry::scoped_group`).
    scoped: bool,
}

impl StatGroup {
    fn new(prefix: String, names: &'static [&'static str], lazy: bool, scoped: bool) -> Self {
        let values = names.iter().map(|_| AtomicU64::new(0)).collect();
        StatGroup {
            prefix,
            names,
            values,
            lazy,
            scoped,
        }
    }

    /// A scoped group only the registry still holds: what it counted is gone.
    fn orphaned(self: &Arc<Self>) -> bool {
        self.scoped && Arc::strong_count(self) == 1
    }

    /// Count `name`, one of the group's names (others are ignored).
    pub fn inc_name(&self, name: &str) {
        if let Some(i) = self.names.iter().position(|n| *n == name) {
            self.inc(i);
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

/// Declares one stat group's names and the index of each, from one list, so an
/// index can never point at another counter's name.
macro_rules! stat_group {
    ($($idx:ident => $name:literal,)*) => {
        #[allow(non_camel_case_types, clippy::upper_case_acronyms, dead_code)]
        #[repr(usize)]
        enum Slot { $($idx,)* }
        $(#[allow(dead_code)] pub const $idx: usize = Slot::$idx as usize;)*
        pub const NAMES: &[&str] = &[$($name,)*];
    };
}

/// Names of `http.<stat_prefix>.*`.
pub mod http {
    stat_group! {
        RQ_TOTAL => "downstream_rq_total",
        // RQ_2XX..RQ_5XX must stay consecutive: `StatGroup::inc_class` indexes from RQ_2XX.
        RQ_2XX => "downstream_rq_2xx",
        RQ_3XX => "downstream_rq_3xx",
        RQ_4XX => "downstream_rq_4xx",
        RQ_5XX => "downstream_rq_5xx",
        CX_TOTAL => "downstream_cx_total",
        CX_ACTIVE => "downstream_cx_active",
        RQ_ACTIVE => "downstream_rq_active",
        NO_ROUTE => "no_route",
        DIRECT => "rq_direct_response",
        TOO_LARGE => "downstream_rq_too_large",
        RQ_IDLE_TIMEOUT => "downstream_rq_idle_timeout",
        RQ_MAX_DURATION => "downstream_rq_max_duration_reached",
        RQ_REDIRECT => "rq_redirect",
        TOO_MANY_PREMATURE_RESETS => "downstream_rq_too_many_premature_resets",
        CX_IDLE_TIMEOUT => "downstream_cx_idle_timeout",
        CX_MAX_DURATION => "downstream_cx_max_duration_reached",
        CX_DRAIN_CLOSE => "downstream_cx_drain_close",
    }
}

/// Names of Envoy's HTTP/2 codec stats we keep: `http2.*` downstream,
/// `cluster.<name>.http2.*` upstream.
pub mod http2 {
    stat_group! {
        KEEPALIVE_TIMEOUT => "keepalive_timeout",
    }
}

/// Names of `http.<stat_prefix>.fault.*` (Envoy's fault filter).
pub mod fault {
    stat_group! {
        DELAYS_INJECTED => "delays_injected",
        ABORTS_INJECTED => "aborts_injected",
        ACTIVE_FAULTS => "active_faults",
        FAULTS_OVERFLOW => "faults_overflow",
    }
}

/// Names of `<stat_prefix>.http_local_rate_limit.*` (Envoy's local rate limit filter).
pub mod local_rate_limit {
    stat_group! {
        ENABLED => "enabled",
        ENFORCED => "enforced",
        RATE_LIMITED => "rate_limited",
        OK => "ok",
    }
}

/// Names of `http.<stat_prefix>.cors.*`.
pub mod cors {
    stat_group! {
        ORIGIN_VALID => "origin_valid",
        ORIGIN_INVALID => "origin_invalid",
    }
}

/// Names of an RBAC filter's enforced counters (HTTP and network), under
/// `<prefix>.rbac.` and Envoy's `rules_stat_prefix`.
pub mod rbac_enforced {
    stat_group! {
        // Each `*_DENIED` must follow its `*_ALLOWED`: `rbac::Tally` counts from the latter.
        ALLOWED => "allowed",
        DENIED => "denied",
    }
}

/// Names of an RBAC filter's shadow counters, under `<prefix>.rbac.` and Envoy's
/// `shadow_rules_stat_prefix`.
pub mod rbac_shadow {
    stat_group! {
        SHADOW_ALLOWED => "shadow_allowed",
        SHADOW_DENIED => "shadow_denied",
    }
}

/// Names of `listener.<address>.*`.
pub mod listener {
    stat_group! {
        CX_TOTAL => "downstream_cx_total",
        CX_ACTIVE => "downstream_cx_active",
        CX_OVERFLOW => "downstream_cx_overflow",
        NO_FILTER_CHAIN_MATCH => "no_filter_chain_match",
    }
}

/// Names of `listener.<address>.worker_<N>.*` (Envoy's per-handler listener stats).
pub mod listener_worker {
    stat_group! {
        CX_TOTAL => "downstream_cx_total",
        CX_ACTIVE => "downstream_cx_active",
    }
}

/// Names of `listener.<address>.ssl.*` and `cluster.<name>.ssl.*` (Envoy's TLS context stats).
pub mod ssl {
    stat_group! {
        HANDSHAKE => "handshake",
        CONNECTION_ERROR => "connection_error",
        NO_CERTIFICATE => "no_certificate",
        FAIL_VERIFY_NO_CERT => "fail_verify_no_cert",
        FAIL_VERIFY_SAN => "fail_verify_san",
        FAIL_VERIFY_ERROR => "fail_verify_error",
        FAIL_VERIFY_CERT_HASH => "fail_verify_cert_hash",
        SESSION_REUSED => "session_reused",
        OCSP_STAPLE_REQUESTS => "ocsp_staple_requests",
        OCSP_STAPLE_RESPONSES => "ocsp_staple_responses",
        OCSP_STAPLE_OMITTED => "ocsp_staple_omitted",
        OCSP_STAPLE_FAILED => "ocsp_staple_failed",
    }
}

/// Names of `<ssl prefix>.certificate.<certificate name>.*`: a TLS context's gauges
/// for its certificate and its trusted CAs.
pub mod ssl_certificate {
    stat_group! {
        EXPIRATION => "expiration_unix_time_seconds",
    }
}

/// Names of `cluster.<name>.*`.
pub mod cluster {
    stat_group! {
        RQ_TOTAL => "upstream_rq_total",
        RQ_2XX => "upstream_rq_2xx",
        RQ_3XX => "upstream_rq_3xx",
        RQ_4XX => "upstream_rq_4xx",
        RQ_5XX => "upstream_rq_5xx",
        RQ_ACTIVE => "upstream_rq_active",
        CX_TOTAL => "upstream_cx_total",
        CX_CONNECT_FAIL => "upstream_cx_connect_fail",
        CX_CONNECT_TIMEOUT => "upstream_cx_connect_timeout",
        H2_KEEPALIVE_TIMEOUT => "http2.keepalive_timeout",
        RQ_TIMEOUT => "upstream_rq_timeout",
        MEMBERSHIP_HEALTHY => "membership_healthy",
        MEMBERSHIP_TOTAL => "membership_total",
        NONE_HEALTHY => "upstream_cx_none_healthy",
        RQ_RESET => "upstream_rq_rx_reset",
        TX_BYTES => "upstream_cx_tx_bytes_total",
        RX_BYTES => "upstream_cx_rx_bytes_total",
        CX_ACTIVE => "upstream_cx_active",
        // Retries (Envoy's names).
        RQ_RETRY => "upstream_rq_retry",
        RQ_RETRY_SUCCESS => "upstream_rq_retry_success",
        RQ_RETRY_OVERFLOW => "upstream_rq_retry_overflow",
        RQ_RETRY_LIMIT_EXCEEDED => "upstream_rq_retry_limit_exceeded",
        RQ_RETRY_BACKOFF => "upstream_rq_retry_backoff_exponential",
        RQ_PER_TRY_TIMEOUT => "upstream_rq_per_try_timeout",
        RQ_MAX_DURATION => "upstream_rq_max_duration_reached",
        // Circuit breakers.
        CX_OVERFLOW => "upstream_cx_overflow",
        RQ_PENDING_OVERFLOW => "upstream_rq_pending_overflow",
        RQ_ACTIVE_OVERFLOW => "upstream_rq_active_overflow",
        RETRY_OR_SHADOW_ABANDONED => "retry_or_shadow_abandoned",
        RQ_PENDING_ACTIVE => "upstream_rq_pending_active",
        RQ_PENDING_TOTAL => "upstream_rq_pending_total",
        CB_CX_OPEN => "circuit_breakers.default.cx_open",
        CB_RQ_PENDING_OPEN => "circuit_breakers.default.rq_pending_open",
        CB_RQ_OPEN => "circuit_breakers.default.rq_open",
        CB_RQ_RETRY_OPEN => "circuit_breakers.default.rq_retry_open",
        LB_PANIC => "lb_healthy_panic",
        // Outlier detection.
        OD_EJECTIONS_ACTIVE => "outlier_detection.ejections_active",
        OD_EJECTIONS_ENFORCED_TOTAL => "outlier_detection.ejections_enforced_total",
        OD_EJECTIONS_OVERFLOW => "outlier_detection.ejections_overflow",
        OD_ENFORCED_5XX => "outlier_detection.ejections_enforced_consecutive_5xx",
        OD_DETECTED_5XX => "outlier_detection.ejections_detected_consecutive_5xx",
        OD_ENFORCED_GATEWAY => "outlier_detection.ejections_enforced_consecutive_gateway_failure",
        OD_DETECTED_GATEWAY => "outlier_detection.ejections_detected_consecutive_gateway_failure",
        OD_ENFORCED_SUCCESS_RATE => "outlier_detection.ejections_enforced_success_rate",
        OD_DETECTED_SUCCESS_RATE => "outlier_detection.ejections_detected_success_rate",
        // Active health checks.
        HC_ATTEMPT => "health_check.attempt",
        HC_SUCCESS => "health_check.success",
        HC_FAILURE => "health_check.failure",
        HC_NETWORK_FAILURE => "health_check.network_failure",
        HC_HEALTHY => "health_check.healthy",
    }
}

/// Names of `vhost.<vhost>.route.<route>.*`.
pub mod route {
    stat_group! {
        RQ_TOTAL => "upstream_rq_total",
        RQ_2XX => "upstream_rq_2xx",
        RQ_3XX => "upstream_rq_3xx",
        RQ_4XX => "upstream_rq_4xx",
        RQ_5XX => "upstream_rq_5xx",
        RQ_TIMEOUT => "upstream_rq_timeout",
    }
}

/// Names of `tcp.<stat_prefix>.*`.
pub mod tcp {
    stat_group! {
        CX_TOTAL => "downstream_cx_total",
        CX_ACTIVE => "downstream_cx_active",
        RX_BYTES => "downstream_cx_rx_bytes_total",
        TX_BYTES => "downstream_cx_tx_bytes_total",
        IDLE_TIMEOUT => "idle_timeout",
        FLUSH => "upstream_flush_total",
        NO_ROUTE => "downstream_cx_no_route",
    }
}

/// The engine's stat groups, by prefix. A prefix may hold groups of different
/// name lists (RBAC filters counting under one `stat_prefix`, some with a shadow
/// prefix): a name they share is one stat, their sum, as Envoy's filters share one
/// counter. Groups live as Envoy's scopes do:
/// - `group`: for the engine's life (`http.*`, `tcp.*`: Envoy's server scope);
/// - `scoped_group`: while something holds it (`cluster.<name>.*`,
///   `listener.<address>.*`: gone with the cluster or the drained listener, so
///   xDS churn does not grow the registry). A replacement compiled while the old
///   holder lives shares the group, so counters carry over an update;
/// - `owned_group`: gauges describing something that goes away (a TLS context's
///   certificates), the newest holder's values exported, never shared.
#[derive(Debug, Default)]
pub struct Registry {
    groups: Mutex<BTreeMap<String, Vec<Arc<StatGroup>>>>,
    /// By prefix, oldest first; the newest live one is exported.
    owned: Mutex<BTreeMap<String, Vec<Weak<StatGroup>>>>,
}

impl Registry {
    /// The group for `prefix` (e.g. `cluster.web`), created on first use.
    pub fn group(&self, prefix: &str, names: &'static [&'static str]) -> Arc<StatGroup> {
        self.make(prefix, names, false, false)
    }

    /// The group for `prefix`, exported while the caller or anyone else holds it.
    pub fn scoped_group(&self, prefix: &str, names: &'static [&'static str]) -> Arc<StatGroup> {
        self.make(prefix, names, false, true)
    }

    /// A scoped group whose counters are exported once they count (see
    /// `StatGroup::lazy`).
    pub fn scoped_lazy_group(
        &self,
        prefix: &str,
        names: &'static [&'static str],
    ) -> Arc<StatGroup> {
        self.make(prefix, names, true, true)
    }

    /// A group exported only while the caller (or a clone) holds it: gone with
    /// what it describes, as Envoy's stats go with their scope. Several holders
    /// of one prefix (a context and its replacement, alive together until the old
    /// one's connections close) export the newest one's values.
    pub fn owned_group(&self, prefix: &str, names: &'static [&'static str]) -> Arc<StatGroup> {
        let g = Arc::new(StatGroup::new(prefix.to_owned(), names, false, false));
        let mut owned = self.owned.lock().unwrap();
        let same = owned.entry(prefix.to_owned()).or_default();
        same.retain(|w| w.strong_count() > 0);
        same.push(Arc::downgrade(&g));
        g
    }

    fn make(
        &self,
        prefix: &str,
        names: &'static [&'static str],
        lazy: bool,
        scoped: bool,
    ) -> Arc<StatGroup> {
        let mut groups = self.groups.lock().unwrap();
        let same = groups.entry(prefix.to_owned()).or_default();
        // A removed cluster added back starts from zero, as in Envoy.
        same.retain(|g| !g.orphaned());
        if let Some(g) = same.iter().find(|g| std::ptr::eq(g.names, names)) {
            return g.clone();
        }
        let g = Arc::new(StatGroup::new(prefix.to_owned(), names, lazy, scoped));
        same.push(g.clone());
        g
    }

    /// Every value by full name (`<prefix>.<name>`), sorted.
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        let mut groups = self.groups.lock().unwrap();
        groups.retain(|_, same| {
            same.retain(|g| !g.orphaned());
            !same.is_empty()
        });
        let mut out = BTreeMap::<String, u64>::new();
        let mut export = |g: &StatGroup| {
            for (i, n) in g.names.iter().enumerate() {
                let v = g.get(i);
                if v > 0 || !g.lazy {
                    *out.entry(format!("{}.{}", g.prefix, n)).or_default() += v;
                }
            }
        };
        for g in groups.values().flatten() {
            export(g);
        }
        drop(groups);
        let mut owned = self.owned.lock().unwrap();
        owned.retain(|_, same| {
            same.retain(|w| w.strong_count() > 0);
            if let Some(g) = same.last().and_then(Weak::upgrade) {
                export(&g);
            }
            !same.is_empty()
        });
        out.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_class_slots_are_consecutive_for_inc_class() {
        assert_eq!(
            (http::RQ_3XX, http::RQ_4XX, http::RQ_5XX),
            (http::RQ_2XX + 1, http::RQ_2XX + 2, http::RQ_2XX + 3)
        );
        assert_eq!(
            (cluster::RQ_3XX, cluster::RQ_4XX, cluster::RQ_5XX),
            (
                cluster::RQ_2XX + 1,
                cluster::RQ_2XX + 2,
                cluster::RQ_2XX + 3
            )
        );
        assert_eq!(
            (route::RQ_3XX, route::RQ_4XX, route::RQ_5XX),
            (route::RQ_2XX + 1, route::RQ_2XX + 2, route::RQ_2XX + 3)
        );
        assert_eq!(http::NAMES[http::RQ_5XX], "downstream_rq_5xx");
    }

    #[test]
    fn rbac_denied_follows_allowed_in_every_list() {
        for (names, allowed) in [
            (rbac_enforced::NAMES, rbac_enforced::ALLOWED),
            (rbac_shadow::NAMES, rbac_shadow::SHADOW_ALLOWED),
        ] {
            let (a, d) = (names[allowed], names[allowed + 1]);
            assert_eq!(a.replace("allowed", "denied"), d, "{names:?}");
        }
    }

    #[test]
    fn lazy_groups_export_only_what_counted() {
        let r = Registry::default();
        let g = r.scoped_lazy_group("listener.a.ssl.versions", &["TLSv1.2", "TLSv1.3"]);
        g.inc_name("TLSv1.3");
        g.inc_name("SSLv3");
        assert_eq!(
            r.snapshot(),
            vec![("listener.a.ssl.versions.TLSv1.3".to_owned(), 1)]
        );
    }

    #[test]
    fn groups_of_one_prefix_with_other_names_add_up() {
        const ALL: &[&str] = &["allowed", "denied", "shadow_allowed", "shadow_denied"];
        let r = Registry::default();
        let all = r.group("tcp.rbac", ALL);
        let enforced = r.group("tcp.rbac", rbac_enforced::NAMES);
        let shadow = r.group("tcp.rbac", rbac_shadow::NAMES);
        all.inc(0);
        enforced.inc(rbac_enforced::ALLOWED);
        shadow.inc(rbac_shadow::SHADOW_DENIED);
        let s: Vec<_> = r.snapshot();
        let s: Vec<_> = s.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            s,
            [
                ("tcp.rbac.allowed", 2),
                ("tcp.rbac.denied", 0),
                ("tcp.rbac.shadow_allowed", 0),
                ("tcp.rbac.shadow_denied", 1),
            ]
        );
    }

    #[test]
    fn owned_groups_go_with_their_last_holder_and_the_newest_wins() {
        const NAMES: &[&str] = &["expiration_unix_time_seconds"];
        let r = Registry::default();
        let gauge = "listener.a.ssl.certificate.c.expiration_unix_time_seconds".to_owned();
        let old = r.owned_group("listener.a.ssl.certificate.c", NAMES);
        old.set(0, 1);
        let new = r.owned_group("listener.a.ssl.certificate.c", NAMES);
        new.set(0, 2);
        assert_eq!(r.snapshot(), vec![(gauge.clone(), 2)], "the newest");
        drop(new); // e.g. a snapshot that failed to apply
        assert_eq!(r.snapshot(), vec![(gauge, 1)], "the one still held");
        drop(old);
        assert_eq!(r.snapshot(), vec![]);
        assert!(r.owned.lock().unwrap().is_empty(), "pruned");
    }

    #[test]
    fn scoped_groups_carry_over_an_update_and_go_with_their_last_holder() {
        let r = Registry::default();
        let total = "cluster.web.upstream_rq_total";
        let old = r.scoped_group("cluster.web", cluster::NAMES);
        old.inc(cluster::RQ_TOTAL);
        let new = r.scoped_group("cluster.web", cluster::NAMES); // compiled beside `old`
        drop(old);
        new.inc(cluster::RQ_TOTAL);
        let s: BTreeMap<_, _> = r.snapshot().into_iter().collect();
        assert_eq!(s[total], 2, "one counter across the update");
        drop(new); // the cluster is removed
        assert_eq!(r.snapshot(), vec![]);
        assert!(r.groups.lock().unwrap().is_empty(), "pruned");
        let back = r.scoped_group("cluster.web", cluster::NAMES);
        assert_eq!(back.get(cluster::RQ_TOTAL), 0, "added back, from zero");
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
