//! Active health checks (HTTP and TCP), with Envoy's thresholds and stats.
//!
//! One supervisor task per cluster follows the endpoint set and runs, for each
//! host and each configured check, a session task that probes the host on a
//! fresh connection every interval. A host fails if any of its checks fails
//! (`failed_active_hc`). Hosts start healthy and are probed as soon as they
//! appear; Envoy instead holds cluster warm-up until the first check.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::tls::UpstreamStream;
use bytes::Bytes;
use http::{header, Request, Uri};
use http_body_util::Empty;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

use crate::config::{HealthCheck, HealthCheckKind};
use crate::stats::{cluster as cs, StatGroup};
use crate::upstream::cluster::ClusterRt;
use crate::upstream::lb::{EndpointRt, EndpointSet};

/// How often the supervisor looks for added or removed hosts.
const MEMBERSHIP_POLL: Duration = Duration::from_millis(250);
/// A host's checks share one bit mask, so at most this many checks per cluster.
const MAX_CHECKS: usize = 64;

/// What one probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Pass,
    /// The host answered wrongly (an unexpected HTTP status): unhealthy at once.
    Fail,
    /// Connect failure, broken connection or timeout: counts toward `unhealthy_threshold`.
    NetworkFail,
}

/// One host's standing with one check: Envoy's consecutive pass/fail counting.
#[derive(Debug, Default)]
struct Standing {
    failing: bool,
    passes: u32,
    fails: u32,
}

impl Standing {
    /// Apply one verdict; true when `failing` flipped.
    fn record(&mut self, v: Verdict, cfg: &HealthCheck) -> bool {
        if v == Verdict::Pass {
            self.fails = 0;
            if self.failing {
                self.passes += 1;
                if self.passes >= cfg.healthy_threshold.max(1) {
                    (self.failing, self.passes) = (false, 0);
                    return true;
                }
            }
        } else {
            self.passes = 0;
            if !self.failing {
                self.fails += 1;
                if v == Verdict::Fail || self.fails >= cfg.unhealthy_threshold.max(1) {
                    (self.failing, self.fails) = (true, 0);
                    return true;
                }
            }
        }
        false
    }
}

/// One configured check, ready to probe.
#[derive(Debug)]
struct Check {
    cfg: HealthCheck,
    /// HTTP `host` / `:authority`: the configured one, else the cluster name.
    host: String,
    timeout: Duration,
}

impl Check {
    fn new(cfg: &HealthCheck, cluster: &str) -> Self {
        let host = match &cfg.kind {
            HealthCheckKind::Http { host: Some(h), .. } if !h.is_empty() => h.clone(),
            _ => cluster.to_owned(),
        };
        Check {
            timeout: Duration::from_millis(cfg.timeout_ms.max(1)),
            cfg: cfg.clone(),
            host,
        }
    }

    /// The wait before the next probe: the interval (the no-traffic one while the
    /// cluster has never sent a request, as Envoy) plus random jitter.
    fn next_wait(&self, had_traffic: bool) -> Duration {
        let jitter = match self.cfg.interval_jitter_ms {
            0 => 0,
            j => fastrand::u64(..j),
        };
        let interval = match self.cfg.no_traffic_interval_ms {
            Some(ms) if !had_traffic => ms,
            _ => self.cfg.interval_ms,
        };
        Duration::from_millis(interval.max(1) + jitter)
    }

    /// One check of `addr`, over TLS when the cluster originates TLS (as Envoy's
    /// checks use the cluster's transport socket).
    async fn probe(&self, cluster: &ClusterRt, addr: SocketAddr) -> Verdict {
        let run = async {
            let stream = cluster.connect(addr).await.ok()?;
            match &self.cfg.kind {
                HealthCheckKind::Http {
                    path,
                    expected_statuses,
                    http2,
                    ..
                } => {
                    let status = http_status(stream, &self.host, path, *http2).await?;
                    Some(if expected(expected_statuses, status) {
                        Verdict::Pass
                    } else {
                        Verdict::Fail
                    })
                }
                HealthCheckKind::Tcp { send, receive } => {
                    tcp_exchange(stream, send, receive).await?;
                    Some(Verdict::Pass)
                }
            }
        };
        match tokio::time::timeout(self.timeout, run).await {
            Ok(Some(v)) => v,
            Ok(None) | Err(_) => Verdict::NetworkFail,
        }
    }
}

