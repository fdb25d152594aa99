//! One downstream HTTP connection: hyper-util's auto server (HTTP/1.1 with
//! keep-alive and pipelining, or h2c by preface sniff), limits, graceful drain,
//! and the per-request proxy pipeline: route, filters, upstream, headers, stats.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::watch;

use crate::chains::drained;
use crate::config::{
    CodecType, ForwardClientCert, Http2Keepalive, HttpConnectionManager, XfccDetails,
};
use crate::conn::ConnInfo;
use crate::http::action::{ActionRt, ForwardRt};
use crate::http::conn_timers::{Activity, ConnTimers, Expiry, ReadStamped, HYPER_PING_TIMEOUT};
use crate::http::delayed_close::DelayedClose;
use crate::http::desync;
use crate::http::filter::{FilterChain, FilterCtx};
use crate::http::filters::RouteFilters;
use crate::http::forward::Call;
use crate::http::headers::{self as hdr, HeaderOps};
use crate::http::premature::PrematureResets;
use crate::http::router::{RouteInput, RouteTable};
use crate::http::timed::TimedBody;
use crate::http::{local_reply, ProxyBody};
use crate::listener::{DownstreamIo, ListenerHandle, ListenerKind};
use crate::stats::{http as hs, http2 as h2s, Registry, StatGroup};
use crate::tls::xfcc::ConnXfcc;
use crate::upstream::ClusterRt;

/// Client-reset streams h2 may hold before hyper accepts them (h2's own default).
const H2_MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// Protocol-error resets we send on one connection before giving up on it (hyper's default).
const H2_MAX_LOCAL_ERROR_RESETS: usize = 1024;
/// Envoy's default connection idle timeout.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// How long a connection drained by its idle or duration timer may take to finish
/// (Envoy's `drain_timeout` default).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// An `http_connection_manager` compiled for one snapshot.
#[derive(Debug)]
pub struct HttpRt {
    pub stats: Arc<StatGroup>,
    pub routes: RouteTable,
    pub filters: FilterChain,
    server_name: HeaderValue,
    max_headers_count: usize,
    use_remote_address: bool,
    stream_idle_timeout: Option<Duration>,
    h2_stats: Arc<StatGroup>,
    keepalive: Option<Http2Keepalive>,
    timers: ConnTimers,
    forward_client_cert: ForwardClientCert,
    client_cert_details: XfccDetails,
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
        // hyper's HTTP/1.1 header timer (it also runs during idle keep-alive time);
        // the idle timeout itself is `ConnTimers`', for both protocols.
        let h1_read_timeout = hcm
            .request_headers_timeout_ms
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
        // HTTP/2 flood bounds (tests/hardening): CONTINUATION and HPACK bombs stop at
        // the header list size; SETTINGS and PING floods at h2's one pending ACK (it
        // reads no further until the ACK is written); Rapid Reset at the resets below,
        // then `premature` for paced ones.
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(header_bytes as u32)
            .max_concurrent_streams(hcm.max_concurrent_streams.unwrap_or(1 << 20))
            .initial_stream_window_size(1 << 20)
            .initial_connection_window_size(4 << 20)
            // Streams reset by the client while still queued for us: past this, GOAWAY
            // ENHANCE_YOUR_CALM.
            .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESETS)
            // Streams we reset for the client's protocol errors: past this, GOAWAY.
            .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESETS)
            // hyper sends the PINGs (with `keepalive`'s interval, per connection);
            // `ConnTimers` decides when the silence is fatal.
            .keep_alive_timeout(HYPER_PING_TIMEOUT);
        let keepalive = hcm.connection_keepalive.filter(|k| k.interval_ms > 0);
        let timers = ConnTimers {
            keepalive: None, // per connection: the interval is jittered
            idle: match hcm.idle_timeout_ms {
                None => Some(DEFAULT_IDLE_TIMEOUT),
                Some(0) => None,
                Some(ms) => Some(Duration::from_millis(ms)),
            },
            max_duration: hcm
                .max_connection_duration_ms
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis),
        };
        Ok(HttpRt {
            stats: stats.group(&format!("http.{}", hcm.stat_prefix), hs::NAMES),
            routes,
            filters,
            server_name,
            max_headers_count: hcm.max_request_headers_count as usize,
            use_remote_address: hcm.use_remote_address,
            // Envoy's 5 min default is not enforced: only an explicit setting arms a timer.
            stream_idle_timeout: hcm
                .stream_idle_timeout_ms
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis),
            // Envoy roots downstream HTTP/2 codec stats at `http2.`, shared by listeners.
            h2_stats: stats.group("http2", h2s::NAMES),
            keepalive,
            timers,
            forward_client_cert: hcm.forward_client_cert,
            client_cert_details: hcm.client_cert_details,
            builder,
        })
    }
}

