//! Per-cluster upstream connection pools: HTTP/1.1 keep-alive connections kept
//! in a LIFO idle stack per endpoint and worker (checked back in the moment a
//! response body ends, no task per request), HTTP/2 as one multiplexed connection
//! per endpoint and worker, reconnected when it dies. Requests a dead pooled
//! connection never sent are retried on another. Connections are TLS when the
//! cluster says so.
//!
//! The keep-alive race (an upstream closing an idle connection just as a request
//! is written to it, istio/istio#13205) is fought twice: a connection is dropped
//! before the idle time the upstream announced (`Keep-Alive: timeout=N`) runs out,
//! and a reused connection that breaks before any response byte reports
//! `UpstreamError::Stale`, which the forwarder re-sends on a fresh connection
//! when the request body can be replayed.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response, Uri};
use hyper::body::{Body, Incoming};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::config::Http2Keepalive;
use crate::http::body::UpstreamBody;
use crate::http::conn_timers::{Activity, ConnTimers, ReadStamped, HYPER_PING_TIMEOUT};
use crate::http::ProxyBody;
use crate::stats::cluster as cs;
use crate::tls::UpstreamStream;
use crate::upstream::breaker::{Limit, Permit};
use crate::upstream::cluster::ClusterRt;
use crate::upstream::lb::EndpointRt;

/// Tries per request when pooled connections turn out dead before sending.
const ATTEMPTS: usize = 3;

/// Why a request got no upstream response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    /// The cluster has no endpoints.
    NoHealthy,
    /// TCP connect or the TLS handshake failed or timed out.
    ConnectFail,
    /// The connection broke before response headers.
    Reset,
    /// The downstream request body was malformed (bad chunking) or cut short.
    BadRequestBody,
    /// A reused HTTP/1.1 connection closed before any response byte: most likely
    /// the upstream's idle timeout raced our request. Safe to re-send on a fresh
    /// connection when the body is replayable.
    Stale,
    /// A circuit breaker refused a new connection.
    Overflow,
}

/// The peer reset or closed the socket under our write: what a request written
/// to a connection the upstream just closed gets.
fn peer_reset(e: &hyper::Error) -> bool {
    let io = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>());
    io.is_some_and(|io| {
        matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        )
    })
}

/// Sort a failed send: our own request body failing is the client's fault; a
/// reused connection closing before any response byte is stale.
fn send_error(e: &hyper::Error, reused: bool) -> UpstreamError {
    if reused && (e.is_incomplete_message() || peer_reset(e)) {
        return UpstreamError::Stale;
    }
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if s.is::<hyper::Error>() {
            return UpstreamError::BadRequestBody;
        }
        src = s.source();
    }
    UpstreamError::Reset
}

impl ClusterRt {
    /// Send `req` to `ep`. `authority` becomes HTTP/2's `:authority`; HTTP/1.1
    /// requests carry the `host` header the caller set.
    /// `fresh` skips idle connections (a re-send after `UpstreamError::Stale`).
    pub async fn send(
        &self,
        ep: &Arc<EndpointRt>,
        mut req: Request<UpstreamBody>,
        authority: Option<http::uri::Authority>,
        fresh: bool,
    ) -> Result<Response<ProxyBody>, UpstreamError> {
        if self.config.http2 {
            let mut parts = http::uri::Parts::default();
            parts.scheme = Some(if self.tls.is_some() {
                http::uri::Scheme::HTTPS
            } else {
                http::uri::Scheme::HTTP
            });
            parts.authority = Some(authority.unwrap_or_else(|| ep.authority.clone()));
            parts.path_and_query = req
                .uri()
                .path_and_query()
                .cloned()
                .or(Some(http::uri::PathAndQuery::from_static("/")));
            *req.uri_mut() = Uri::from_parts(parts).map_err(|_| UpstreamError::Reset)?;
            *req.version_mut() = http::Version::HTTP_2;
            req.headers_mut().remove(http::header::HOST);
            self.send_h2(ep, req)
                .await
                .map(|r| r.map(ProxyBody::Stream))
        } else {
            if req.uri().authority().is_some() {
                // Origin-form on the wire: `GET /path HTTP/1.1`.
                let pq = req
                    .uri()
                    .path_and_query()
                    .cloned()
                    .unwrap_or(http::uri::PathAndQuery::from_static("/"));
                *req.uri_mut() = Uri::from(pq);
            }
            *req.version_mut() = http::Version::HTTP_11;
            // hyper only chunks bodies of methods that usually carry one; a
            // GET with a body of unknown length must say so itself.
            let b = req.body();
            let framed = req.headers().contains_key(http::header::CONTENT_LENGTH);
            if !b.is_end_stream() && b.size_hint().exact().is_none() && !framed {
                req.headers_mut().insert(
                    http::header::TRANSFER_ENCODING,
                    http::HeaderValue::from_static("chunked"),
                );
            } else if b.is_end_stream() && !framed && req.method() == http::Method::OPTIONS {
                // Envoy frames an empty OPTIONS explicitly (hyper already does so
                // for POST, PUT and PATCH).
                req.headers_mut().insert(
                    http::header::CONTENT_LENGTH,
                    http::HeaderValue::from_static("0"),
                );
            }
            self.send_h1(ep, req, fresh).await
        }
    }

