//! Outlier detection (passive health): hosts that fail in a row, or whose
//! success rate falls far below their peers', are ejected from load balancing
//! for a growing time, with Envoy's rules and stats.
//!
//! The hot path (`report`) only touches the host's relaxed atomics; the rare
//! ejection and the periodic `sweep` serialize on one mutex so the
//! `max_ejection_percent` cap holds. Time is passed in, so tests drive a clock.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::config::{Fraction, OutlierDetection};
use crate::stats::{cluster as cs, StatGroup};
use crate::upstream::cluster::ClusterRt;
use crate::upstream::lb::{EndpointRt, EndpointSet};

/// How one request to a host ended, as outlier detection sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The host answered with this status.
    Status(u16),
    /// TCP connect failed or timed out.
    ConnectFailure,
    /// The connection broke before a response.
    Reset,
    /// No response within the (per-try) timeout.
    Timeout,
}

impl Outcome {
    /// The status Envoy books a local-origin failure as when local and external
    /// errors are not split: connect failure and reset 503, timeout 504.
    fn status(self) -> u16 {
        match self {
            Outcome::Status(code) => code,
            Outcome::ConnectFailure | Outcome::Reset => 503,
            Outcome::Timeout => 504,
        }
    }
}

/// Which of Envoy's detectors found a host to be an outlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detection {
    Consecutive5xx,
    ConsecutiveGatewayFailure,
    SuccessRate,
}

impl Detection {
    /// (detected, enforced) stat slots.
    fn stats(self) -> (usize, usize) {
        match self {
            Detection::Consecutive5xx => (cs::OD_DETECTED_5XX, cs::OD_ENFORCED_5XX),
            Detection::ConsecutiveGatewayFailure => {
                (cs::OD_DETECTED_GATEWAY, cs::OD_ENFORCED_GATEWAY)
            }
            Detection::SuccessRate => (cs::OD_DETECTED_SUCCESS_RATE, cs::OD_ENFORCED_SUCCESS_RATE),
        }
    }

    /// Percent of these detections that eject (`enforcing_*`).
    fn enforcing(self, cfg: &OutlierDetection) -> u32 {
        match self {
            Detection::Consecutive5xx => cfg.enforcing_consecutive_5xx,
            Detection::ConsecutiveGatewayFailure => cfg.enforcing_consecutive_gateway_failure,
            Detection::SuccessRate => cfg.enforcing_success_rate,
        }
    }
}

/// "Not computed", as Envoy's admin prints it.
const NO_RATE: f64 = -1.0;

/// Per-endpoint outlier state, kept on `EndpointRt`.
#[derive(Debug)]
pub struct EndpointOutlier {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    /// Requests and successes in the current sweep interval (success rate).
    interval_total: AtomicU64,
    interval_success: AtomicU64,
    /// The last interval's success rate, percent (f64 bits), `NO_RATE` when the
    /// host had too few requests or the cluster too few such hosts.
    success_rate: AtomicU64,
    /// Times ejected since the host joined the cluster.
    ejections: AtomicU32,
    /// Written only under the detector's lock.
    ejection: Mutex<Ejection>,
}

#[derive(Debug, Default)]
struct Ejection {
    /// When the current ejection began; `None` while in rotation.
    since: Option<Instant>,
    /// Envoy's ejection-time multiplier: up on each ejection, down on each
    /// sweep the host spends in rotation.
    backoff: u32,
}

impl Default for EndpointOutlier {
    fn default() -> Self {
        EndpointOutlier {
            consecutive_5xx: AtomicU32::new(0),
            consecutive_gateway: AtomicU32::new(0),
            interval_total: AtomicU64::new(0),
            interval_success: AtomicU64::new(0),
            success_rate: AtomicU64::new(NO_RATE.to_bits()),
            ejections: AtomicU32::new(0),
            ejection: Mutex::default(),
        }
    }
}