struct ConnCtx {
    listener: Arc<ListenerHandle>,
    conn: ConnInfo,
    xfcc: ConnXfcc,
}

/// Serve one HTTP connection (plaintext or TLS, HTTP/2 by preface or ALPN)
/// until it closes, or until `drain` flips, then shut it down gracefully
/// (GOAWAY on h2, close once idle on HTTP/1.1) within the listener's drain time.
pub async fn serve<S: DownstreamIo>(
    stream: S,
    conn: ConnInfo,
    local_uri_sans: Option<Arc<[String]>>,
    listener: Arc<ListenerHandle>,
    http: &HttpRt,
    mut drain: watch::Receiver<bool>,
) {
    let stats = http.stats.clone();
    let drain_time = listener.drain_time();
    stats.inc(hs::CX_TOTAL);
    stats.inc(hs::CX_ACTIVE);
    let ctx = Arc::new(ConnCtx {
        listener,
        conn,
        xfcc: ConnXfcc::new(local_uri_sans),
    });
    let resets = Arc::new(PrematureResets::default());
    let tally = resets.clone();
    let activity = Activity::new();
    let streams = activity.clone();
    let svc = service_fn(move |req| {
        let ctx = ctx.clone();
        let watch = tally.watch();
        let streams = streams.clone();
        async move {
            // Active until the response head is out: a body still streaming when
            // the idle timer drains the connection finishes anyway.
            let _active = streams.stream_opened();
            let resp = handle(&ctx, req).await;
            watch.answered();
            Ok::<_, Infallible>(resp)
        }
    });
    let io = TokioIo::new(ReadStamped::new(
        DelayedClose::new(stream),
        activity.clone(),
    ));
    let mut timers = http.timers;
    let pinging;
    let builder = match http
        .keepalive
        .and_then(|k| Some((k.jittered_interval()?, k)))
    {
        Some((interval, k)) => {
            timers.keepalive = Some(interval + Duration::from_millis(k.timeout_ms));
            let mut b = http.builder.clone();
            b.http2().keep_alive_interval(interval);
            pinging = b;
            &pinging
        }
        None => &http.builder,
    };
    let conn = builder.serve_connection(io, svc);
    tokio::pin!(conn);
    let drain_for = tokio::select! {
        _ = conn.as_mut() => None,
        // The listener closing, or the connection's chain gone from the config:
        // streams in flight get the drain time (`--drain-time-s`) to finish.
        _ = drained(&mut drain) => {
            stats.inc(hs::CX_DRAIN_CLOSE);
            Some(drain_time)
        }
        _ = resets.tripped() => {
            // Envoy aborts such a connection: drop it, streams and all, no GOAWAY.
            stats.inc(hs::TOO_MANY_PREMATURE_RESETS);
            None
        }
        why = timers.expired(&activity) => match why {
            Expiry::KeepaliveTimeout => {
                // As Envoy: close without flushing (the peer may not be reading).
                http.h2_stats.inc(h2s::KEEPALIVE_TIMEOUT);
                None
            }
            Expiry::Idle => {
                stats.inc(hs::CX_IDLE_TIMEOUT);
                Some(DRAIN_TIMEOUT)
            }
            Expiry::MaxDuration => {
                stats.inc(hs::CX_MAX_DURATION);
                Some(DRAIN_TIMEOUT)
            }
        },
    };
    if let Some(limit) = drain_for {
        conn.as_mut().graceful_shutdown();
        let _ = tokio::time::timeout(limit, conn).await;
    }
    stats.dec(hs::CX_ACTIVE);
}