    async fn send_h1(
        &self,
        ep: &Arc<EndpointRt>,
        mut req: Request<UpstreamBody>,
        fresh: bool,
    ) -> Result<Response<ProxyBody>, UpstreamError> {
        for attempt in 0..ATTEMPTS {
            let pooled = if !fresh && attempt + 1 < ATTEMPTS {
                ep.h1.checkout()
            } else {
                None
            };
            let reused = pooled.is_some();
            let (mut sender, permit) = match pooled {
                Some(c) => c,
                None => self.h1_connect(ep).await?,
            };
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let ret = PoolReturn {
                        conn: (sender, permit),
                        ep: ep.clone(),
                        max_idle: self.max_idle,
                        idle_for: keep_alive_budget(resp.headers(), self.idle_timeout),
                    };
                    if resp.body().is_end_stream() {
                        ret.give_back();
                        return Ok(resp.map(ProxyBody::Stream));
                    }
                    return Ok(resp.map(|b| ProxyBody::Pooled(b, Some(ret))));
                }
                Err(mut e) => match e.take_message() {
                    Some(r) => req = r,
                    None => return Err(send_error(e.error(), reused)),
                },
            }
        }
        Err(UpstreamError::Reset)
    }

    async fn send_h2(
        &self,
        ep: &EndpointRt,
        mut req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        for _ in 0..ATTEMPTS {
            let mut sender = self.h2_sender(ep).await?;
            if sender.ready().await.is_err() {
                ep.h2.clear();
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(r) => return Ok(r),
                Err(mut e) => match e.take_message() {
                    Some(r) => {
                        ep.h2.clear();
                        req = r;
                    }
                    None => return Err(send_error(e.error(), false)),
                },
            }
        }
        Err(UpstreamError::Reset)
    }

    /// A new connection to `ep`, through the TLS handshake when the cluster
    /// originates TLS; the connect timeout covers both, as Envoy's does.
    /// TCP to `addr`, then TLS when the cluster originates it; no timeout, no
    /// stats (health checks use it too, and Envoy does not count them as traffic).
    pub(crate) async fn connect(&self, addr: SocketAddr) -> std::io::Result<UpstreamStream> {
        let tcp = TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        Ok(match &self.tls {
            None => UpstreamStream::Plain(tcp),
            Some(tls) => UpstreamStream::Tls(Box::new(tls.connect(tcp, addr.ip()).await?)),
        })
    }

    pub(crate) async fn dial(&self, ep: &EndpointRt) -> Result<UpstreamStream, UpstreamError> {
        let stream = match tokio::time::timeout(self.connect_timeout, self.connect(ep.addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(_)) => return Err(self.connect_failed(ep, false)),
            Err(_) => return Err(self.connect_failed(ep, true)),
        };
        self.stats.inc(cs::CX_TOTAL);
        Ok(stream)
    }

    /// A new connection, or, at the connection limit, the first one to free up
    /// while this request waits as pending (Envoy's `max_pending_requests`).
    /// The caller's timeout bounds the wait.
    async fn h1_connect(&self, ep: &Arc<EndpointRt>) -> Result<H1Conn, UpstreamError> {
        if let Some(permit) = self.breakers.try_acquire(Limit::Connections) {
            return self.h1_dial(ep, permit).await;
        }
        let _pending = self
            .breakers
            .try_acquire(Limit::Pending)
            .ok_or(UpstreamError::Overflow)?;
        self.stats.inc(cs::RQ_PENDING_TOTAL);
        loop {
            let freed = self.breakers.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(c) = ep.h1.checkout() {
                return Ok(c);
            }
            if let Some(permit) = self.breakers.try_acquire(Limit::Connections) {
                return self.h1_dial(ep, permit).await;
            }
            freed.await;
        }
    }

    async fn h1_dial(&self, ep: &EndpointRt, permit: Permit) -> Result<H1Conn, UpstreamError> {
        let stream = self.dial(ep).await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|_| UpstreamError::Reset)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok((sender, permit))
    }

    async fn h2_sender(
        &self,
        ep: &EndpointRt,
    ) -> Result<http2::SendRequest<UpstreamBody>, UpstreamError> {
        if let Some(s) = ep.h2.current() {
            return Ok(s);
        }
        let _one_dialer = ep.h2.mine().connecting.lock().await;
        if let Some(s) = ep.h2.current() {
            return Ok(s);
        }
        let permit = self
            .breakers
            .try_acquire(Limit::Connections)
            .ok_or(UpstreamError::Overflow)?;
        let stream = self.dial(ep).await?;
        let keepalive = self.config.http2_keepalive.unwrap_or(DEFAULT_H2_KEEPALIVE);
        let interval = keepalive.jittered_interval();
        let timers = ConnTimers {
            keepalive: interval.map(|i| i + Duration::from_millis(keepalive.timeout_ms)),
            ..ConnTimers::default()
        };
        let activity = Activity::new();
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .initial_stream_window_size(1 << 20)
            .initial_connection_window_size(4 << 20)
            .keep_alive_interval(interval)
            .keep_alive_while_idle(true)
            // `timers` closes a silent connection (and counts it); hyper only PINGs.
            .keep_alive_timeout(HYPER_PING_TIMEOUT)
            .handshake(TokioIo::new(ReadStamped::new(stream, activity.clone())))
            .await
            .map_err(|_| self.connect_failed(ep, false))?;
        let stats = self.stats.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = timers.expired(&activity) => {
                    stats.inc(cs::H2_KEEPALIVE_TIMEOUT);
                    activity.abort();
                    let _ = conn.await;
                }
            }
            drop(permit);
        });
        ep.h2.store(sender.clone());
        Ok(sender)
    }

    fn connect_failed(&self, ep: &EndpointRt, timeout: bool) -> UpstreamError {
        self.stats.inc(cs::CX_CONNECT_FAIL);
        if timeout {
            self.stats.inc(cs::CX_CONNECT_TIMEOUT);
        }
        ep.cx_connect_fail.fetch_add(1, Ordering::Relaxed);
        UpstreamError::ConnectFail
    }
}