impl EndpointOutlier {
    /// The host's success rate over the last sweep interval, percent; -1 when not computed.
    pub fn success_rate(&self) -> f64 {
        f64::from_bits(self.success_rate.load(Relaxed))
    }

    /// Times this host was ejected.
    pub fn ejections(&self) -> u32 {
        self.ejections.load(Relaxed)
    }

    fn reset_consecutive(&self) {
        self.consecutive_5xx.store(0, Relaxed);
        self.consecutive_gateway.store(0, Relaxed);
    }

    fn ejection(&self) -> MutexGuard<'_, Ejection> {
        self.ejection.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Counts `counter` up; true exactly when it reaches `threshold`, which also
/// restarts it (Envoy resets the counter it ejected on). 0 disables.
fn crossed(counter: &AtomicU32, threshold: u32) -> bool {
    if counter.fetch_add(1, Relaxed).wrapping_add(1) == threshold {
        counter.store(0, Relaxed);
        true
    } else {
        false
    }
}

#[derive(Debug)]
pub struct OutlierDetector {
    cfg: OutlierDetection,
    stats: Arc<StatGroup>,
    /// Serializes ejections and sweeps (the cap counts ejected hosts under it).
    lock: Mutex<()>,
    /// Last sweep's mean success rate and ejection threshold (f64 bits), for admin.
    sr_average: AtomicU64,
    sr_threshold: AtomicU64,
}

impl OutlierDetector {
    pub fn new(cfg: &OutlierDetection, stats: Arc<StatGroup>) -> Self {
        OutlierDetector {
            cfg: cfg.clone(),
            stats,
            lock: Mutex::new(()),
            sr_average: AtomicU64::new(NO_RATE.to_bits()),
            sr_threshold: AtomicU64::new(NO_RATE.to_bits()),
        }
    }

    /// The sweep period.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.cfg.interval_ms.max(1))
    }

    /// Mean success rate of the hosts the last sweep judged, -1 if it judged none.
    pub fn success_rate_average(&self) -> f64 {
        f64::from_bits(self.sr_average.load(Relaxed))
    }

    /// Success rate below which the last sweep ejected, -1 if it judged none.
    pub fn success_rate_ejection_threshold(&self) -> f64 {
        f64::from_bits(self.sr_threshold.load(Relaxed))
    }

    /// Record one outcome of a request to `ep`, one of `hosts`; true when a
    /// host's ejection state changed (the caller refreshes load balancing).
    #[inline]
    pub fn report(&self, hosts: &ArcSwap<EndpointSet>, ep: &EndpointRt, outcome: Outcome) -> bool {
        self.report_at(hosts, ep, outcome, Instant::now)
    }

    /// `report` with the clock passed in; `now` is read only when ejecting.
    pub fn report_at(
        &self,
        hosts: &ArcSwap<EndpointSet>,
        ep: &EndpointRt,
        outcome: Outcome,
        now: impl Fn() -> Instant,
    ) -> bool {
        let o = &ep.outlier;
        o.interval_total.fetch_add(1, Relaxed);
        let code = outcome.status();
        if !(500..600).contains(&code) {
            o.interval_success.fetch_add(1, Relaxed);
            o.reset_consecutive();
            return false;
        }
        // Envoy checks gateway failures first; both may fire on one response.
        let mut changed = false;
        if matches!(code, 502..=504) {
            if crossed(&o.consecutive_gateway, self.cfg.consecutive_gateway_failure) {
                changed |= self.detected(hosts, ep, Detection::ConsecutiveGatewayFailure, &now);
            }
        } else {
            o.consecutive_gateway.store(0, Relaxed);
        }
        if crossed(&o.consecutive_5xx, self.cfg.consecutive_5xx) {
            changed |= self.detected(hosts, ep, Detection::Consecutive5xx, &now);
        }
        changed
    }

