//! End to end: the engine's traffic management against upstreams that misbehave
//! on purpose — retries (with the body replayed), the keep-alive race, mirrors,
//! weighted splits, circuit breakers, redirects, rewrites and query matching.

mod common;
use common::*;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as a scripted upstream saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    host: String,
    body_len: usize,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// An upstream that logs every request and answers `/status/<code>/<n>` with
/// `<code>` for the first `n` requests to that path, then 200; `/slow/<ms>`
/// after a wait; anything else 200. Bodies say `tag`.
async fn scripted(tag: &'static str) -> (SocketAddr, Log) {
    scripted_failing(tag, None).await
}

/// `scripted`, but answering every request with `always` when set.
async fn scripted_failing(tag: &'static str, always: Option<u16>) -> (SocketAddr, Log) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let log: Log = Arc::default();
    let served = log.clone();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            let log = served.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let log = log.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let host = req
                            .headers()
                            .get("host")
                            .and_then(|h| h.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let earlier = {
                            let mut l = log.lock().unwrap();
                            let n = l.iter().filter(|s| s.path == path).count();
                            l.push(Seen {
                                path: path.clone(),
                                host,
                                body_len: body.len(),
                            });
                            n
                        };
                        let mut status =
                            always.map_or(StatusCode::OK, |s| StatusCode::from_u16(s).unwrap());
                        let parts: Vec<&str> = path.split('/').collect();
                        if let ["", "status", code, n] = parts[..] {
                            if earlier < n.parse::<usize>().unwrap() {
                                status = StatusCode::from_u16(code.parse().unwrap()).unwrap();
                            }
                        }
                        if let ["", "slow", ms] = parts[..] {
                            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
                        }
                        let mut r = Response::new(full(tag));
                        *r.status_mut() = status;
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (addr, log)
}

fn seen(log: &Log, path: &str) -> Vec<Seen> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|s| s.path == path)
        .cloned()
        .collect()
}

fn route(m: serde_json::Value, action: serde_json::Value) -> serde_json::Value {
    json!({"match": m, "action": action})
}

fn proxy(
    routes: Vec<serde_json::Value>,
    clusters: Vec<serde_json::Value>,
) -> (Arc<fastmesh_native::Engine>, SocketAddr) {
    let e = engine();
    e.apply(&snapshot(
        vec![http_listener(
            "ingress",
            "127.0.0.1:0",
            json!([{"name": "all", "domains": ["*"], "routes": routes}]),
        )],
        clusters,
    ))
    .unwrap();
    let a = addr_of(&e, "ingress");
    (e, a)
}

fn prefix(p: &str) -> serde_json::Value {
    json!({"path": {"prefix": p}})
}