/// Envoy's default when no ranges are given: exactly 200.
fn expected(ranges: &[(u16, u16)], status: u16) -> bool {
    if ranges.is_empty() {
        return status == 200;
    }
    ranges.iter().any(|&(lo, hi)| (lo..hi).contains(&status))
}

/// `GET path` on a new connection; the response status, `None` on any network error.
async fn http_status(stream: UpstreamStream, host: &str, path: &str, h2: bool) -> Option<u16> {
    let io = TokioIo::new(stream);
    let req = Request::get(path).header(header::USER_AGENT, "Envoy/HC");
    if h2 {
        let uri = Uri::builder()
            .scheme("http")
            .authority(host)
            .path_and_query(path)
            .build()
            .ok()?;
        let req = req
            .uri(uri)
            .version(http::Version::HTTP_2)
            .body(Empty::<Bytes>::new())
            .ok()?;
        let (mut tx, conn) = http2::handshake(TokioExecutor::new(), io).await.ok()?;
        tokio::select! {
            r = tx.send_request(req) => r.ok().map(|r| r.status().as_u16()),
            _ = conn => None,
        }
    } else {
        let req = req
            .header(header::HOST, host)
            .body(Empty::<Bytes>::new())
            .ok()?;
        let (mut tx, conn) = http1::handshake(io).await.ok()?;
        tokio::select! {
            r = tx.send_request(req) => r.ok().map(|r| r.status().as_u16()),
            _ = conn => None,
        }
    }
}

