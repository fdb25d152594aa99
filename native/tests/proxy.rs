//! End to end: real upstream servers (hyper), the engine in front, real clients.

mod common;
use common::*;

use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_request_is_forwarded_with_proxy_headers() {
    let up = upstream("a").await;
    let (e, a) = proxy_to(up);
    let (status, h, body) = get(&h1(), format!("http://{a}/hello?x=1"), "example.com").await;
    assert_eq!(status, 200);
    assert_eq!(body, "a GET /hello");
    assert_eq!(h["server"], "fastmesh");
    assert!(h.contains_key("x-envoy-upstream-service-time"));
    assert_eq!(h["x-seen-host"], "example.com");
    assert_eq!(h["x-seen-x-forwarded-proto"], "http");
    assert_eq!(h["x-seen-x-request-id"].len(), 36);
    assert_eq!(stat(&e, "http.ingress.downstream_rq_total"), 1);
    assert_eq!(stat(&e, "http.ingress.downstream_rq_2xx"), 1);
    assert_eq!(stat(&e, "cluster.web.upstream_rq_2xx"), 1);
    assert_eq!(stat(&e, "cluster.web.upstream_cx_total"), 1);
    assert_eq!(stat(&e, "vhost.all.route.r.upstream_rq_total"), 1);
    assert_eq!(
        stat(
            &e,
            &format!("listener.127.0.0.1_{}.downstream_cx_total", a.port())
        ),
        1
    );
    assert_eq!(stat(&e, "cluster.web.membership_healthy"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_both_sides_keeps_trailers() {
    let up = upstream("a").await;
    let e = engine();
    e.apply(&snapshot(
        vec![http_listener(
            "ingress",
            "127.0.0.1:0",
            forward_all("grpc", 0),
        )],
        vec![cluster("grpc", &[up], json!({"http2": true}))],
    ))
    .unwrap();
    let a = addr_of(&e, "ingress");
    let req = Request::post(format!("http://{a}/trailers"))
        .header("te", "trailers")
        .body(full("x"))
        .unwrap();
    let r = h2().request(req).await.unwrap();
    assert_eq!(r.version(), http::Version::HTTP_2);
    let collected = r.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");
    assert_eq!(collected.to_bytes(), "grpc-data");
    // h2 downstream keeps its authority for routing and upstream.
    let (status, h, _) = get(&h2(), format!("http://{a}/x"), "ignored").await;
    assert_eq!(status, 200);
    assert_eq!(h["x-upstream-version"], "\"ok\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_downstream_to_h2_upstream_keeps_trailers() {
    let up = upstream("a").await;
    let e = engine();
    e.apply(&snapshot(
        vec![http_listener(
            "ingress",
            "127.0.0.1:0",
            forward_all("grpc", 0),
        )],
        vec![cluster("grpc", &[up], json!({"http2": true}))],
    ))
    .unwrap();
    let a = addr_of(&e, "ingress");
    let mut s = TcpStream::connect(a).await.unwrap();
    s.write_all(b"GET /trailers HTTP/1.1\r\nhost: x\r\nte: trailers\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0; 4096];
    let mut got = String::new();
    while !got.contains("grpc-status: 0") {
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("got {got:?}"))
            .unwrap();
        assert!(n > 0, "closed early: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.contains("transfer-encoding: chunked"), "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_megabyte_body_streams_both_ways() {
    let up = upstream("a").await;
    let (_e, a) = proxy_to(up);
    let data: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
    for client in [h1(), h2()] {
        let req = Request::post(format!("http://{a}/echo"))
            .body(full(data.clone()))
            .unwrap();
        let r = client.request(req).await.unwrap();
        assert_eq!(r.status(), 200);
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), data.len());
        assert!(body == data);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_hosts_routes_direct_responses_and_header_mutations() {
    let a_up = upstream("a").await;
    let b_up = upstream("b").await;
    let vhosts = json!([
        {"name": "api", "domains": ["api.example.com"], "routes": [
            {"name": "v2", "match": {"path": {"prefix": "/v2/"}}, "action": {"forward": {"cluster": "b", "prefix_rewrite": "/"}}},
            {"name": "canary", "match": {"path": {"prefix": "/"}, "headers": [{"name": "x-canary", "match": {"exact": "1"}}]},
             "action": {"forward": {"cluster": "b"}}},
            {"name": "default", "match": {"path": {"prefix": "/"}}, "action": {"forward": {"cluster": "a"}},
             "headers": {"request_add": [{"name": "x-route", "value": "default"}], "response_add": [{"name": "x-resp", "value": "1"}]}}
        ]},
        {"name": "wild", "domains": ["*.example.com"], "routes": [
            {"match": {"path": {"exact": "/health"}}, "action": {"direct": {"status": 200, "body": "ok"}}}
        ]}
    ]);
    let e = engine();
    e.apply(&snapshot(
        vec![http_listener("ingress", "127.0.0.1:0", vhosts)],
        vec![
            cluster("a", &[a_up], json!({})),
            cluster("b", &[b_up], json!({})),
        ],
    ))
    .unwrap();
    let a = addr_of(&e, "ingress");
    let c = h1();
    let (_, _, body) = get(&c, format!("http://{a}/v2/users"), "api.example.com").await;
    assert_eq!(body, "b GET /users");
    let req = Request::get(format!("http://{a}/x"))
        .header("host", "api.example.com")
        .header("x-canary", "1")
        .body(full(""))
        .unwrap();
    let body = c
        .request(req)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(body, "b GET /x");
    let (_, h, body) = get(&c, format!("http://{a}/x"), "API.example.com").await;
    assert_eq!(body, "a GET /x");
    assert_eq!(h["x-seen-x-route"], "default");
    assert_eq!(h["x-resp"], "1");
    let (status, h, body) = get(&c, format!("http://{a}/health"), "www.example.com").await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "ok"));
    assert_eq!(h["content-type"], "text/plain");
    let (status, _, _) = get(&c, format!("http://{a}/nope"), "www.example.com").await;
    assert_eq!(status, 404);
    let (status, _, _) = get(&c, format!("http://{a}/"), "other.org").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_proxy_copies_both_ways_with_half_close() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        got.reverse();
        s.write_all(&got).await.unwrap();
    });
    let e = engine();
    let listener = json!({"name": "tcp", "address": "127.0.0.1:0", "filter": {"type": "tcp", "stat_prefix": "db", "cluster": "db"}});
    e.apply(&snapshot(
        vec![listener],
        vec![cluster("db", &[up], json!({}))],
    ))
    .unwrap();
    let mut s = TcpStream::connect(addr_of(&e, "tcp")).await.unwrap();
    s.write_all(b"hello").await.unwrap();
    s.shutdown().await.unwrap();
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, b"olleh");
    settle(|| stat(&e, "tcp.db.downstream_cx_tx_bytes_total") == 5).await;
    assert_eq!(stat(&e, "tcp.db.downstream_cx_total"), 1);
    assert_eq!(stat(&e, "tcp.db.downstream_cx_rx_bytes_total"), 5);
    assert_eq!(stat(&e, "tcp.db.downstream_cx_tx_bytes_total"), 5);
}

/// A TCP server that answers every connection with `tag` and closes.
async fn tcp_tagged(tag: &'static [u8]) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(tag).await;
            });
        }
    });
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_proxy_weighted_clusters_split_connections_by_weight() {
    let (a, b, c) = (
        tcp_tagged(b"a").await,
        tcp_tagged(b"b").await,
        tcp_tagged(b"c").await,
    );
    let e = engine();
    let split =
        json!([{"name": "a", "weight": 3}, {"name": "b", "weight": 1}, {"name": "c", "weight": 0}]);
    let listener = json!({"name": "tcp", "address": "127.0.0.1:0",
        "filter": {"type": "tcp", "stat_prefix": "db", "weighted_clusters": split}});
    let clusters = vec![
        cluster("a", &[a], json!({})),
        cluster("b", &[b], json!({})),
        cluster("c", &[c], json!({})),
    ];
    e.apply(&snapshot(vec![listener], clusters.clone()))
        .unwrap();
    let mut seen = std::collections::HashMap::<Vec<u8>, u32>::new();
    for _ in 0..400 {
        let mut s = TcpStream::connect(addr_of(&e, "tcp")).await.unwrap();
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
            .await
            .unwrap()
            .unwrap();
        *seen.entry(got).or_default() += 1;
    }
    // 300 expected on a: 4.6 standard deviations of a 400-draw binomial either side.
    let on_a = seen.get(&b"a"[..]).copied().unwrap_or(0);
    assert!((260..=340).contains(&on_a), "{seen:?}");
    assert_eq!(
        on_a + seen.get(&b"b"[..]).copied().unwrap_or(0),
        400,
        "{seen:?}"
    );
    assert_eq!(stat(&e, "tcp.db.downstream_cx_total"), 400);

    for (filter, err) in [
        (
            json!({"cluster": "a", "weighted_clusters": [{"name": "b", "weight": 1}]}),
            "exactly one",
        ),
        (json!({}), "exactly one"),
        (
            json!({"weighted_clusters": [{"name": "a", "weight": 0}]}),
            "no weight",
        ),
        (
            json!({"weighted_clusters": [{"name": "nope", "weight": 1}]}),
            "unknown cluster",
        ),
    ] {
        let mut f = json!({"type": "tcp", "stat_prefix": "db"});
        f.as_object_mut()
            .unwrap()
            .extend(filter.as_object().unwrap().clone());
        let l = json!({"name": "tcp", "address": "127.0.0.1:0", "filter": f});
        let got = e
            .apply(&snapshot(vec![l], clusters.clone()))
            .unwrap_err()
            .to_string();
        assert!(got.contains(err), "{got}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_while_in_flight_finishes_old_request_and_routes_new_ones() {
    let up = upstream("a").await;
    let (e, a) = proxy_to(up);
    let c = h1();
    let slow = tokio::spawn({
        let c = c.clone();
        async move { get(&c, format!("http://{a}/slow/400"), "x").await }
    });
    settle(|| stat(&e, "cluster.web.upstream_rq_active") == 1).await;
    assert_eq!(
        stat(&e, "cluster.web.upstream_rq_active"),
        1,
        "slow request in flight"
    );
    let direct = json!([{"name": "all", "domains": ["*"], "routes": [
        {"match": {"path": {"prefix": "/"}}, "action": {"direct": {"status": 200, "body": "new"}}}]}]);
    let e2 = e.clone();
    let snap = snapshot(
        vec![http_listener("ingress", "127.0.0.1:0", direct)],
        vec![cluster("web", &[up], json!({}))],
    );
    tokio::task::spawn_blocking(move || e2.apply(&snap))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(addr_of(&e, "ingress"), a, "the listener keeps its socket");
    let (_, _, body) = get(&c, format!("http://{a}/x"), "x").await;
    assert_eq!(body, "new");
    let (status, _, body) = slow.await.unwrap();
    assert_eq!((status.as_u16(), body.as_str()), (200, "a slow"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_snapshots_change_nothing() {
    let up = upstream("a").await;
    let e = engine();
    let good = forward_snapshot(up);
    e.apply(&good).unwrap();
    let a = addr_of(&e, "ingress");
    let err = e
        .apply(&snapshot(
            vec![http_listener(
                "ingress",
                "127.0.0.1:0",
                forward_all("nope", 15000),
            )],
            vec![cluster("web", &[up], json!({}))],
        ))
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown cluster \"nope\""),
        "{err}"
    );
    // A bind failure: a second listener on the taken port; the first is untouched.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let err = e
        .apply(&snapshot(
            vec![
                http_listener("ingress", "127.0.0.1:0", forward_all("web", 15000)),
                http_listener("other", &taken_addr, forward_all("web", 1)),
            ],
            vec![cluster("web", &[up], json!({}))],
        ))
        .unwrap_err();
    assert!(err.to_string().contains("bind"), "{err}");
    assert!(e.apply("{not json").is_err());
    assert_eq!(e.listening().len(), 1);
    let (status, _, body) = get(&h1(), format!("http://{a}/still"), "x").await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "a GET /still"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_get_431() {
    let up = upstream("a").await;
    let (_e, a) = proxy_to(up);
    let mut s = TcpStream::connect(a).await.unwrap();
    let big = "x".repeat(70 * 1024);
    s.write_all(format!("GET / HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // Too many headers (HTTP/2 checks the count in the engine).
    let mut req = Request::get(format!("http://{a}/")).header("host", "x");
    for i in 0..120 {
        req = req.header(format!("x-h{i}"), "v");
    }
    let r = h2().request(req.body(full("")).unwrap()).await.unwrap();
    assert_eq!(r.status(), 431);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_request_gets_400() {
    let up = upstream("a").await;
    let (_e, a) = proxy_to(up);
    let mut s = TcpStream::connect(a).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nbad header line\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_use_envoy_wording() {
    let up = upstream("a").await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let vhosts = json!([{"name": "all", "domains": ["*"], "routes": [
        {"match": {"path": {"prefix": "/dead"}}, "action": {"forward": {"cluster": "dead"}}},
        {"match": {"path": {"prefix": "/empty"}}, "action": {"forward": {"cluster": "empty"}}},
        {"name": "slow", "match": {"path": {"prefix": "/"}}, "action": {"forward": {"cluster": "web", "timeout_ms": 100}}}
    ]}]);
    let e = engine();
    e.apply(&snapshot(
        vec![http_listener("ingress", "127.0.0.1:0", vhosts)],
        vec![
            cluster("web", &[up], json!({})),
            cluster("dead", &[dead], json!({})),
            cluster("empty", &[], json!({})),
        ],
    ))
    .unwrap();
    let a = addr_of(&e, "ingress");
    let c = h1();
    let (status, _, body) = get(&c, format!("http://{a}/dead"), "x").await;
    assert_eq!(status, 503);
    assert_eq!(body, "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure");
    let (status, _, body) = get(&c, format!("http://{a}/empty"), "x").await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (503, "no healthy upstream")
    );
    let (status, _, body) = get(&c, format!("http://{a}/slow/1000"), "x").await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (504, "upstream request timeout")
    );
    assert_eq!(stat(&e, "cluster.web.upstream_rq_timeout"), 1);
    assert_eq!(stat(&e, "cluster.dead.upstream_cx_connect_fail"), 1);
    assert_eq!(stat(&e, "http.ingress.downstream_rq_5xx"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_lets_in_flight_requests_finish() {
    let up = upstream("a").await;
    let (e, a) = proxy_to(up);
    // An idle keep-alive connection, and one with a request in flight.
    let c = h1();
    get(&c, format!("http://{a}/warm"), "x").await;
    let slow = tokio::spawn(async move { get(&h1(), format!("http://{a}/slow/300"), "x").await });
    settle(|| e.active_connections() == 2).await;
    assert_eq!(e.active_connections(), 2);
    let e2 = e.clone();
    let drained = tokio::task::spawn_blocking(move || e2.drain(Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(drained);
    let (status, _, body) = slow.await.unwrap();
    assert_eq!((status.as_u16(), body.as_str()), (200, "a slow"));
    assert_eq!(e.active_connections(), 0);
    assert!(TcpStream::connect(a).await.is_err(), "no longer accepting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_makes_further_accepts_wait() {
    let up = upstream("a").await;
    let e = engine();
    let mut l = http_listener("ingress", "127.0.0.1:0", forward_all("web", 15000));
    l["max_connections"] = json!(1);
    e.apply(&snapshot(vec![l], vec![cluster("web", &[up], json!({}))]))
        .unwrap();
    let a = addr_of(&e, "ingress");
    let mut first = TcpStream::connect(a).await.unwrap();
    first
        .write_all(b"GET /x HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = first.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let mut second = TcpStream::connect(a).await.unwrap();
    second
        .write_all(b"GET /y HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(200), second.read(&mut buf))
            .await
            .is_err(),
        "second waits"
    );
    drop(first);
    let n = tokio::time::timeout(Duration::from_secs(5), second.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_reused_and_dead_ones_retried() {
    let up = upstream("a").await;
    // An upstream that closes every connection after one response.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closer = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let svc = service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(full("bye")))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    let vhosts = json!([{"name": "all", "domains": ["*"], "routes": [
        {"match": {"path": {"prefix": "/closer"}}, "action": {"forward": {"cluster": "closer"}}},
        {"match": {"path": {"prefix": "/"}}, "action": {"forward": {"cluster": "web"}}}
    ]}]);
    let e = engine();
    e.apply(&snapshot(
        vec![http_listener("ingress", "127.0.0.1:0", vhosts)],
        vec![
            cluster("web", &[up], json!({})),
            cluster("closer", &[closer], json!({})),
        ],
    ))
    .unwrap();
    let a = addr_of(&e, "ingress");
    let c = h1();
    for _ in 0..20 {
        let (status, _, _) = get(&c, format!("http://{a}/x"), "x").await;
        assert_eq!(status, 200);
    }
    // Pools are per worker, and the client may open a second downstream connection that
    // the kernel hands to the other worker: reuse means one upstream connection per worker.
    let opened = stat(&e, "cluster.web.upstream_cx_total");
    assert!(
        (1..=2).contains(&opened),
        "20 sequential requests opened {opened} upstream connections"
    );
    for _ in 0..20 {
        let (status, _, body) = get(&c, format!("http://{a}/closer"), "x").await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "bye"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_dns_cluster_resolves_hostnames() {
    let up = upstream("dns").await;
    let e = engine();
    let c = json!({"name": "web", "discovery": "strict_dns", "dns_refresh_ms": 200,
                   "endpoints": [{"host": "localhost", "port": up.port()}]});
    e.apply(&snapshot(
        vec![http_listener(
            "ingress",
            "127.0.0.1:0",
            forward_all("web", 15000),
        )],
        vec![c],
    ))
    .unwrap();
    let a = addr_of(&e, "ingress");
    // localhost may resolve to ::1 too, where nothing listens; 127.0.0.1 must be among the endpoints.
    let eps = &e.clusters()[0].endpoints;
    assert!(eps.iter().any(|ep| ep.address == up), "{eps:?}");
    if eps.len() == 1 {
        let (status, _, body) = get(&h1(), format!("http://{a}/x"), "x").await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "dns GET /x"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http1_connections_close_after_idle_timeout() {
    let up = upstream("a").await;
    let e = engine();
    let mut l = http_listener("ingress", "127.0.0.1:0", forward_all("web", 15000));
    l["filter"]["idle_timeout_ms"] = json!(200);
    e.apply(&snapshot(vec![l], vec![cluster("web", &[up], json!({}))]))
        .unwrap();
    let mut s = TcpStream::connect(addr_of(&e, "ingress")).await.unwrap();
    s.write_all(b"GET /x HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .expect("closed by the proxy");
    assert_eq!(n.unwrap_or(0), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_answer_in_order_and_removed_listeners_close() {
    let up = upstream("a").await;
    let (e, a) = proxy_to(up);
    let mut s = TcpStream::connect(a).await.unwrap();
    s.write_all(b"GET /1 HTTP/1.1\r\nhost: x\r\n\r\nGET /2 HTTP/1.1\r\nhost: x\r\n\r\nGET /3 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    let got = String::from_utf8_lossy(&got);
    let (p1, p2, p3) = (
        got.find("a GET /1").unwrap(),
        got.find("a GET /2").unwrap(),
        got.find("a GET /3").unwrap(),
    );
    assert!(p1 < p2 && p2 < p3, "{got}");
    let e2 = e.clone();
    let empty = snapshot(vec![], vec![cluster("web", &[up], json!({}))]);
    tokio::task::spawn_blocking(move || e2.apply(&empty))
        .await
        .unwrap()
        .unwrap();
    assert!(e.listening().is_empty());
    // Each worker closes its own socket of the removed listener: wait for all of them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut refused = false;
    while !refused && tokio::time::Instant::now() < deadline {
        refused = TcpStream::connect(a).await.is_err();
        if !refused {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert!(
        refused,
        "removed listener still accepts connections after 5 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_request_body_gets_400() {
    let up = upstream("a").await;
    let (_e, a) = proxy_to(up);
    let mut s = TcpStream::connect(a).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nZZZ\r\nhello\r\n0\r\n\r\n").await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_balance_spreads_long_lived_connections_over_the_workers() {
    let up = upstream("a").await;
    let mut listener = http_listener("ingress", "127.0.0.1:0", forward_all("web", 15000));
    listener["exact_balance"] = json!(true);
    let e = engine();
    e.apply(&snapshot(
        vec![listener],
        vec![cluster("web", &[up], json!({}))],
    ))
    .unwrap();
    let a = addr_of(&e, "ingress");
    let at = format!("listener.127.0.0.1_{}", a.port());
    // Twenty keep-alive connections, each served once and held open: the kernel's
    // hash alone would split them 10/10 less than one time in five.
    let mut open = Vec::new();
    for _ in 0..20 {
        let mut c = TcpStream::connect(a).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = c.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
        open.push(c);
    }
    for w in 0..2 {
        assert_eq!(
            stat(&e, &format!("{at}.worker_{w}.downstream_cx_active")),
            10
        );
        assert_eq!(
            stat(&e, &format!("{at}.worker_{w}.downstream_cx_total")),
            10
        );
    }
    drop(open);
    let idle = |w: usize| stat(&e, &format!("{at}.worker_{w}.downstream_cx_active")) == 0;
    settle(|| idle(0) && idle(1)).await;
    assert!(idle(0) && idle(1));
    assert_eq!(stat(&e, &format!("{at}.downstream_cx_active")), 0);
}
