//! Sending one routed request upstream: circuit breakers, host selection,
//! attempts with per-try and route timeouts, Envoy's retry rules with jittered
//! back-off and the retry breaker/budget, the keep-alive-race re-send, outlier
//! reporting, and fire-and-forget mirrors. Returns the upstream response, or
//! the local reply that replaces it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::uri::Authority;
use http::{request, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::http::action::{AttemptEnd, ForwardRt};
use crate::http::body::{self, Replayer, UpstreamBody};
use crate::http::{local_reply, ProxyBody};
use crate::stats::{cluster as cs, http as hs, route as rs, StatGroup};
use crate::upstream::breaker::{Limit, Permit};
use crate::upstream::lb::{EndpointRt, PickCtx};
use crate::upstream::outlier::Outcome;
use crate::upstream::{ClusterRt, UpstreamError};

// Envoy 1.40's words, checked against the real binary by tests/differential.
const CONNECT_FAILURE: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure";
const CONNECT_RESET: &str = "upstream connect error or disconnect/reset before headers. reset reason: connection termination";
const OVERFLOW: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: overflow";
const NO_HEALTHY: &str = "no healthy upstream";
const TIMEOUT: &str = "upstream request timeout";
const IDLE_TIMEOUT: &str = "stream timeout";
const MAX_DURATION: &str = "downstream duration timeout";

/// Everything about the request except its body: enough to send it again.
struct Head {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
}

impl Head {
    fn of(p: &request::Parts) -> Self {
        Head {
            method: p.method.clone(),
            uri: p.uri.clone(),
            version: p.version,
            headers: p.headers.clone(),
        }
    }

    fn request(&self, body: UpstreamBody) -> Request<UpstreamBody> {
        let mut r = Request::new(body);
        *r.method_mut() = self.method.clone();
        *r.uri_mut() = self.uri.clone();
        *r.version_mut() = self.version;
        *r.headers_mut() = self.headers.clone();
        r
    }
}

/// What the route and request say about this upstream call.
pub struct Call<'a> {
    pub cluster: &'a Arc<ClusterRt>,
    pub fwd: &'a ForwardRt,
    pub route_stats: &'a StatGroup,
    /// The connection manager's stats (`http.<stat_prefix>.*`).
    pub http_stats: &'a StatGroup,
    pub hash: Option<u64>,
    pub authority: Option<Authority>,
    /// Stream idle timeout in force (the route's, else the connection manager's).
    pub idle: Option<Duration>,
    /// When the request started (max stream duration counts from here).
    pub started: Instant,
}

/// The deadlines an attempt races, besides its own per-try timeout.
#[derive(Clone, Copy)]
struct Deadlines {
    route: Option<Instant>,
    /// No response headers by then: the stream idled out.
    idle: Option<Instant>,
    stream: Option<Instant>,
}

