//! One downstream HTTP connection: hyper-util's auto server (HTTP/1.1 with
//! keep-alive and pipelining, or h2c by preface sniff), limits, graceful drain,
//! and the per-request proxy pipeline: route, filters, upstream, headers, stats.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::config::{CodecType, HttpConnectionManager};
use crate::http::filter::{FilterChain, FilterCtx};
use crate::http::headers::{self as hdr, HeaderOps};
use crate::http::router::{ActionRt, RouteInput, RouteTable};
use crate::http::{local_reply, ProxyBody};
use crate::listener::{ListenerHandle, ListenerKind};
use crate::stats::{cluster as cs, http as hs, route as rs, Registry, StatGroup};
use crate::upstream::{ClusterRt, UpstreamError};

// Envoy 1.40's words, checked against the real binary by tests/differential.
const CONNECT_FAILURE: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure";
const CONNECT_RESET: &str = "upstream connect error or disconnect/reset before headers. reset reason: connection termination";
const NO_HEALTHY: &str = "no healthy upstream";
const TIMEOUT: &str = "upstream request timeout";

/// An `http_connection_manager` compiled for one snapshot.
#[derive(Debug)]
pub struct HttpRt {
    pub stats: Arc<StatGroup>,
    pub routes: RouteTable,
    pub filters: FilterChain,
    server_name: HeaderValue,
    max_headers_count: usize,
    use_remote_address: bool,
    builder: auto::Builder<TokioExecutor>,
}

impl HttpRt {
    pub fn compile(
        hcm: &HttpConnectionManager,
        clusters: &std::collections::HashMap<String, Arc<ClusterRt>>,
        stats: &Registry,
    ) -> Result<Self, String> {
        let routes =
            RouteTable::compile(&hcm.route_config, clusters, stats, hcm.strip_any_host_port)?;
        let filters = FilterChain::compile(&hcm.http_filters, stats, &hcm.stat_prefix)?;
        let server_name = HeaderValue::from_str(&hcm.server_name).map_err(|_| {
            format!(
                "http {}: bad server_name {:?}",
                hcm.stat_prefix, hcm.server_name
            )
        })?;
        let header_bytes = (hcm.max_request_headers_kb as usize)
            .saturating_mul(1024)
            .max(1024);
        // hyper's one HTTP/1.1 timer runs while it waits for request headers,
        // idle keep-alive time included: it serves both limits. Unset = no timer
        // (Envoy's 1 h idle default is not worth a timer reset per request).
        let h1_read_timeout = match (hcm.request_headers_timeout_ms, hcm.idle_timeout_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder = match hcm.codec_type {
            CodecType::Auto => builder,
            CodecType::Http1 => builder.http1_only(),
            CodecType::Http2 => builder.http2_only(),
        };
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(h1_read_timeout)
            .max_buf_size(header_bytes.max(8192))
            .max_headers(hcm.max_request_headers_count as usize);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(header_bytes as u32)
            .max_concurrent_streams(hcm.max_concurrent_streams.unwrap_or(1 << 20))
            .initial_stream_window_size(1 << 20)
            .initial_connection_window_size(4 << 20);
        Ok(HttpRt {
            stats: stats.group(&format!("http.{}", hcm.stat_prefix), hs::NAMES),
            routes,
            filters,
            server_name,
            max_headers_count: hcm.max_request_headers_count as usize,
            use_remote_address: hcm.use_remote_address,
            builder,
        })
    }
}

struct ConnCtx {
    listener: Arc<ListenerHandle>,
    peer: SocketAddr,
}

/// Serve one HTTP connection until it closes, or until `drain` flips, then
/// shut it down gracefully (GOAWAY on h2, close once idle on HTTP/1.1).
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<ListenerHandle>,
    http: &HttpRt,
    mut drain: watch::Receiver<bool>,
) {
    let stats = http.stats.clone();
    stats.inc(hs::CX_TOTAL);
    stats.inc(hs::CX_ACTIVE);
    let ctx = Arc::new(ConnCtx { listener, peer });
    let svc = service_fn(move |req| {
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(handle(&ctx, req).await) }
    });
    let conn = http.builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let drained = tokio::select! {
        _ = conn.as_mut() => false,
        r = drain.wait_for(|d| *d) => r.is_ok(),
    };
    if drained {
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
    stats.dec(hs::CX_ACTIVE);
}

