//! Connection timers: HTTP/2 `connection_keepalive` (downstream and upstream),
//! the connection idle timeout and `max_connection_duration`.

mod common;
use common::*;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fastmesh_native::Engine;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

const PING: u8 = 0x6;
/// Keepalive interval and timeout of these tests, ms: silence for their sum is fatal.
const INTERVAL_MS: u64 = 300;
const TIMEOUT_MS: u64 = 300;

fn keepalive() -> serde_json::Value {
    json!({"interval_ms": INTERVAL_MS, "timeout_ms": TIMEOUT_MS, "interval_jitter_percent": 0.0})
}

/// An engine forwarding to `up` with `filter_extra` merged into its HTTP filter config.
fn proxy_with(up: SocketAddr, filter_extra: serde_json::Value) -> (Arc<Engine>, SocketAddr) {
    let e = engine();
    let mut l = http_listener("ingress", "127.0.0.1:0", forward_all("web", 15000));
    for (k, v) in filter_extra.as_object().unwrap() {
        l["filter"][k] = v.clone();
    }
    e.apply(&snapshot(vec![l], vec![cluster("web", &[up], json!({}))]))
        .unwrap();
    let a = addr_of(&e, "ingress");
    (e, a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_flood_from_a_client_that_never_reads_is_closed_by_keepalive() {
    let up = upstream("a").await;
    let (e, a) = proxy_with(up, json!({"connection_keepalive": keepalive()}));
    let mut s = h2c(a).await;
    let started = Instant::now();
    // PINGs, each owed an ACK, and never a byte read: h2 stops reading once its
    // ACKs back up, so the client goes silent for the proxy, its PING unanswered.
    let flood = async {
        let batch: Vec<u8> = (0..1000u64)
            .flat_map(|i| frame(PING, 0, 0, &i.to_be_bytes()))
            .collect();
        while s.write_all(&batch).await.is_ok() {}
    };
    tokio::time::timeout(Duration::from_secs(20), flood)
        .await
        .expect("the flooding connection was never closed");
    let took = started.elapsed();
    assert_eq!(stat(&e, "http2.keepalive_timeout"), 1);
    assert_eq!(stat(&e, "http.ingress.downstream_cx_active"), 0);
    // interval + timeout after the reads stopped, plus the 1 s delayed close; generous
    // for a loaded machine, far below the 20 s of an unbounded flood.
    assert!(took < Duration::from_secs(8), "closed after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_is_closed_once_its_ping_goes_unanswered() {
    let up = upstream("a").await;
    let (e, a) = proxy_with(up, json!({"connection_keepalive": keepalive()}));
    let _s = h2c(a).await; // never reads, never answers
    settle(|| stat(&e, "http2.keepalive_timeout") == 1).await;
    assert_eq!(stat(&e, "http2.keepalive_timeout"), 1);
    assert_eq!(stat(&e, "http.ingress.downstream_cx_active"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_answering_pings_stays_connected_while_idle() {
    let up = upstream("a").await;
    // Idle timeout off: only keepalive could close this connection.
    let (e, a) = proxy_with(
        up,
        json!({"connection_keepalive": keepalive(), "idle_timeout_ms": 0}),
    );
    let c = h2();
    let (st, _, _) = get(&c, format!("http://{a}/one"), "x").await;
    assert_eq!(st, 200);
    // Several keepalive periods with no request: hyper's client ACKs the PINGs.
    tokio::time::sleep(Duration::from_millis(4 * (INTERVAL_MS + TIMEOUT_MS))).await;
    let (st, _, _) = get(&c, format!("http://{a}/two"), "x").await;
    assert_eq!(st, 200);
    assert_eq!(stat(&e, "http2.keepalive_timeout"), 0);
    assert_eq!(stat(&e, "http.ingress.downstream_cx_total"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connection_gets_goaway_then_close() {
    let up = upstream("a").await;
    let (e, a) = proxy_with(up, json!({"idle_timeout_ms": 300}));
    // Before connecting: the proxy's idle clock starts once it has read the preface,
    // which may be well before the client has finished its side of the handshake.
    let started = Instant::now();
    let mut s = h2c(a).await;
    let code = tokio::time::timeout(Duration::from_secs(10), goaway_code(&mut s))
        .await
        .expect("the idle connection was never drained");
    assert_eq!(code, Some(0), "GOAWAY NO_ERROR");
    assert!(started.elapsed() >= Duration::from_millis(300));
    // This client never answers the drain's PING: the proxy closes it on its own, after
    // the drain's hard deadline (5 s).
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest))
        .await
        .expect("the drained connection was never closed")
        .ok();
    settle(|| stat(&e, "http.ingress.downstream_cx_active") == 0).await;
    assert_eq!(stat(&e, "http.ingress.downstream_cx_idle_timeout"), 1);
    assert_eq!(stat(&e, "http.ingress.downstream_cx_active"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_in_flight_keeps_the_connection_out_of_idle() {
    let up = upstream("a").await;
    let (e, a) = proxy_with(up, json!({"idle_timeout_ms": 300}));
    let c = h2();
    // The upstream answers after 1 s, three idle timeouts.
    let (st, _, body) = get(&c, format!("http://{a}/slow/1000"), "x").await;
    assert_eq!(st, 200);
    assert_eq!(body, "a slow");
    assert_eq!(stat(&e, "http.ingress.downstream_cx_idle_timeout"), 0);
    settle(|| stat(&e, "http.ingress.downstream_cx_idle_timeout") == 1).await;
    assert_eq!(stat(&e, "http.ingress.downstream_cx_idle_timeout"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connection_duration_drains_a_busy_connection() {
    let up = upstream("a").await;
    let (e, a) = proxy_with(
        up,
        json!({"max_connection_duration_ms": 300, "idle_timeout_ms": 0}),
    );
    let c = h2();
    let deadline = Instant::now() + Duration::from_secs(10);
    while stat(&e, "http.ingress.downstream_cx_max_duration_reached") == 0
        && Instant::now() < deadline
    {
        let (st, _, _) = get(&c, format!("http://{a}/x"), "x").await;
        assert_eq!(st, 200);
    }
    assert_eq!(
        stat(&e, "http.ingress.downstream_cx_max_duration_reached"),
        1
    );
    // The client moves to a new connection and its requests still succeed.
    let (st, _, _) = get(&c, format!("http://{a}/y"), "x").await;
    assert_eq!(st, 200);
    settle(|| stat(&e, "http.ingress.downstream_cx_total") == 2).await;
    assert_eq!(stat(&e, "http.ingress.downstream_cx_total"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_http2_upstream_is_closed_by_keepalive() {
    // Accepts, then neither reads nor writes: no SETTINGS, no PING ACK, no response.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    let e = engine();
    let web = cluster(
        "web",
        &[up],
        json!({"http2": true, "http2_keepalive": keepalive()}),
    );
    e.apply(&snapshot(
        vec![http_listener(
            "ingress",
            "127.0.0.1:0",
            forward_all("web", 15000),
        )],
        vec![web],
    ))
    .unwrap();
    let a = addr_of(&e, "ingress");
    let started = Instant::now();
    let (st, _, _) = get(&h1(), format!("http://{a}/"), "x").await;
    // Not the 15 s route timeout: the dead connection is cut after interval + timeout.
    assert_eq!(st, 503);
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(stat(&e, "cluster.web.http2.keepalive_timeout"), 1);
}