/// How an attempt ended, before retry policy looks at it.
#[allow(clippy::large_enum_variant)] // lives on the stack of one request, never stored
enum Attempt {
    Response(Response<ProxyBody>),
    Failed(UpstreamError),
    PerTryTimeout,
    /// The route timeout, the stream idle timeout or the max stream duration:
    /// the whole request is over, whatever retry policy says.
    Over(Deadline),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Deadline {
    Route,
    Idle,
    Stream,
}

impl Call<'_> {
    /// `Ok`: the upstream's response; `Err`: the local reply replacing it.
    #[allow(clippy::result_large_err)] // both sides are a response, of equal size
    pub async fn send(
        self,
        parts: request::Parts,
        body: Incoming,
    ) -> Result<Response<ProxyBody>, Response<ProxyBody>> {
        let Call {
            cluster,
            fwd,
            route_stats: rstats,
            http_stats,
            hash,
            authority,
            idle,
            started,
        } = self;
        let Some(_active) = cluster.breakers.try_acquire(Limit::Requests) else {
            return Err(overloaded());
        };
        cluster.stats.inc(cs::RQ_TOTAL);
        rstats.inc(rs::RQ_TOTAL);
        let deadlines = Deadlines {
            route: fwd.timeout.map(|t| started + t),
            idle: idle.map(|t| started + t),
            stream: fwd.max_stream_duration.map(|t| started + t),
        };
        let route_deadline = deadlines.route;
        let retry = fwd.retry.as_ref().filter(|r| r.num_retries > 0);
        let (first_body, replayer) = body::split(body, retry.is_some() || !fwd.mirrors.is_empty());
        // A replayable request keeps its head for retries and the stale-connection re-send.
        let head = replayer.as_ref().map(|_| Head::of(&parts));
        if let (Some(head), Some(replayer)) = (&head, &replayer) {
            for (mirror, share) in &fwd.mirrors {
                if share.roll() {
                    shadow(mirror, head, replayer, hash, fwd.timeout);
                }
            }
        }

        let mut req = Request::from_parts(parts, first_body);
        let mut tried: Vec<Arc<EndpointRt>> = Vec::new();
        let mut retries = 0u32;
        let mut fresh = false;
        let mut _retry_permit: Option<Permit> = None;
        loop {
            let avoid: &[Arc<EndpointRt>] = match retry {
                Some(r) if r.avoid_previous_hosts => &tried,
                _ => &[],
            };
            let Some(ep) = cluster.lb.pick(&PickCtx { hash, avoid }) else {
                cluster.stats.inc(cs::NONE_HEALTHY);
                return Err(local_reply(StatusCode::SERVICE_UNAVAILABLE, NO_HEALTHY));
            };
            let per_try = retry.and_then(|r| r.per_try_timeout);
            let attempt = attempt(
                cluster,
                &ep,
                req,
                authority.clone(),
                fresh,
                per_try,
                deadlines,
            )
            .await;
            fresh = false;
            cluster.record_outcome(&ep, outcome(&attempt));
            let end = match &attempt {
                Attempt::Response(r) => AttemptEnd::Response {
                    status: r.status().as_u16(),
                    headers: r.headers(),
                },
                Attempt::Failed(UpstreamError::ConnectFail) => AttemptEnd::ConnectFailure,
                Attempt::Failed(UpstreamError::Stale) => {
                    // The keep-alive race: re-send once on a fresh connection, not a retry.
                    if let (Some(head), Some(b)) =
                        (&head, replayer.as_ref().and_then(Replayer::retry))
                    {
                        req = head.request(b);
                        fresh = true;
                        continue;
                    }
                    AttemptEnd::Reset
                }
                Attempt::Failed(_) => AttemptEnd::Reset,
                Attempt::PerTryTimeout => AttemptEnd::PerTryTimeout,
                Attempt::Over(why) => return Err(over(cluster, rstats, http_stats, *why)),
            };
            if matches!(attempt, Attempt::PerTryTimeout) {
                cluster.stats.inc(cs::RQ_PER_TRY_TIMEOUT);
            }
            let wants = retry.is_some_and(|r| r.wants_retry(end));
            if !wants {
                if retries > 0 && matches!(&attempt, Attempt::Response(_)) {
                    cluster.stats.inc(cs::RQ_RETRY_SUCCESS);
                }
                return finish(cluster, rstats, attempt);
            }
            let r = retry.expect("wants_retry needs a policy");
            if retries >= r.num_retries {
                cluster.stats.inc(cs::RQ_RETRY_LIMIT_EXCEEDED);
                return finish(cluster, rstats, attempt);
            }
            let (Some(head), Some(next_body)) =
                (&head, replayer.as_ref().and_then(Replayer::retry))
            else {
                // The body was too large to keep: this request cannot be re-sent.
                cluster.stats.inc(cs::RETRY_OR_SHADOW_ABANDONED);
                return finish(cluster, rstats, attempt);
            };
            let Some(permit) = cluster.breakers.try_acquire(Limit::Retries) else {
                return finish(cluster, rstats, attempt);
            };
            _retry_permit = Some(permit);
            drop(attempt);
            retries += 1;
            cluster.stats.inc(cs::RQ_RETRY);
            let backoff = r.backoff(retries);
            if !backoff.is_zero() {
                cluster.stats.inc(cs::RQ_RETRY_BACKOFF);
                if route_deadline.is_some_and(|d| Instant::now() + backoff >= d) {
                    return Err(over(cluster, rstats, http_stats, Deadline::Route));
                }
                tokio::time::sleep(backoff).await;
            }
            if r.avoid_previous_hosts {
                tried.push(ep);
            }
            req = head.request(next_body);
        }
    }
}