async fn handle(ctx: &ConnCtx, req: Request<Incoming>) -> Response<ProxyBody> {
    let lrt = ctx.listener.rt.load_full();
    let ListenerKind::Http(http) = &lrt.kind else {
        return local_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "listener is no longer http",
        );
    };
    let http: &HttpRt = http;
    http.stats.inc(hs::RQ_TOTAL);
    if req.version() == http::Version::HTTP_2 && req.headers().len() > http.max_headers_count {
        http.stats.inc(hs::TOO_LARGE);
        let mut r = local_reply(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "");
        r.headers_mut()
            .insert(header::SERVER, http.server_name.clone());
        http.stats.inc_class(hs::RQ_2XX, 431);
        return r;
    }
    http.stats.inc(hs::RQ_ACTIVE);
    let mut resp = route_and_forward(ctx, http, req).await;
    http.stats.dec(hs::RQ_ACTIVE);
    resp.headers_mut()
        .insert(header::SERVER, http.server_name.clone());
    http.stats.inc_class(hs::RQ_2XX, resp.status().as_u16());
    resp
}

async fn route_and_forward(
    ctx: &ConnCtx,
    http: &HttpRt,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let (mut parts, body) = req.into_parts();
    let downstream_h1 = parts.version != http::Version::HTTP_2;
    // Host: the URI authority (h2, absolute-form) or the Host header.
    let host: &str = match parts.uri.authority() {
        Some(a) => a.as_str(),
        None => parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or(""),
    };
    let Some(vh) = http.routes.vhost(host) else {
        http.stats.inc(hs::NO_ROUTE);
        return local_reply(StatusCode::NOT_FOUND, "");
    };
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let input = RouteInput {
        host,
        path: parts.uri.path(),
        method: &parts.method,
        path_and_query: pq,
        headers: &parts.headers,
    };
    let Some(route) = vh.route(&input) else {
        http.stats.inc(hs::NO_ROUTE);
        return local_reply(StatusCode::NOT_FOUND, "");
    };
    let mut fctx = FilterCtx::new(ctx.peer, Some(&vh.name), &route.filters);
    if !http.filters.is_empty() {
        if let Some(r) = http.filters.on_request(&mut fctx, &mut parts).await {
            return r;
        }
    }
    let response_ops = [&route.headers, &vh.headers, &http.routes.headers];
    let fwd = match &route.action {
        ActionRt::Direct { status, body } => {
            http.stats.inc(hs::DIRECT);
            let mut r = Response::new(if body.is_empty() {
                ProxyBody::empty()
            } else {
                ProxyBody::Full(Some(body.clone()))
            });
            *r.status_mut() = *status;
            if !body.is_empty() {
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            }
            if *status == StatusCode::CREATED || status.is_redirection() {
                // Envoy points `location` at the request's own URL.
                let host = parts.uri.authority().map(|a| a.as_str()).or_else(|| {
                    parts
                        .headers
                        .get(header::HOST)
                        .and_then(|h| h.to_str().ok())
                });
                let url = format!("http://{}{}", host.unwrap_or(""), parts.uri.path());
                if let Ok(v) = HeaderValue::from_str(&url) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
            }
            apply_response_ops(&response_ops, &mut r);
            return http.filters.respond(&fctx, r);
        }
        ActionRt::Forward(f) => f,
    };
    let cluster = &fwd.cluster;
    let Some(ep) = cluster.lb.pick(&Default::default()) else {
        cluster.stats.inc(cs::NONE_HEALTHY);
        let mut r = local_reply(StatusCode::SERVICE_UNAVAILABLE, NO_HEALTHY);
        apply_response_ops(&response_ops, &mut r);
        return http.filters.respond(&fctx, r);
    };

    // Upstream request headers.
    let h = &mut parts.headers;
    let authority = match &fwd.host_rewrite {
        Some(v) => {
            let original = parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                .or_else(|| h.get(header::HOST).cloned());
            if let Some(o) = original {
                h.insert(hdr::X_ORIGINAL_HOST.clone(), o);
            }
            h.insert(header::HOST, v.clone());
            http::uri::Authority::try_from(v.as_bytes()).ok()
        }
        None => {
            let a = parts.uri.authority().cloned();
            if let (Some(a), false) = (&a, h.contains_key(header::HOST)) {
                if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                    h.insert(header::HOST, v);
                }
            }
            a.or_else(|| {
                h.get(header::HOST)
                    .and_then(|v| http::uri::Authority::try_from(v.as_bytes()).ok())
            })
        }
    };
    hdr::remove_hop_by_hop(h);
    if !h.contains_key(&hdr::X_FORWARDED_PROTO) {
        h.insert(
            hdr::X_FORWARDED_PROTO.clone(),
            HeaderValue::from_static("http"),
        );
    }
    if !h.contains_key(&hdr::X_REQUEST_ID) {
        h.insert(hdr::X_REQUEST_ID.clone(), hdr::request_id());
    }
    if let Some(t) = &fwd.expected_timeout {
        h.insert(hdr::X_EXPECTED_TIMEOUT.clone(), t.clone());
    }
    if http.use_remote_address {
        let ip = ctx.peer.ip().to_string();
        let v = match h.get(&hdr::X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(prev) => format!("{prev}, {ip}"),
            None => ip,
        };
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(hdr::X_FORWARDED_FOR.clone(), v);
        }
    }
    for ops in [&route.headers, &vh.headers, &http.routes.headers] {
        if !ops.is_empty() {
            ops.apply_request(h);
        }
    }
    if let Some((prefix, replacement)) = &fwd.prefix_rewrite {
        let pq = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        if pq.len() >= prefix.len() {
            if let Ok(v) = HeaderValue::from_str(pq) {
                parts.headers.insert(hdr::X_ORIGINAL_PATH.clone(), v);
            }
            let rest = &pq[prefix.len()..];
            let new = format!("{replacement}{rest}");
            if let Ok(pq) = http::uri::PathAndQuery::try_from(new) {
                let mut up = http::uri::Parts::default();
                up.path_and_query = Some(pq);
                if let Ok(u) = http::Uri::from_parts(up) {
                    parts.uri = u;
                }
            }
        }
    }

    let rstats = &route.stats;
    cluster.stats.inc(cs::RQ_TOTAL);
    cluster.stats.inc(cs::RQ_ACTIVE);
    rstats.inc(rs::RQ_TOTAL);
    ep.active.fetch_add(1, Ordering::Relaxed);
    ep.rq_total.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let req = Request::from_parts(parts, body);
    let sent = cluster.send(&ep, req, authority);
    // `Err(None)` is the route timeout.
    let result: Result<Response<ProxyBody>, Option<UpstreamError>> = match fwd.timeout {
        Some(t) => match tokio::time::timeout(t, sent).await {
            Ok(r) => r.map_err(Some),
            Err(_) => Err(None),
        },
        None => sent.await.map_err(Some),
    };
    ep.active.fetch_sub(1, Ordering::Relaxed);
    cluster.stats.dec(cs::RQ_ACTIVE);
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => {
            ep.rq_error.fetch_add(1, Ordering::Relaxed);
            let r = match e {
                None => {
                    cluster.stats.inc(cs::RQ_TIMEOUT);
                    rstats.inc(rs::RQ_TIMEOUT);
                    local_reply(StatusCode::GATEWAY_TIMEOUT, TIMEOUT)
                }
                Some(UpstreamError::ConnectFail) => {
                    local_reply(StatusCode::SERVICE_UNAVAILABLE, CONNECT_FAILURE)
                }
                Some(UpstreamError::NoHealthy) => {
                    local_reply(StatusCode::SERVICE_UNAVAILABLE, NO_HEALTHY)
                }
                Some(UpstreamError::BadRequestBody) => local_reply(StatusCode::BAD_REQUEST, ""),
                Some(UpstreamError::Reset) => {
                    cluster.stats.inc(cs::RQ_RESET);
                    local_reply(StatusCode::SERVICE_UNAVAILABLE, CONNECT_RESET)
                }
            };
            cluster.stats.inc_class(cs::RQ_2XX, r.status().as_u16());
            rstats.inc_class(rs::RQ_2XX, r.status().as_u16());
            let mut r = r;
            apply_response_ops(&response_ops, &mut r);
            return http.filters.respond(&fctx, r);
        }
    };
    let status = resp.status().as_u16();
    cluster.stats.inc_class(cs::RQ_2XX, status);
    rstats.inc_class(rs::RQ_2XX, status);
    if status >= 500 {
        ep.rq_error.fetch_add(1, Ordering::Relaxed);
    }
    hdr::remove_hop_by_hop_response(resp.headers_mut());
    if downstream_h1 {
        // Speak our own HTTP/1.1 downstream whatever the upstream spoke.
        *resp.version_mut() = http::Version::HTTP_11;
        hdr::declare_grpc_trailers(resp.headers_mut());
    }
    apply_response_ops(&response_ops, &mut resp);
    resp.headers_mut().insert(
        hdr::X_UPSTREAM_SERVICE_TIME.clone(),
        HeaderValue::from(started.elapsed().as_millis() as u64),
    );
    http.filters.respond(&fctx, resp)
}

fn apply_response_ops(ops: &[&HeaderOps; 3], r: &mut Response<ProxyBody>) {
    for o in ops {
        if !o.is_empty() {
            o.apply_response(r.headers_mut());
        }
    }
}