    #[cold]
    fn detected(
        &self,
        hosts: &ArcSwap<EndpointSet>,
        ep: &EndpointRt,
        why: Detection,
        now: &impl Fn() -> Instant,
    ) -> bool {
        let guard = self.lock();
        self.eject(&guard, &hosts.load().endpoints, ep, why, now())
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Eject `ep` if the cap and the enforcement percentage allow; true if it was.
    fn eject(
        &self,
        _held: &MutexGuard<'_, ()>,
        hosts: &[Arc<EndpointRt>],
        ep: &EndpointRt,
        why: Detection,
        now: Instant,
    ) -> bool {
        if ep.health.ejected.load(Relaxed) {
            return false;
        }
        let (detected, enforced) = why.stats();
        self.stats.inc(detected);
        let ejected = ejected_count(hosts);
        // The cap never stops the first ejection (Envoy >= 1.19).
        let max_percent = u64::from(self.cfg.max_ejection_percent.min(100));
        if ejected > 0 && (ejected + 1) * 100 > max_percent * hosts.len() as u64 {
            self.stats.inc(cs::OD_EJECTIONS_OVERFLOW);
            return false;
        }
        if !Fraction::percent(why.enforcing(&self.cfg)).roll() {
            return false;
        }
        let mut e = ep.outlier.ejection();
        e.since = Some(now);
        // Grow the multiplier only while it still lengthens the (capped) ejection.
        let base = self.cfg.base_ejection_time_ms;
        if u64::from(e.backoff) * base < self.cfg.max_ejection_time_ms + base {
            e.backoff += 1;
        }
        ep.outlier.ejections.fetch_add(1, Relaxed);
        ep.health.ejected.store(true, Relaxed);
        self.stats.set(cs::OD_EJECTIONS_ACTIVE, ejected + 1);
        self.stats.inc(cs::OD_EJECTIONS_ENFORCED_TOTAL);
        self.stats.inc(enforced);
        true
    }

    /// The periodic pass: return hosts whose ejection time is over, close the
    /// success-rate interval and eject its outliers. True if any host changed.
    pub fn sweep(&self, hosts: &[Arc<EndpointRt>], now: Instant) -> bool {
        let guard = self.lock();
        let mut changed = false;
        for h in hosts {
            let mut e = h.outlier.ejection();
            match e.since {
                Some(since) if h.health.ejected.load(Relaxed) => {
                    let base = Duration::from_millis(self.cfg.base_ejection_time_ms);
                    let max = Duration::from_millis(self.cfg.max_ejection_time_ms);
                    if now.saturating_duration_since(since) >= (base * e.backoff).min(max) {
                        e.since = None;
                        h.health.ejected.store(false, Relaxed);
                        // A fresh start, so a few errors do not re-eject at once.
                        h.outlier.reset_consecutive();
                        changed = true;
                    }
                }
                _ => e.backoff = e.backoff.saturating_sub(1),
            }
        }
        changed |= self.success_rate_ejections(&guard, hosts, now);
        self.stats
            .set(cs::OD_EJECTIONS_ACTIVE, ejected_count(hosts));
        changed
    }

    /// Envoy's success-rate detector over the interval that just ended.
    fn success_rate_ejections(
        &self,
        guard: &MutexGuard<'_, ()>,
        hosts: &[Arc<EndpointRt>],
        now: Instant,
    ) -> bool {
        let volume = u64::from(self.cfg.success_rate_request_volume);
        let mut judged = Vec::new();
        for h in hosts {
            let o = &h.outlier;
            // Two swaps, not one snapshot: a request racing the sweep may land
            // in either interval, which success rates shrug off.
            let total = o.interval_total.swap(0, Relaxed);
            let ok = o.interval_success.swap(0, Relaxed).min(total);
            let mut rate = NO_RATE;
            if !h.health.ejected.load(Relaxed) && total > 0 && total >= volume {
                rate = ok as f64 * 100.0 / total as f64;
                judged.push((h, rate));
            }
            o.success_rate.store(rate.to_bits(), Relaxed);
        }
        let (mut average, mut threshold) = (NO_RATE, NO_RATE);
        let mut changed = false;
        if !judged.is_empty() && judged.len() >= self.cfg.success_rate_minimum_hosts as usize {
            let factor = f64::from(self.cfg.success_rate_stdev_factor) / 1000.0;
            (average, threshold) = ejection_threshold(judged.iter().map(|(_, r)| *r), factor);
            for (h, rate) in judged {
                if rate < threshold {
                    changed |= self.eject(guard, hosts, h, Detection::SuccessRate, now);
                }
            }
        }
        self.sr_average.store(average.to_bits(), Relaxed);
        self.sr_threshold.store(threshold.to_bits(), Relaxed);
        changed
    }
}

/// (mean, mean - factor x population stdev) of `rates`, as Envoy computes them.
fn ejection_threshold(rates: impl Iterator<Item = f64> + Clone, factor: f64) -> (f64, f64) {
    let n = rates.clone().count() as f64;
    let mean = rates.clone().sum::<f64>() / n;
    let variance = rates.map(|r| (r - mean).powi(2)).sum::<f64>() / n;
    (mean, mean - factor * variance.sqrt())
}

fn ejected_count(hosts: &[Arc<EndpointRt>]) -> u64 {
    hosts
        .iter()
        .filter(|h| h.health.ejected.load(Relaxed))
        .count() as u64
}

/// True `percent`% of the time.
/// Sweep `cluster`'s hosts every `interval_ms` until the engine drops it.
pub fn spawn(rt: &tokio::runtime::Handle, cluster: &Arc<ClusterRt>) {
    let Some(od) = &cluster.outlier else { return };
    let period = od.interval();
    let weak = Arc::downgrade(cluster);
    rt.spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            let Some(c) = weak.upgrade() else { return };
            let Some(od) = &c.outlier else { return };
            if od.sweep(&c.lb.set.load().endpoints, Instant::now()) {
                c.update_membership();
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Registry;
    use crate::upstream::lb::EndpointAddr;

    struct Fixture {
        od: OutlierDetector,
        set: ArcSwap<EndpointSet>,
        stats: Arc<StatGroup>,
        t0: Instant,
    }

    fn config(patch: serde_json::Value) -> OutlierDetection {
        serde_json::from_value(patch).unwrap()
    }

    fn fixture(hosts: usize, cfg: serde_json::Value) -> Fixture {
        let stats = Registry::default().group("cluster.c", cs::NAMES);
        let eps = (0..hosts)
            .map(|i| {
                Arc::new(EndpointRt::new(EndpointAddr {
                    addr: format!("10.0.0.{}:80", i + 1).parse().unwrap(),
                    weight: 1,
                    priority: 0,
                }))
            })
            .collect();
        Fixture {
            od: OutlierDetector::new(&config(cfg), stats.clone()),
            set: ArcSwap::from_pointee(EndpointSet::new(eps)),
            stats,
            t0: Instant::now(),
        }
    }

    impl Fixture {
        fn host(&self, i: usize) -> Arc<EndpointRt> {
            self.set.load().endpoints[i].clone()
        }

        /// Feed `n` copies of `outcome` for host `i` at `t0 + at_s`; true if any changed state.
        fn feed(&self, i: usize, outcome: Outcome, n: usize, at_s: u64) -> bool {
            let ep = self.host(i);
            let at = self.t0 + Duration::from_secs(at_s);
            let mut changed = false;
            for _ in 0..n {
                changed |= self.od.report_at(&self.set, &ep, outcome, || at);
            }
            changed
        }

        fn sweep(&self, at_s: u64) -> bool {
            self.od.sweep(
                &self.set.load().endpoints,
                self.t0 + Duration::from_secs(at_s),
            )
        }

        fn ejected(&self, i: usize) -> bool {
            self.host(i).health.ejected.load(Relaxed)
        }
    }

    #[test]
    fn five_consecutive_5xx_eject_with_the_defaults() {
        let f = fixture(2, serde_json::json!({}));
        assert!(!f.feed(0, Outcome::Status(500), 4, 0));
        assert!(!f.ejected(0));
        assert!(f.feed(0, Outcome::Status(500), 1, 0));
        assert!(f.ejected(0));
        assert_eq!(f.stats.get(cs::OD_DETECTED_5XX), 1);
        assert_eq!(f.stats.get(cs::OD_ENFORCED_5XX), 1);
        assert_eq!(f.stats.get(cs::OD_EJECTIONS_ENFORCED_TOTAL), 1);
        assert_eq!(f.stats.get(cs::OD_EJECTIONS_ACTIVE), 1);
        assert_eq!(f.host(0).outlier.ejections(), 1);
    }

    #[test]
    fn a_success_restarts_the_count() {
        let f = fixture(2, serde_json::json!({}));
        f.feed(0, Outcome::Status(500), 4, 0);
        f.feed(0, Outcome::Status(404), 1, 0);
        f.feed(0, Outcome::Status(500), 4, 0);
        assert!(!f.ejected(0));
    }

    #[test]
    fn local_failures_count_as_gateway_errors() {
        // Gateway detection is enforced only when asked to (default 0 %).
        let f = fixture(
            2,
            serde_json::json!({"consecutive_5xx": 100, "consecutive_gateway_failure": 3,
                               "enforcing_consecutive_gateway_failure": 100}),
        );
        f.feed(0, Outcome::ConnectFailure, 1, 0);
        f.feed(0, Outcome::Reset, 1, 0);
        assert!(f.feed(0, Outcome::Timeout, 1, 0));
        assert_eq!(f.stats.get(cs::OD_ENFORCED_GATEWAY), 1);
        // A 500 breaks a gateway run but not a 5xx run.
        f.feed(1, Outcome::Status(503), 2, 0);
        f.feed(1, Outcome::Status(500), 1, 0);
        f.feed(1, Outcome::Status(502), 2, 0);
        assert!(!f.ejected(1));
    }

    #[test]
    fn unenforced_detections_are_only_counted() {
        let f = fixture(2, serde_json::json!({"consecutive_gateway_failure": 2}));
        f.feed(0, Outcome::Status(503), 2, 0);
        assert!(!f.ejected(0));
        assert_eq!(f.stats.get(cs::OD_DETECTED_GATEWAY), 1);
        assert_eq!(f.stats.get(cs::OD_ENFORCED_GATEWAY), 0);
    }

    #[test]
    fn max_ejection_percent_caps_but_one_host_may_always_go() {
        // 10 % of 4 hosts is 0.4 hosts: still one may be ejected, not two.
        let f = fixture(4, serde_json::json!({"consecutive_5xx": 1}));
        assert!(f.feed(0, Outcome::Status(500), 1, 0));
        assert!(!f.feed(1, Outcome::Status(500), 1, 0));
        assert!(!f.ejected(1));
        assert_eq!(f.stats.get(cs::OD_EJECTIONS_OVERFLOW), 1);
        assert_eq!(f.stats.get(cs::OD_EJECTIONS_ACTIVE), 1);

        let f = fixture(
            4,
            serde_json::json!({"consecutive_5xx": 1, "max_ejection_percent": 50}),
        );
        f.feed(0, Outcome::Status(500), 1, 0);
        f.feed(1, Outcome::Status(500), 1, 0);
        f.feed(2, Outcome::Status(500), 1, 0);
        assert_eq!(
            (f.ejected(0), f.ejected(1), f.ejected(2)),
            (true, true, false)
        );
    }

    #[test]
    fn ejection_time_grows_with_each_ejection_and_is_capped() {
        let f = fixture(
            2,
            serde_json::json!({"consecutive_5xx": 1, "base_ejection_time_ms": 10_000,
                               "max_ejection_time_ms": 25_000, "interval_ms": 1_000}),
        );
        f.feed(0, Outcome::Status(500), 1, 0);
        assert!(!f.sweep(9));
        assert!(f.sweep(10), "back after base x 1");
        assert!(!f.ejected(0));
        // Ejected again right away: 2 x base this time.
        f.feed(0, Outcome::Status(500), 1, 10);
        assert!(!f.sweep(29));
        assert!(f.sweep(30));
        // Third time: 3 x base = 30 s, capped at 25 s.
        f.feed(0, Outcome::Status(500), 1, 30);
        assert!(!f.sweep(54));
        assert!(f.sweep(55));
        assert_eq!(f.host(0).outlier.ejections(), 3);
        assert_eq!(f.stats.get(cs::OD_EJECTIONS_ACTIVE), 0);
    }

    #[test]
    fn staying_healthy_shrinks_the_multiplier() {
        let f = fixture(
            2,
            serde_json::json!({"consecutive_5xx": 1, "base_ejection_time_ms": 10_000}),
        );
        f.feed(0, Outcome::Status(500), 1, 0);
        f.sweep(10);
        f.feed(0, Outcome::Status(500), 1, 10);
        f.sweep(30); // back; multiplier 2
        f.sweep(40); // healthy sweeps: 2 -> 1 -> 0
        f.sweep(50);
        f.feed(0, Outcome::Status(500), 1, 50);
        assert!(f.sweep(60), "multiplier back to 1: out for base only");
    }

    #[test]
    fn success_rate_ejects_the_host_far_below_the_mean() {
        let f = fixture(
            5,
            serde_json::json!({"consecutive_5xx": 1000, "success_rate_request_volume": 10,
                               "max_ejection_percent": 100}),
        );
        for i in 0..4 {
            f.feed(i, Outcome::Status(200), 10, 0);
        }
        f.feed(4, Outcome::Status(200), 5, 0);
        f.feed(4, Outcome::Status(500), 5, 0);
        assert!(f.sweep(10));
        assert!(f.ejected(4));
        assert!((0..4).all(|i| !f.ejected(i)));
        assert_eq!(f.stats.get(cs::OD_DETECTED_SUCCESS_RATE), 1);
        assert_eq!(f.stats.get(cs::OD_ENFORCED_SUCCESS_RATE), 1);
        assert_eq!(f.host(4).outlier.success_rate(), 50.0);
        assert_eq!(f.host(0).outlier.success_rate(), 100.0);
        // mean 90, population stdev 20: threshold 90 - 1.9 x 20 = 52.
        assert_eq!(f.od.success_rate_average(), 90.0);
        assert!((f.od.success_rate_ejection_threshold() - 52.0).abs() < 1e-9);
        // The next interval starts empty: no rates, nothing judged.
        f.sweep(20);
        assert_eq!(f.host(0).outlier.success_rate(), -1.0);
        assert_eq!(f.od.success_rate_average(), -1.0);
    }

    #[test]
    fn success_rate_needs_enough_hosts_with_enough_requests() {
        let f = fixture(
            5,
            serde_json::json!({"consecutive_5xx": 1000, "success_rate_request_volume": 10,
                               "max_ejection_percent": 100}),
        );
        for i in 0..3 {
            f.feed(i, Outcome::Status(200), 10, 0);
        }
        f.feed(3, Outcome::Status(200), 9, 0); // below the volume
        f.feed(4, Outcome::Status(500), 10, 0);
        assert!(!f.sweep(10), "only 4 hosts qualify, 5 needed");
        assert!(!f.ejected(4));
        assert_eq!(f.host(3).outlier.success_rate(), -1.0);
        assert_eq!(f.host(4).outlier.success_rate(), 0.0);
    }
}