/// One attempt on `ep`, bounded by the per-try timeout and the request's deadlines.
async fn attempt(
    cluster: &ClusterRt,
    ep: &Arc<EndpointRt>,
    req: Request<UpstreamBody>,
    authority: Option<Authority>,
    fresh: bool,
    per_try: Option<Duration>,
    d: Deadlines,
) -> Attempt {
    ep.active.fetch_add(1, Ordering::Relaxed);
    ep.rq_total.fetch_add(1, Ordering::Relaxed);
    // The earliest deadline wins; on a tie the request-wide one says why.
    let first = [
        (d.route, Some(Deadline::Route)),
        (d.idle, Some(Deadline::Idle)),
        (d.stream, Some(Deadline::Stream)),
        (per_try.map(|t| Instant::now() + t), None),
    ]
    .into_iter()
    .filter_map(|(at, why)| at.map(|at| (at, why)))
    .min_by_key(|(at, _)| *at);
    let sent = cluster.send(ep, req, authority, fresh);
    let result = match first {
        Some((at, why)) => match tokio::time::timeout_at(at, sent).await {
            Ok(r) => r,
            Err(_) => {
                ep.rq_error.fetch_add(1, Ordering::Relaxed);
                ep.active.fetch_sub(1, Ordering::Relaxed);
                return why.map_or(Attempt::PerTryTimeout, Attempt::Over);
            }
        },
        None => sent.await,
    };
    ep.active.fetch_sub(1, Ordering::Relaxed);
    match result {
        Ok(r) => {
            if r.status().is_server_error() {
                ep.rq_error.fetch_add(1, Ordering::Relaxed);
            }
            Attempt::Response(r)
        }
        Err(e) => {
            ep.rq_error.fetch_add(1, Ordering::Relaxed);
            Attempt::Failed(e)
        }
    }
}

fn outcome(a: &Attempt) -> Outcome {
    match a {
        Attempt::Response(r) => Outcome::Status(r.status().as_u16()),
        Attempt::Failed(UpstreamError::ConnectFail) => Outcome::ConnectFailure,
        Attempt::Failed(_) => Outcome::Reset,
        Attempt::PerTryTimeout | Attempt::Over(_) => Outcome::Timeout,
    }
}

/// The last attempt's response, or the local reply standing for its failure.
#[allow(clippy::result_large_err)] // both sides are a response, of equal size
fn finish(
    cluster: &ClusterRt,
    rstats: &StatGroup,
    a: Attempt,
) -> Result<Response<ProxyBody>, Response<ProxyBody>> {
    let r = match a {
        Attempt::Response(r) => {
            let status = r.status().as_u16();
            cluster.stats.inc_class(cs::RQ_2XX, status);
            rstats.inc_class(rs::RQ_2XX, status);
            return Ok(r);
        }
        Attempt::Failed(UpstreamError::ConnectFail) => {
            local_reply(StatusCode::SERVICE_UNAVAILABLE, CONNECT_FAILURE)
        }
        Attempt::Failed(UpstreamError::NoHealthy) => {
            cluster.stats.inc(cs::NONE_HEALTHY);
            local_reply(StatusCode::SERVICE_UNAVAILABLE, NO_HEALTHY)
        }
        Attempt::Failed(UpstreamError::BadRequestBody) => local_reply(StatusCode::BAD_REQUEST, ""),
        Attempt::Failed(UpstreamError::Overflow) => overloaded(),
        Attempt::Failed(UpstreamError::Reset | UpstreamError::Stale) => {
            cluster.stats.inc(cs::RQ_RESET);
            local_reply(StatusCode::SERVICE_UNAVAILABLE, CONNECT_RESET)
        }
        Attempt::PerTryTimeout | Attempt::Over(_) => {
            cluster.stats.inc(cs::RQ_TIMEOUT);
            rstats.inc(rs::RQ_TIMEOUT);
            local_reply(StatusCode::GATEWAY_TIMEOUT, TIMEOUT)
        }
    };
    cluster.stats.inc_class(cs::RQ_2XX, r.status().as_u16());
    rstats.inc_class(rs::RQ_2XX, r.status().as_u16());
    Err(r)
}