/// Connect, write `send`, then read until `receive` has arrived; `None` if any step fails.
async fn tcp_exchange(mut stream: UpstreamStream, send: &[u8], receive: &[u8]) -> Option<()> {
    if !send.is_empty() {
        stream.write_all(send).await.ok()?;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !contains(&got, receive) {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
    }
    Some(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// The checks of one host: bit `i` set while check `i` fails it.
#[derive(Debug, Default)]
struct HostFailures(AtomicU64);

/// Start checking `cluster`'s hosts until the engine drops the cluster.
pub fn spawn(rt: &tokio::runtime::Handle, cluster: &Arc<ClusterRt>) {
    let checks: Vec<Arc<Check>> = cluster
        .config
        .health_checks
        .iter()
        .take(MAX_CHECKS)
        .map(|hc| Arc::new(Check::new(hc, &cluster.name)))
        .collect();
    if checks.is_empty() {
        return;
    }
    rt.spawn(supervise(Arc::downgrade(cluster), checks));
}

/// Keep one set of sessions per current host; a removed host's sessions end
/// with its `JoinSet`, and all of them when the cluster is gone.
async fn supervise(weak: Weak<ClusterRt>, checks: Vec<Arc<Check>>) {
    let mut seen: Option<Arc<EndpointSet>> = None;
    let mut hosts: HashMap<usize, (Arc<EndpointRt>, JoinSet<()>)> = HashMap::new();
    loop {
        {
            let Some(c) = weak.upgrade() else { return };
            let set = c.lb.set.load_full();
            if !seen.as_ref().is_some_and(|s| Arc::ptr_eq(s, &set)) {
                let mut next = HashMap::with_capacity(set.endpoints.len());
                for ep in &set.endpoints {
                    // The map holds the Arc, so its address names it uniquely.
                    let key = Arc::as_ptr(ep) as usize;
                    let entry = hosts
                        .remove(&key)
                        .unwrap_or_else(|| (ep.clone(), start_sessions(&weak, ep, &checks)));
                    next.insert(key, entry);
                }
                hosts = next;
                count_healthy(&c);
                seen = Some(set);
            }
        }
        tokio::time::sleep(MEMBERSHIP_POLL).await;
    }
}

fn start_sessions(
    weak: &Weak<ClusterRt>,
    ep: &Arc<EndpointRt>,
    checks: &[Arc<Check>],
) -> JoinSet<()> {
    let failures = Arc::new(HostFailures::default());
    let mut sessions = JoinSet::new();
    for (i, check) in checks.iter().enumerate() {
        sessions.spawn(session(
            weak.clone(),
            ep.clone(),
            failures.clone(),
            1 << i,
            check.clone(),
        ));
    }
    sessions
}

/// Probe `ep` with `check` forever (until aborted or the cluster is gone).
async fn session(
    weak: Weak<ClusterRt>,
    ep: Arc<EndpointRt>,
    failures: Arc<HostFailures>,
    bit: u64,
    check: Arc<Check>,
) {
    let Some(stats) = weak.upgrade().map(|c| c.stats.clone()) else {
        return;
    };
    let mut standing = Standing::default();
    loop {
        stats.inc(cs::HC_ATTEMPT);
        let Some(cluster) = weak.upgrade() else {
            return;
        };
        let verdict = check.probe(&cluster, ep.addr).await;
        drop(cluster);
        count(&stats, verdict);
        if standing.record(verdict, &check.cfg) {
            let Some(c) = weak.upgrade() else { return };
            // No await between the mask update and the flag store, and every
            // session of a cluster runs on one current-thread runtime: the flag
            // always reflects the latest mask.
            let mask = if standing.failing {
                failures.0.fetch_or(bit, Relaxed) | bit
            } else {
                failures.0.fetch_and(!bit, Relaxed) & !bit
            };
            ep.health.failed_active_hc.store(mask != 0, Relaxed);
            c.update_membership();
            count_healthy(&c);
        }
        tokio::time::sleep(check.next_wait(stats.get(cs::RQ_TOTAL) > 0)).await;
    }
}

fn count(stats: &StatGroup, v: Verdict) {
    match v {
        Verdict::Pass => stats.inc(cs::HC_SUCCESS),
        Verdict::Fail => stats.inc(cs::HC_FAILURE),
        Verdict::NetworkFail => {
            stats.inc(cs::HC_FAILURE);
            stats.inc(cs::HC_NETWORK_FAILURE);
        }
    }
}

/// `health_check.healthy`: hosts currently passing their active checks.
fn count_healthy(c: &ClusterRt) {
    let set = c.lb.set.load();
    let passing = set
        .endpoints
        .iter()
        .filter(|e| !e.health.failed_active_hc.load(Relaxed))
        .count();
    c.stats.set(cs::HC_HEALTHY, passing as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(unhealthy: u32, healthy: u32) -> HealthCheck {
        serde_json::from_value(serde_json::json!({
            "timeout_ms": 100, "interval_ms": 100,
            "unhealthy_threshold": unhealthy, "healthy_threshold": healthy,
            "kind": {"tcp": {}}
        }))
        .unwrap()
    }

    fn run(s: &mut Standing, cfg: &HealthCheck, vs: &[Verdict]) -> Vec<bool> {
        vs.iter().map(|v| s.record(*v, cfg)).collect()
    }

    #[test]
    fn network_failures_need_the_threshold_in_a_row() {
        use Verdict::*;
        let c = cfg(3, 2);
        let mut s = Standing::default();
        assert_eq!(
            run(
                &mut s,
                &c,
                &[NetworkFail, NetworkFail, Pass, NetworkFail, NetworkFail]
            ),
            [false; 5]
        );
        assert!(s.record(NetworkFail, &c));
        assert!(s.failing);
    }

    #[test]
    fn a_wrong_answer_fails_at_once() {
        let c = cfg(3, 2);
        let mut s = Standing::default();
        assert!(s.record(Verdict::Fail, &c));
        assert!(s.failing);
    }

    #[test]
    fn passes_in_a_row_bring_a_host_back() {
        use Verdict::*;
        let c = cfg(1, 3);
        let mut s = Standing::default();
        s.record(Fail, &c);
        assert_eq!(
            run(&mut s, &c, &[Pass, Pass, NetworkFail, Pass, Pass]),
            [false; 5]
        );
        assert!(s.record(Pass, &c));
        assert!(!s.failing);
    }

    #[test]
    fn expected_statuses_are_half_open_ranges() {
        assert!(expected(&[], 200));
        assert!(!expected(&[], 204));
        assert!(expected(&[(200, 300)], 204));
        assert!(!expected(&[(200, 300)], 300));
        assert!(expected(&[(200, 201), (404, 405)], 404));
    }

    #[test]
    fn receive_matches_anywhere_in_what_arrived() {
        assert!(contains(b"xxPONGyy", b"PONG"));
        assert!(!contains(b"PON", b"PONG"));
        assert!(contains(b"", b""));
    }
}