/// Upstream HTTP/2 keepalive without `connection_keepalive`: ours, not Envoy's
/// (which sends none): it finds dead upstream connections before requests do.
const DEFAULT_H2_KEEPALIVE: Http2Keepalive = Http2Keepalive {
    interval_ms: 30_000,
    timeout_ms: 20_000,
    interval_jitter_percent: 15.0,
};

/// An HTTP/1.1 connection and its slot under the cluster's connection limit.
type H1Conn = (http1::SendRequest<UpstreamBody>, Permit);

/// An idle connection, with the moment it must no longer be reused.
struct Idle {
    conn: H1Conn,
    expires: Instant,
}

impl std::fmt::Debug for Idle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idle")
            .field("expires", &self.expires)
            .finish()
    }
}

/// Idle HTTP/1.1 connections to one endpoint, most recently used last, one
/// stack per worker thread so a connection stays on the thread that drives it.
#[derive(Debug)]
pub struct H1Idle {
    per_worker: Box<[Mutex<Vec<Idle>>]>,
}

impl Default for H1Idle {
    fn default() -> Self {
        let n = crate::engine::worker_slots();
        H1Idle {
            per_worker: (0..n).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }
}

impl H1Idle {
    fn mine(&self) -> &Mutex<Vec<Idle>> {
        &self.per_worker[crate::engine::worker_index() % self.per_worker.len()]
    }