/// The local reply when a request-wide deadline passed before response headers.
fn over(
    cluster: &ClusterRt,
    rstats: &StatGroup,
    http_stats: &StatGroup,
    why: Deadline,
) -> Response<ProxyBody> {
    let r = match why {
        Deadline::Route => {
            cluster.stats.inc(cs::RQ_TIMEOUT);
            rstats.inc(rs::RQ_TIMEOUT);
            local_reply(StatusCode::GATEWAY_TIMEOUT, TIMEOUT)
        }
        Deadline::Idle => {
            http_stats.inc(hs::RQ_IDLE_TIMEOUT);
            local_reply(StatusCode::GATEWAY_TIMEOUT, IDLE_TIMEOUT)
        }
        Deadline::Stream => {
            cluster.stats.inc(cs::RQ_MAX_DURATION);
            http_stats.inc(hs::RQ_MAX_DURATION);
            local_reply(StatusCode::GATEWAY_TIMEOUT, MAX_DURATION)
        }
    };
    cluster.stats.inc_class(cs::RQ_2XX, r.status().as_u16());
    rstats.inc_class(rs::RQ_2XX, r.status().as_u16());
    r
}

/// Envoy's answer when a circuit breaker is open.
fn overloaded() -> Response<ProxyBody> {
    let mut r = local_reply(StatusCode::SERVICE_UNAVAILABLE, OVERFLOW);
    r.headers_mut()
        .insert("x-envoy-overloaded", HeaderValue::from_static("true"));
    r
}

/// Send a copy of the request to `mirror` and forget it: its result, its
/// timing and its failures never reach the primary. Envoy marks the copy by
/// suffixing the host with `-shadow`.
fn shadow(
    mirror: &Arc<ClusterRt>,
    head: &Head,
    replayer: &Replayer,
    hash: Option<u64>,
    timeout: Option<Duration>,
) {
    let Some(body) = replayer.shadow() else {
        return;
    };
    let mut req = head.request(body);
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let shadow_host = shadow_host(&host);
    let authority = Authority::try_from(shadow_host.as_str()).ok();
    if let Ok(v) = HeaderValue::from_str(&shadow_host) {
        req.headers_mut().insert(http::header::HOST, v);
    }
    let mirror = mirror.clone();
    tokio::spawn(async move {
        let Some(ep) = mirror.lb.pick(&PickCtx { hash, avoid: &[] }) else {
            mirror.stats.inc(cs::NONE_HEALTHY);
            return;
        };
        mirror.stats.inc(cs::RQ_TOTAL);
        let sent = mirror.send(&ep, req, authority, false);
        let result = match timeout {
            Some(t) => tokio::time::timeout(t, sent).await.ok(),
            None => Some(sent.await),
        };
        match result {
            Some(Ok(resp)) => {
                mirror.stats.inc_class(cs::RQ_2XX, resp.status().as_u16());
                // Read (and drop) the body so an HTTP/1.1 connection can go back to the pool.
                let mut b = resp.into_body();
                while let Some(Ok(_)) = http_body_util::BodyExt::frame(&mut b).await {}
            }
            Some(Err(_)) => mirror.stats.inc(cs::RQ_RESET),
            None => mirror.stats.inc(cs::RQ_TIMEOUT),
        }
    });
}

/// `a.com:8080` -> `a.com-shadow:8080`.
fn shadow_host(host: &str) -> String {
    let bare = crate::http::router::strip_port(host);
    format!("{bare}-shadow{}", &host[bare.len()..])
}

#[cfg(test)]
mod tests {
    #[test]
    fn shadow_host_keeps_the_port() {
        assert_eq!(super::shadow_host("a.com:8080"), "a.com-shadow:8080");
        assert_eq!(super::shadow_host("a.com"), "a.com-shadow");
    }
}
