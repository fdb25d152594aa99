//! `tcp_proxy`: connect to a cluster endpoint (TLS when the cluster originates
//! it) and copy bytes both ways, with half-close, an idle timeout, a bounded
//! drain, and byte counters.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use crate::chains::drained;
use crate::config::TcpProxy;
use crate::listener::DownstreamIo;
use crate::stats::{cluster as cs, tcp as ts, Registry, StatGroup};
use crate::upstream::breaker::Limit;
use crate::upstream::outlier::Outcome;
use crate::upstream::ClusterRt;

/// A `tcp_proxy` compiled for one snapshot.
#[derive(Debug)]
pub struct TcpRt {
    pub stats: Arc<StatGroup>,
    /// (cumulative weight, cluster), ascending; one entry for a plain `cluster`.
    clusters: Vec<(u64, Arc<ClusterRt>)>,
    total: u64,
    pub idle_timeout: Option<Duration>,
}

impl TcpRt {
    pub fn compile(
        t: &TcpProxy,
        clusters: &HashMap<String, Arc<ClusterRt>>,
        stats: &Registry,
    ) -> Result<Self, String> {
        let find = |name: &str| {
            clusters
                .get(name)
                .cloned()
                .ok_or_else(|| format!("tcp_proxy {}: unknown cluster {name:?}", t.stat_prefix))
        };
        let mut split = Vec::new();
        let mut total = 0u64;
        match (t.cluster.is_empty(), t.weighted_clusters.is_empty()) {
            (false, true) => {
                total = 1;
                split.push((total, find(&t.cluster)?));
            }
            (true, false) => {
                // Envoy drops zero weights; at least one must remain.
                for w in t.weighted_clusters.iter().filter(|w| w.weight > 0) {
                    total += u64::from(w.weight);
                    split.push((total, find(&w.name)?));
                }
                if total == 0 {
                    return Err(format!(
                        "tcp_proxy {}: weighted clusters have no weight",
                        t.stat_prefix
                    ));
                }
            }
            _ => {
                return Err(format!(
                    "tcp_proxy {}: set exactly one of cluster and weighted_clusters",
                    t.stat_prefix
                ))
            }
        }
        Ok(TcpRt {
            stats: stats.group(&format!("tcp.{}", t.stat_prefix), ts::NAMES),
            clusters: split,
            total,
            // Envoy's default idle timeout is one hour.
            idle_timeout: Some(Duration::from_millis(
                t.idle_timeout_ms.unwrap_or(3_600_000),
            ))
            .filter(|d| !d.is_zero()),
        })
    }

    /// The cluster for one connection: a weighted random pick (the only one, unsplit).
    fn pick(&self) -> &Arc<ClusterRt> {
        let r = fastrand::u64(..self.total);
        let i = self.clusters.partition_point(|(cum, _)| *cum <= r);
        &self.clusters[i.min(self.clusters.len() - 1)].1
    }
}

/// Proxy one downstream connection to the cluster until both sides close, or
/// until `drain_time` after `drain` flips. A byte stream has no way to ask its
/// client to go away, so a draining connection keeps copying for the drain
/// time, then is closed, as Envoy closes a draining filter chain's remaining
/// connections when `--drain-time-s` ends (its `tcp_proxy` ignores the drain).
pub async fn proxy<S: DownstreamIo>(
    down: S,
    t: &TcpRt,
    drain: watch::Receiver<bool>,
    drain_time: Duration,
) {
    t.stats.inc(ts::CX_TOTAL);
    t.stats.inc(ts::CX_ACTIVE);
    run(down, t, drain, drain_time).await;
    t.stats.dec(ts::CX_ACTIVE);
}

async fn run<S: DownstreamIo>(
    down: S,
    t: &TcpRt,
    mut drain: watch::Receiver<bool>,
    drain_time: Duration,
) {
    let cluster = t.pick();
    let Some(ep) = cluster.lb.pick(&Default::default()) else {
        cluster.stats.inc(cs::NONE_HEALTHY);
        t.stats.inc(ts::NO_ROUTE);
        return;
    };
    // Held until both directions close; over the limit the connection is refused.
    let Some(_cx) = cluster.breakers.try_acquire(Limit::Connections) else {
        return;
    };
    let Ok(up) = cluster.dial(&ep).await else {
        cluster.record_outcome(&ep, Outcome::ConnectFailure);
        return;
    };
    ep.active.fetch_add(1, Ordering::Relaxed);
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    // Bytes read downstream are sent upstream and vice versa: count each read twice.
    let mut down = Counted {
        io: down,
        rx: [(&t.stats, ts::RX_BYTES), (&cluster.stats, cs::TX_BYTES)],
        last: &last,
        start,
    };
    let mut up = Counted {
        io: up,
        rx: [(&cluster.stats, cs::RX_BYTES), (&t.stats, ts::TX_BYTES)],
        last: &last,
        start,
    };
    let copy = tokio::io::copy_bidirectional(&mut down, &mut up);
    let idle = async {
        let Some(idle) = t.idle_timeout else {
            return std::future::pending().await;
        };
        loop {
            let since = start.elapsed() - Duration::from_millis(last.load(Ordering::Relaxed));
            if since >= idle {
                return;
            }
            tokio::time::sleep(idle - since).await;
        }
    };
    let drain_over = async {
        drained(&mut drain).await;
        tokio::time::sleep(drain_time).await;
    };
    tokio::select! {
        _ = copy => {}
        _ = idle => t.stats.inc(ts::IDLE_TIMEOUT),
        _ = drain_over => {}
    }
    ep.active.fetch_sub(1, Ordering::Relaxed);
}

/// A stream that counts bytes read from it and notes when it was last active.
struct Counted<'a, S> {
    io: S,
    rx: [(&'a StatGroup, usize); 2],
    last: &'a AtomicU64,
    start: Instant,
}

impl<S> Counted<'_, S> {
    fn touch(&self) {
        self.last
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<'_, S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            for (g, i) in this.rx {
                g.add(i, n as u64);
            }
            this.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<'_, S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = r {
            if n > 0 {
                this.touch();
            }
        }
        r
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