async fn handle(ctx: &ConnCtx, req: Request<Incoming>) -> Response<ProxyBody> {
    let lrt = ctx.listener.rt.load_full();
    let sni = ctx.conn.tls.as_ref().and_then(|t| t.sni.as_deref());
    let Some(ListenerKind::Http(http)) = lrt.chains.select(sni).map(|c| &c.kind) else {
        return local_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "listener is no longer http",
        );
    };
    let http: &HttpRt = http;
    http.stats.inc(hs::RQ_TOTAL);
    if let Some(status) = desync::refusal(&req) {
        let mut r = local_reply(status, "");
        let h = r.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        h.insert(header::SERVER, http.server_name.clone());
        http.stats.inc_class(hs::RQ_2XX, status.as_u16());
        return r;
    }
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
    let vh = http.routes.vhost(host);
    let route = vh.and_then(|vh| {
        let pq = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        vh.route(&RouteInput {
            host,
            path: parts.uri.path(),
            method: &parts.method,
            path_and_query: pq,
            headers: &parts.headers,
        })
    });
    // Filters run before the 404 of an unrouted request, as Envoy's chain does
    // (RBAC denies it with 403 first, a fault may still abort it).
    let mut fctx = FilterCtx::new(
        &ctx.conn,
        vh.map(|v| v.name.as_str()),
        route.map_or(&RouteFilters::NONE, |r| &r.filters),
    );
    if !http.filters.is_empty() {
        if let Some(r) = http.filters.on_request(&mut fctx, &mut parts).await {
            return r;
        }
    }
    let (Some(vh), Some(route)) = (vh, route) else {
        http.stats.inc(hs::NO_ROUTE);
        return http
            .filters
            .respond(&fctx, local_reply(StatusCode::NOT_FOUND, ""));
    };
    let response_ops = [&route.headers, &vh.headers, &http.routes.headers];
    let fwd = match &route.action {
        ActionRt::Direct { status, body } => {
            http.stats.inc(hs::DIRECT);
            let mut r = Response::new(ProxyBody::from(body.clone()));
            *r.status_mut() = *status;
            if !body.is_empty() {
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            }
            if *status == StatusCode::CREATED || status.is_redirection() {
                // Envoy points `location` at the request's own URL.
                let url = format!("http://{}{}", request_host(&parts), parts.uri.path());
                if let Ok(v) = HeaderValue::from_str(&url) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
            }
            apply_response_ops(&response_ops, &mut r);
            return http.filters.respond(&fctx, r);
        }
        ActionRt::Redirect(rd) => {
            http.stats.inc(hs::RQ_REDIRECT);
            let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let scheme = parts.uri.scheme_str().unwrap_or("http");
            let mut r = local_reply(rd.status, "");
            if let Ok(v) = HeaderValue::from_str(&rd.location(scheme, request_host(&parts), pq)) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            apply_response_ops(&response_ops, &mut r);
            return http.filters.respond(&fctx, r);
        }
        ActionRt::Forward(f) => f,
    };
    let (cluster, branch) = fwd.target.choose();
    let hash = if fwd.hash_policy.is_empty() {
        None
    } else {
        crate::http::hash::request_hash(
            &fwd.hash_policy,
            &parts.headers,
            parts.uri.query(),
            ctx.conn.peer.ip(),
        )
    };
    let host_rewrite = branch
        .and_then(|b| b.host_rewrite.as_ref())
        .or(fwd.host_rewrite.as_ref());
    let authority = prepare_upstream_request(ctx, http, &mut parts, host_rewrite);
    let branch_ops = branch.map(|b| &b.headers);
    for ops in branch_ops
        .into_iter()
        .chain([&route.headers, &vh.headers, &http.routes.headers])
    {
        if !ops.is_empty() {
            ops.apply_request(&mut parts.headers);
        }
    }
    if let Some(t) = &fwd.expected_timeout {
        parts
            .headers
            .insert(hdr::X_EXPECTED_TIMEOUT.clone(), t.clone());
    }
    rewrite_path(fwd, &mut parts);

    let started = tokio::time::Instant::now();
    let idle = fwd.idle_timeout.or(http.stream_idle_timeout);
    let call = Call {
        cluster,
        fwd,
        route_stats: &route.stats,
        http_stats: &http.stats,
        hash,
        authority,
        idle,
        started,
    };
    let mut resp = match call.send(parts, body).await {
        Ok(r) => r,
        Err(mut r) => {
            if let Some(ops) = branch_ops {
                ops.apply_response(r.headers_mut());
            }
            apply_response_ops(&response_ops, &mut r);
            return http.filters.respond(&fctx, r);
        }
    };
    hdr::remove_hop_by_hop_response(resp.headers_mut());
    // Envoy writes its own reason phrase; hyper would relay an odd upstream one.
    resp.extensions_mut().clear();
    if downstream_h1 {
        // Speak our own HTTP/1.1 downstream whatever the upstream spoke.
        *resp.version_mut() = http::Version::HTTP_11;
        hdr::declare_grpc_trailers(resp.headers_mut());
    }
    if let Some(ops) = branch_ops {
        if !ops.is_empty() {
            ops.apply_response(resp.headers_mut());
        }
    }
    apply_response_ops(&response_ops, &mut resp);
    resp.headers_mut().insert(
        hdr::X_UPSTREAM_SERVICE_TIME.clone(),
        HeaderValue::from(started.elapsed().as_millis() as u64),
    );
    if idle.is_some() || fwd.max_stream_duration.is_some() {
        let deadline = fwd.max_stream_duration.map(|d| started + d);
        resp = resp.map(|b| {
            ProxyBody::Timed(Box::new(TimedBody::new(
                b,
                idle,
                deadline,
                http.stats.clone(),
            )))
        });
    }
    http.filters.respond(&fctx, resp)
}

