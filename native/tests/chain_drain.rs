//! An apply that keeps a listener drains the connections of every filter chain
//! the new snapshot lacks unchanged (Envoy's filter-chain-only update), and only
//! those: HTTP/1.1 closes once idle, HTTP/2 gets GOAWAY, TCP closes after the
//! drain time.

mod common;
use common::*;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use fastmesh_native::Engine;

async fn apply(e: &Arc<Engine>, snapshot: String) {
    let e = e.clone();
    tokio::task::spawn_blocking(move || e.apply(&snapshot))
        .await
        .unwrap()
        .unwrap();
}

/// One keep-alive HTTP/1.1 request on `s`: the whole response, or None once the
/// proxy has closed the connection.
async fn exchange(s: &mut TcpStream, path: &str) -> Option<String> {
    let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return Some(text);
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("an answer within 5 s")
            .ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
    }
}

/// True once the proxy closes `s` (within 5 s).
async fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

fn ingress(vhosts: serde_json::Value, chain_id: Option<&str>) -> serde_json::Value {
    let mut l = http_listener("ingress", "127.0.0.1:0", vhosts);
    if let Some(id) = chain_id {
        l["chain_id"] = json!(id);
    }
    l
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_chain_keeps_its_connections_and_a_changed_one_drains_them() {
    let up = upstream("a").await;
    let (e, a) = proxy_to(up);
    let mut s = TcpStream::connect(a).await.unwrap();
    assert!(exchange(&mut s, "/1").await.unwrap().contains("a GET /1"));

    apply(&e, forward_snapshot(up)).await;
    let again = exchange(&mut s, "/2")
        .await
        .expect("an unchanged chain keeps its connection");
    assert!(again.contains("a GET /2"), "{again}");
    assert!(
        !again.to_ascii_lowercase().contains("connection: close"),
        "{again}"
    );

    // Without the translator's chain ids a chain is compared whole: a new
    // route timeout changes it.
    let changed = snapshot(
        vec![ingress(forward_all("web", 14000), None)],
        vec![cluster("web", &[up], json!({}))],
    );
    apply(&e, changed).await;
    assert_eq!(addr_of(&e, "ingress"), a, "the listener keeps its socket");
    assert!(
        closed(&mut s).await,
        "the idle connection of the changed chain is closed"
    );
    assert_eq!(stat(&e, "http.ingress.downstream_cx_drain_close"), 1);
    // New connections are served by the new chain.
    let mut fresh = TcpStream::connect(a).await.unwrap();
    assert!(exchange(&mut fresh, "/3")
        .await
        .unwrap()
        .contains("a GET /3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_id_decides_and_a_busy_http1_connection_gets_connection_close() {
    let up = upstream("a").await;
    let clusters = vec![cluster("web", &[up], json!({}))];
    let e = engine();
    apply(
        &e,
        snapshot(
            vec![ingress(forward_all("web", 15000), Some("one"))],
            clusters.clone(),
        ),
    )
    .await;
    let a = addr_of(&e, "ingress");
    let mut s = TcpStream::connect(a).await.unwrap();
    assert!(exchange(&mut s, "/1").await.unwrap().contains("a GET /1"));

    // The translator leaves what each request re-reads (routes) out of the id.
    apply(
        &e,
        snapshot(
            vec![ingress(forward_all("web", 14000), Some("one"))],
            clusters.clone(),
        ),
    )
    .await;
    assert!(exchange(&mut s, "/2").await.unwrap().contains("a GET /2"));

    // A request in flight when its chain drains finishes, with `Connection: close`.
    s.write_all(b"GET /slow/300 HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    settle(|| stat(&e, "cluster.web.upstream_rq_active") == 1).await;
    apply(
        &e,
        snapshot(
            vec![ingress(forward_all("web", 15000), Some("two"))],
            clusters,
        ),
    )
    .await;
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
        .await
        .expect("closed after the response")
        .unwrap();
    let got = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(got.starts_with("http/1.1 200"), "{got}");
    assert!(got.contains("connection: close"), "{got}");
    assert!(got.ends_with("a slow"), "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_http2_connection_gets_goaway() {
    let up = upstream("a").await;
    let (e, a) = proxy_to(up);
    let mut s = h2c(a).await;
    // Served on the chain it was accepted on before the apply below.
    settle(|| stat(&e, "http.ingress.downstream_cx_active") == 1).await;
    let changed = snapshot(
        vec![ingress(forward_all("web", 14000), None)],
        vec![cluster("web", &[up], json!({}))],
    );
    apply(&e, changed).await;
    let code = tokio::time::timeout(Duration::from_secs(5), goaway_code(&mut s))
        .await
        .expect("a GOAWAY within 5 s");
    assert_eq!(code, Some(0), "a graceful GOAWAY (NO_ERROR)");
}

/// A TCP server echoing every connection's bytes until it closes.
async fn tcp_echo() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    a
}

async fn echoes(s: &mut TcpStream) -> bool {
    if s.write_all(b"ping").await.is_err() {
        return false;
    }
    let mut back = [0u8; 4];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut back)).await,
        Ok(Ok(_))
    ) && &back == b"ping"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_tcp_connection_closes_after_the_drain_time() {
    const DRAIN: Duration = Duration::from_millis(600);
    let up = tcp_echo().await;
    let e = Arc::new(Engine::new(2).unwrap().with_drain_time(DRAIN));
    let tcp = |name: &str, idle_ms: u64| {
        json!({"name": name, "address": "127.0.0.1:0", "filter":
            {"type": "tcp", "stat_prefix": name, "cluster": "echo", "idle_timeout_ms": idle_ms}})
    };
    let clusters = vec![cluster("echo", &[up], json!({}))];
    apply(
        &e,
        snapshot(
            vec![tcp("changed", 60_000), tcp("kept", 60_000)],
            clusters.clone(),
        ),
    )
    .await;
    let mut changed = TcpStream::connect(addr_of(&e, "changed")).await.unwrap();
    let mut kept = TcpStream::connect(addr_of(&e, "kept")).await.unwrap();
    assert!(echoes(&mut changed).await && echoes(&mut kept).await);

    apply(
        &e,
        snapshot(vec![tcp("changed", 30_000), tcp("kept", 60_000)], clusters),
    )
    .await;
    let drained_at = Instant::now();
    assert!(
        echoes(&mut changed).await,
        "a draining TCP connection works for the drain time"
    );
    assert!(closed(&mut changed).await, "closed after the drain time");
    assert!(drained_at.elapsed() >= DRAIN - Duration::from_millis(50));
    assert!(
        echoes(&mut kept).await,
        "the unchanged listener's connection stays open"
    );
    settle(|| stat(&e, "tcp.changed.downstream_cx_active") == 0).await;
    assert_eq!(stat(&e, "tcp.changed.downstream_cx_active"), 0);
}