    fn checkout(&self) -> Option<H1Conn> {
        let mut idle = self.mine().lock().unwrap();
        let now = Instant::now();
        while let Some(i) = idle.pop() {
            if !i.conn.0.is_closed() && now < i.expires {
                return Some(i.conn);
            }
        }
        None
    }

    fn checkin(&self, conn: H1Conn, max_idle: usize, idle_for: Duration) {
        if conn.0.is_closed() {
            return;
        }
        let mut idle = self.mine().lock().unwrap();
        if idle.len() < max_idle {
            idle.push(Idle {
                conn,
                expires: Instant::now() + idle_for,
            });
        }
    }

    /// Connections currently idle, over all workers.
    pub fn len(&self) -> usize {
        self.per_worker
            .iter()
            .map(|m| m.lock().unwrap().len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How long a connection may sit idle: the cluster's idle timeout, but never
/// as long as the upstream said it would keep the connection (`Keep-Alive:
/// timeout=N`): we give it up a second early (or at half, for short ones).
fn keep_alive_budget(headers: &http::HeaderMap, cluster_idle: Duration) -> Duration {
    let announced = headers
        .get("keep-alive")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',').find_map(|p| {
                let (k, n) = p.trim().split_once('=')?;
                k.eq_ignore_ascii_case("timeout")
                    .then(|| n.trim().parse::<u64>().ok())?
            })
        });
    match announced {
        Some(secs) => {
            let t = Duration::from_secs(secs);
            cluster_idle.min(t.saturating_sub(Duration::from_secs(1)).max(t / 2))
        }
        None => cluster_idle,
    }
}

/// Hands an HTTP/1.1 connection back to its endpoint's idle stack once the
/// response body it carries has been read to the end.
#[derive(Debug)]
pub struct PoolReturn {
    conn: H1Conn,
    ep: Arc<EndpointRt>,
    max_idle: usize,
    idle_for: Duration,
}

impl PoolReturn {
    pub fn give_back(self) {
        let wake = self.conn.1.pending_waker().cloned();
        self.ep.h1.checkin(self.conn, self.max_idle, self.idle_for);
        if let Some(w) = wake {
            w.notify_waiters();
        }
    }
}

/// The live HTTP/2 connection to one endpoint per worker thread, if any: as
/// Envoy's per-worker pools, a request is multiplexed on a connection its own
/// worker drives, so neither the request nor its response crosses threads.
#[derive(Debug)]
pub struct H2Slot {
    per_worker: Box<[WorkerH2]>,
}

#[derive(Debug, Default)]
struct WorkerH2 {
    current: Mutex<Option<http2::SendRequest<UpstreamBody>>>,
    connecting: tokio::sync::Mutex<()>,
}

impl Default for H2Slot {
    fn default() -> Self {
        let n = crate::engine::worker_slots();
        H2Slot {
            per_worker: (0..n).map(|_| WorkerH2::default()).collect(),
        }
    }
}

impl H2Slot {
    fn mine(&self) -> &WorkerH2 {
        &self.per_worker[crate::engine::worker_index() % self.per_worker.len()]
    }
    fn current(&self) -> Option<http2::SendRequest<UpstreamBody>> {
        let g = self.mine().current.lock().unwrap();
        g.as_ref().filter(|s| !s.is_closed()).cloned()
    }
    fn store(&self, s: http2::SendRequest<UpstreamBody>) {
        *self.mine().current.lock().unwrap() = Some(s);
    }
    fn clear(&self) {
        *self.mine().current.lock().unwrap() = None;
    }
}