/// The request's host as the client wrote it (authority or `host`).
fn request_host(parts: &http::request::Parts) -> &str {
    parts
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or("")
}

/// Envoy's request-header work before forwarding: host rewrite (keeping the
/// original in `x-envoy-original-host`), hop-by-hop removal, `x-forwarded-proto`,
/// `x-request-id`, `x-forwarded-for`, `x-forwarded-client-cert`. Returns the
/// upstream authority.
fn prepare_upstream_request(
    ctx: &ConnCtx,
    http: &HttpRt,
    parts: &mut http::request::Parts,
    host_rewrite: Option<&HeaderValue>,
) -> Option<http::uri::Authority> {
    let h = &mut parts.headers;
    let authority = match host_rewrite {
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
            // The target's authority (h2, absolute-form) routed the request: the
            // upstream gets it as Host, never a different received Host
            // (RFC 9112 3.2.2, RFC 9113 8.3.1).
            if let Some(v) = a
                .as_ref()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            {
                h.insert(header::HOST, v);
            }
            a.or_else(|| {
                h.get(header::HOST)
                    .and_then(|v| http::uri::Authority::try_from(v.as_bytes()).ok())
            })
        }
    };
    hdr::remove_hop_by_hop(h);
    if !h.contains_key(&hdr::X_FORWARDED_PROTO) {
        let scheme = if ctx.conn.tls.is_some() {
            "https"
        } else {
            "http"
        };
        h.insert(
            hdr::X_FORWARDED_PROTO.clone(),
            HeaderValue::from_static(scheme),
        );
    }
    ctx.xfcc.apply(
        http.forward_client_cert,
        http.client_cert_details,
        &ctx.conn,
        h,
    );
    if !h.contains_key(&hdr::X_REQUEST_ID) {
        h.insert(hdr::X_REQUEST_ID.clone(), hdr::request_id());
    }
    if http.use_remote_address {
        let ip = ctx.conn.peer.ip().to_string();
        let v = match h.get(&hdr::X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(prev) => format!("{prev}, {ip}"),
            None => ip,
        };
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(hdr::X_FORWARDED_FOR.clone(), v);
        }
    }
    authority
}

/// Prefix or regex path rewrite, keeping the original in `x-envoy-original-path`.
fn rewrite_path(fwd: &ForwardRt, parts: &mut http::request::Parts) {
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let new = if let Some((prefix, replacement)) = fwd.prefix_rewrite.as_deref() {
        match pq.get(prefix.len()..) {
            Some(rest) => format!("{replacement}{rest}"),
            None => return,
        }
    } else if let Some((re, sub)) = fwd.regex_rewrite.as_deref() {
        // Envoy rewrites the path only; the query string stays as it was.
        let (path, query) = match pq.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (pq, None),
        };
        let mut p = re.replace_all(path, sub.as_str()).into_owned();
        if let Some(q) = query {
            p.push('?');
            p.push_str(q);
        }
        p
    } else {
        return;
    };
    if let Ok(v) = HeaderValue::from_str(pq) {
        parts.headers.insert(hdr::X_ORIGINAL_PATH.clone(), v);
    }
    if let Ok(pq) = http::uri::PathAndQuery::try_from(new) {
        let mut up = http::uri::Parts::default();
        up.path_and_query = Some(pq);
        if let Ok(u) = http::Uri::from_parts(up) {
            parts.uri = u;
        }
    }
}

fn apply_response_ops(ops: &[&HeaderOps; 3], r: &mut Response<ProxyBody>) {
    for o in ops {
        if !o.is_empty() {
            o.apply_response(r.headers_mut());
        }
    }
}