async fn post(a: SocketAddr, path: &str, body: Bytes) -> (StatusCode, http::HeaderMap) {
    let req = Request::post(format!("http://{a}{path}"))
        .header("host", "svc")
        .body(full(body))
        .unwrap();
    let r = h1().request(req).await.unwrap();
    let (p, b) = r.into_parts();
    b.collect().await.unwrap();
    (p.status, p.headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_replay_the_body_and_stop_at_num_retries() {
    let (up, log) = scripted("a").await;
    let retry = json!({"retry_on": ["5xx"], "num_retries": 2, "base_interval_ms": 1});
    let (e, a) = proxy(
        vec![route(
            prefix("/"),
            json!({"forward": {"cluster": "web", "retry_policy": retry}}),
        )],
        vec![cluster("web", &[up], json!({}))],
    );
    let body = Bytes::from(vec![b'x'; 64 * 1024]);
    let (status, _) = post(a, "/status/503/2", body.clone()).await;
    assert_eq!(status, 200, "the third attempt succeeds");
    let attempts = seen(&log, "/status/503/2");
    assert_eq!(attempts.len(), 3);
    assert!(
        attempts.iter().all(|s| s.body_len == body.len()),
        "{attempts:?}"
    );
    assert_eq!(stat(&e, "cluster.web.upstream_rq_retry"), 2);
    assert_eq!(stat(&e, "cluster.web.upstream_rq_retry_success"), 1);

    let (status, _) = post(a, "/status/503/9", body).await;
    assert_eq!(status, 503, "retries exhausted: the upstream's own answer");
    assert_eq!(seen(&log, "/status/503/9").len(), 3);
    assert_eq!(stat(&e, "cluster.web.upstream_rq_retry_limit_exceeded"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_replay_limit_is_not_retried() {
    let (up, log) = scripted("a").await;
    let retry = json!({"retry_on": ["5xx"], "num_retries": 3, "base_interval_ms": 1});
    let (_e, a) = proxy(
        vec![route(
            prefix("/"),
            json!({"forward": {"cluster": "web", "retry_policy": retry}}),
        )],
        vec![cluster("web", &[up], json!({}))],
    );
    let (status, _) = post(a, "/status/503/1", Bytes::from(vec![b'y'; 2 << 20])).await;
    assert_eq!(status, 503);
    assert_eq!(
        seen(&log, "/status/503/1").len(),
        1,
        "2 MiB was not kept for a retry"
    );
}

/// An HTTP/1.1 upstream that closes each idle keep-alive connection after a
/// random 0-20 ms, without warning: the race of istio/istio#13205.
async fn keep_alive_closer() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                // The first request may take its time; later ones race the idle close.
                let mut idle = Duration::from_secs(5);
                loop {
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tokio::time::timeout(idle, s.read(&mut chunk)).await {
                            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                            _ => return,
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    if s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await
                        .is_err()
                    {
                        return;
                    }
                    idle = Duration::from_millis(fastrand::u64(0..20));
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_closing_idle_connections_causes_no_failed_requests() {
    let up = keep_alive_closer().await;
    let (e, a) = proxy_to(up);
    let client = h1();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut failed = 0;
            for i in 0..150 {
                if i % 10 == 0 {
                    // Let connections idle into the upstream's close.
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(0..25))).await;
                }
                let (status, _, _) = get(&c, format!("http://{a}/"), "svc").await;
                failed += usize::from(status != 200);
            }
            failed
        }));
    }
    let mut failed = 0;
    for t in tasks {
        failed += t.await.unwrap();
    }
    assert_eq!(
        failed, 0,
        "requests failed on connections the upstream closed"
    );
    assert_eq!(stat(&e, "cluster.web.upstream_rq_2xx"), 16 * 150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_get_a_copy_and_never_hurt_the_primary() {
    let (primary, plog) = scripted("primary").await;
    let (shadow, slog) = scripted("shadow").await;
    let dead: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (_e, a) = proxy(
        vec![
            route(
                prefix("/both"),
                json!({"forward": {"cluster": "web", "mirrors": [{"cluster": "shadow"}]}}),
            ),
            route(
                prefix("/dead"),
                json!({"forward": {"cluster": "web", "mirrors": [{"cluster": "dead"}]}}),
            ),
        ],
        vec![
            cluster("web", &[primary], json!({})),
            cluster("shadow", &[shadow], json!({})),
            cluster("dead", &[dead], json!({})),
        ],
    );
    let (status, _) = post(a, "/both", Bytes::from_static(b"hello")).await;
    assert_eq!(status, 200);
    settle(|| !seen(&slog, "/both").is_empty()).await;
    let copy = &seen(&slog, "/both")[0];
    assert_eq!(copy.host, "svc-shadow");
    assert_eq!(copy.body_len, 5);
    assert_eq!(seen(&plog, "/both")[0].host, "svc");
    for _ in 0..20 {
        let (status, _) = post(a, "/dead", Bytes::from_static(b"x")).await;
        assert_eq!(status, 200, "a dead mirror never fails the primary");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_clusters_hold_their_split() {
    let (a_up, _) = scripted("a").await;
    let (b_up, _) = scripted("b").await;
    let split = json!([{"name": "a", "weight": 90}, {"name": "b", "weight": 10}]);
    let (_e, a) = proxy(
        vec![route(
            prefix("/"),
            json!({"forward": {"weighted_clusters": split}}),
        )],
        vec![
            cluster("a", &[a_up], json!({})),
            cluster("b", &[b_up], json!({})),
        ],
    );
    let c = h1();
    let mut to_b = 0;
    let n = 4000;
    for _ in 0..n {
        let (_, _, body) = get(&c, format!("http://{a}/"), "svc").await;
        to_b += usize::from(body == "b");
    }
    let share = to_b as f64 / n as f64;
    assert!((0.08..0.12).contains(&share), "b got {share}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_requests_overflow_says_why() {
    let (up, _) = scripted("a").await;
    let (e, a) = proxy(
        vec![route(prefix("/"), json!({"forward": {"cluster": "web"}}))],
        vec![cluster(
            "web",
            &[up],
            json!({"circuit_breakers": {"max_requests": 1}}),
        )],
    );
    let c = h1();
    let slow = tokio::spawn({
        let c = c.clone();
        async move { get(&c, format!("http://{a}/slow/500"), "svc").await }
    });
    settle(|| stat(&e, "cluster.web.upstream_rq_active") == 1).await;
    let (status, h, body) = get(&c, format!("http://{a}/"), "svc").await;
    assert_eq!(status, 503);
    assert_eq!(h["x-envoy-overloaded"], "true");
    assert!(body.ends_with("reset reason: overflow"), "{body}");
    assert_eq!(stat(&e, "cluster.web.upstream_rq_active_overflow"), 1);
    assert_eq!(slow.await.unwrap().0, 200);
    let (status, _, _) = get(&c, format!("http://{a}/"), "svc").await;
    assert_eq!(status, 200, "the breaker closes again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_rewrites_and_query_matching() {
    let (up, log) = scripted("a").await;
    let (_e, a) = proxy(
        vec![
            route(
                json!({"path": {"prefix": "/q"}, "query_parameters": [
                    {"name": "debug"},
                    {"name": "v", "value": {"kind": {"regex": "[0-9]+"}}}
                ]}),
                json!({"direct": {"status": 200, "body": "query matched"}}),
            ),
            route(
                prefix("/old"),
                json!({"redirect": {"prefix_rewrite": "/new", "response_code": 302}}),
            ),
            route(
                prefix("/v1"),
                json!({"forward": {"cluster": "web", "regex_rewrite": {"pattern": "^/v1/(\\w+)/(\\w+)$", "substitution": "/\\2/\\1"}}}),
            ),
            route(prefix("/"), json!({"direct": {"status": 404}})),
        ],
        vec![cluster("web", &[up], json!({}))],
    );
    let c = h1();
    let (_, _, body) = get(&c, format!("http://{a}/q?debug&v=12"), "svc").await;
    assert_eq!(body, "query matched");
    let (status, _, _) = get(&c, format!("http://{a}/q?debug&v=x"), "svc").await;
    assert_eq!(status, 404, "v must be digits");
    let (status, _, _) = get(&c, format!("http://{a}/q?v=1"), "svc").await;
    assert_eq!(status, 404, "debug must be present");
    let (status, h, _) = get(&c, format!("http://{a}/old/page?x=1"), "svc:8080").await;
    assert_eq!(status, 302);
    assert_eq!(h["location"], "http://svc:8080/new/page?x=1");
    let (status, _, _) = get(&c, format!("http://{a}/v1/users/42?z"), "svc").await;
    assert_eq!(status, 200);
    assert_eq!(seen(&log, "/42/users").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_try_timeout_retries_a_hanging_attempt() {
    let (up, log) = scripted("a").await;
    let retry = json!({"retry_on": ["5xx"], "num_retries": 1, "per_try_timeout_ms": 100, "base_interval_ms": 1});
    let (e, a) = proxy(
        vec![route(
            prefix("/"),
            json!({"forward": {"cluster": "web", "retry_policy": retry, "timeout_ms": 5000}}),
        )],
        vec![cluster("web", &[up], json!({}))],
    );
    let started = tokio::time::Instant::now();
    let (status, _, _) = get(&h1(), format!("http://{a}/slow/1000"), "svc").await;
    assert_eq!(status, 504);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "two 100 ms tries, not the 1 s hang"
    );
    assert_eq!(seen(&log, "/slow/1000").len(), 2);
    assert_eq!(stat(&e, "cluster.web.upstream_rq_per_try_timeout"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_ejects_a_failing_host_and_traffic_moves_away() {
    let (good, _) = scripted("good").await;
    let (bad, bad_log) = scripted_failing("bad", Some(503)).await;
    let (e, a) = proxy(
        vec![route(prefix("/"), json!({"forward": {"cluster": "web"}}))],
        vec![cluster(
            "web",
            &[good, bad],
            json!({"outlier_detection": {"consecutive_5xx": 3, "max_ejection_percent": 50}}),
        )],
    );
    let c = h1();
    for _ in 0..10 {
        get(&c, format!("http://{a}/"), "svc").await;
    }
    assert_eq!(
        bad_log.lock().unwrap().len(),
        3,
        "ejected after 3 consecutive 5xx"
    );
    for _ in 0..20 {
        let (status, _, body) = get(&c, format!("http://{a}/"), "svc").await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "good"));
    }
    let info = e.clusters();
    let flags: Vec<_> = info[0]
        .endpoints
        .iter()
        .map(|h| h.health_flags.clone())
        .collect();
    assert!(
        flags.contains(&"/failed_outlier_check".to_owned()),
        "{flags:?}"
    );
    assert_eq!(
        stat(&e, "cluster.web.outlier_detection.ejections_active"),
        1
    );
    assert_eq!(stat(&e, "cluster.web.membership_healthy"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_failing_its_health_check_gets_no_traffic() {
    let (good, _) = scripted("good").await;
    let (sick, sick_log) = scripted_failing("sick", Some(500)).await;
    let check = json!([{"timeout_ms": 500, "interval_ms": 50, "unhealthy_threshold": 1,
        "healthy_threshold": 1, "kind": {"http": {"path": "/healthz"}}}]);
    let (e, a) = proxy(
        vec![route(prefix("/"), json!({"forward": {"cluster": "web"}}))],
        vec![cluster(
            "web",
            &[good, sick],
            json!({"health_checks": check}),
        )],
    );
    settle(|| stat(&e, "cluster.web.membership_healthy") == 1).await;
    assert_eq!(stat(&e, "cluster.web.membership_healthy"), 1);
    let c = h1();
    for _ in 0..20 {
        let (status, _, body) = get(&c, format!("http://{a}/app"), "svc").await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "good"));
    }
    assert!(seen(&sick_log, "/app").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_hash_keeps_a_key_on_one_host() {
    let mut hosts = Vec::new();
    for tag in ["h0", "h1", "h2", "h3"] {
        hosts.push(scripted(tag).await.0);
    }
    let (_e, a) = proxy(
        vec![route(
            prefix("/"),
            json!({"forward": {"cluster": "web", "hash_policy": [{"kind": {"header": "x-user"}}]}}),
        )],
        vec![cluster("web", &hosts, json!({"lb_policy": "ring_hash"}))],
    );
    let c = h1();
    let mut spread = std::collections::BTreeSet::new();
    for user in 0..40 {
        let mut seen_for_user = std::collections::BTreeSet::new();
        for _ in 0..5 {
            let req = Request::get(format!("http://{a}/"))
                .header("host", "svc")
                .header("x-user", format!("user-{user}"))
                .body(full(""))
                .unwrap();
            let body = c
                .request(req)
                .await
                .unwrap()
                .into_body()
                .collect()
                .await
                .unwrap();
            seen_for_user.insert(body.to_bytes());
        }
        assert_eq!(seen_for_user.len(), 1, "user-{user} moved between hosts");
        spread.extend(seen_for_user);
    }
    assert!(
        spread.len() >= 3,
        "40 keys should spread over the hosts: {spread:?}"
    );
}
