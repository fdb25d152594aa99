//! End to end: the fault, local rate limit and CORS filters in a running engine,
//! in front of a real upstream, with Envoy 1.40's answers.

mod common;
use common::stat;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fastmesh_native::Engine;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// An upstream answering `up` to everything, counting the requests it saw.
async fn upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            let counter = counter.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req: Request<Incoming>| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("up")))) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// An engine whose listener "ingress" runs `filters` and forwards everything to
/// `up` (but `/direct`, answered 200 `direct` by the proxy), with `vhost_overrides`
/// and `route_overrides` (of the forwarding route) as the filters' per-route configs.
fn engine(
    up: SocketAddr,
    filters: Value,
    vhost_overrides: Value,
    route_overrides: Value,
) -> (Engine, SocketAddr) {
    let snapshot = json!({
        "listeners": [{
            "name": "ingress",
            "address": "127.0.0.1:0",
            "filter": {
                "type": "http",
                "stat_prefix": "ingress",
                "http_filters": filters,
                "route_config": {"virtual_hosts": [{
                    "name": "all",
                    "domains": ["*"],
                    "filter_overrides": vhost_overrides,
                    "routes": [{
                        "name": "direct",
                        "match": {"path": {"prefix": "/direct"}},
                        "action": {"direct": {"status": 200, "body": "direct"}},
                    }, {
                        "name": "r",
                        "match": {"path": {"prefix": "/"}},
                        "action": {"forward": {"cluster": "web"}},
                        "filter_overrides": route_overrides,
                    }],
                }]},
            },
        }],
        "clusters": [{
            "name": "web",
            "discovery": "static",
            "endpoints": [{"host": "127.0.0.1", "port": up.port()}],
        }],
    });
    let e = Engine::new(1).unwrap();
    e.apply(&snapshot.to_string()).unwrap();
    let addr = e.listening()["ingress"];
    (e, addr)
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut b = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let r = client
        .request(b.body(Full::default()).unwrap())
        .await
        .unwrap();
    let (p, body) = r.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: p.status,
        headers: p.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_abort_answers_locally() {
    let (up, seen) = upstream().await;
    let (e, addr) = engine(
        up,
        json!([{"type": "fault"}]),
        json!({}),
        json!({"fault": {"abort": {"http_status": 503, "percent": {"numerator": 100}}}}),
    );
    let a = send(addr, "GET", "/x", &[]).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.body, "fault filter abort");
    assert_eq!(a.headers["content-type"], "text/plain");
    assert_eq!(seen.load(Ordering::Relaxed), 0, "the upstream never saw it");
    assert_eq!(stat(&e, "http.ingress.fault.aborts_injected"), 1);
    assert_eq!(stat(&e, "http.ingress.fault.active_faults"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_delay_holds_the_request_then_forwards_it() {
    let (up, seen) = upstream().await;
    let (e, addr) = engine(
        up,
        json!([{"type": "fault", "delay": {"header_controlled": true, "percent": {"numerator": 100}}}]),
        json!({}),
        json!({}),
    );
    let t0 = Instant::now();
    let a = send(addr, "GET", "/x", &[("x-envoy-fault-delay-request", "300")]).await;
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "up"));
    assert_eq!(seen.load(Ordering::Relaxed), 1);
    assert_eq!(stat(&e, "http.ingress.fault.delays_injected"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429_once_the_vhost_bucket_is_empty() {
    let (up, seen) = upstream().await;
    let (e, addr) = engine(
        up,
        json!([{"type": "local_rate_limit", "stat_prefix": "base"}]),
        json!({"local_rate_limit": {
            "stat_prefix": "vh",
            "token_bucket": {"max_tokens": 2, "fill_interval_ms": 60000},
            "enabled": {"numerator": 100}, "enforced": {"numerator": 100},
            "x_ratelimit_headers": true,
            "response_headers_to_add": [{"name": "x-added", "value": "yes"}],
        }}),
        json!({}),
    );
    for remaining in ["1", "0"] {
        let a = send(addr, "GET", "/x", &[]).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.headers["x-ratelimit-limit"], "2");
        assert_eq!(a.headers["x-ratelimit-remaining"], remaining);
    }
    let a = send(addr, "GET", "/x", &[]).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.body, "local_rate_limited");
    assert_eq!(a.headers["x-added"], "yes");
    assert_eq!(a.headers["x-ratelimit-reset"], "60");
    assert!(
        !a.headers.contains_key("x-envoy-ratelimited"),
        "Envoy 1.40 sends none"
    );
    assert_eq!(seen.load(Ordering::Relaxed), 2);
    let counts: Vec<u64> = ["enabled", "ok", "rate_limited", "enforced"]
        .iter()
        .map(|n| stat(&e, &format!("vh.http_local_rate_limit.{n}")))
        .collect();
    assert_eq!(counts, [3, 2, 1, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_is_answered_and_simple_requests_get_the_origin() {
    let (up, seen) = upstream().await;
    let (e, addr) = engine(
        up,
        json!([{"type": "cors"}]),
        json!({"cors": {
            "allow_origin": [{"kind": {"exact": "https://ok.com"}}],
            "allow_methods": "GET, POST",
            "max_age": "600",
            "expose_headers": "x-exp",
        }}),
        json!({}),
    );
    let pre = send(
        addr,
        "OPTIONS",
        "/x",
        &[
            ("origin", "https://ok.com"),
            ("access-control-request-method", "GET"),
        ],
    )
    .await;
    assert_eq!((pre.status, pre.body.as_str()), (StatusCode::OK, ""));
    assert_eq!(pre.headers["access-control-allow-origin"], "https://ok.com");
    assert_eq!(pre.headers["access-control-allow-methods"], "GET, POST");
    assert_eq!(pre.headers["access-control-max-age"], "600");
    assert!(!pre.headers.contains_key("access-control-allow-credentials"));
    assert_eq!(seen.load(Ordering::Relaxed), 0, "answered by the proxy");

    let simple = send(addr, "GET", "/x", &[("origin", "https://ok.com")]).await;
    assert_eq!(simple.body, "up");
    assert_eq!(
        simple.headers["access-control-allow-origin"],
        "https://ok.com"
    );
    assert_eq!(simple.headers["access-control-expose-headers"], "x-exp");

    let other = send(addr, "GET", "/x", &[("origin", "https://bad.com")]).await;
    assert!(!other.headers.contains_key("access-control-allow-origin"));
    assert_eq!(stat(&e, "http.ingress.cors.origin_valid"), 2);
    assert_eq!(stat(&e, "http.ingress.cors.origin_invalid"), 1);

    // As Envoy: CORS leaves routes that do not forward alone, preflights included.
    let direct = send(
        addr,
        "OPTIONS",
        "/direct",
        &[
            ("origin", "https://ok.com"),
            ("access-control-request-method", "GET"),
        ],
    )
    .await;
    assert_eq!(direct.body, "direct");
    assert!(!direct.headers.contains_key("access-control-allow-origin"));
}
