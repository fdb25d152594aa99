//! End to end: active health checks against real upstreams, seen through the
//! engine's admin view (`Engine::clusters`) and stats.

mod common;
use common::{settle, stat};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fastmesh_native::stats::{cluster as cs, Registry};
use fastmesh_native::upstream::lb::EndpointAddr;
use fastmesh_native::upstream::{health_check, ClusterRt};
use fastmesh_native::Engine;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An HTTP upstream (HTTP/1.1 and h2c) answering `status` and noting what each
/// request looked like.
struct HcTarget {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    hits: Arc<AtomicU64>,
    /// (version, host or :authority, user-agent) of the last request.
    last: Arc<Mutex<Option<(http::Version, String, String)>>>,
}

async fn hc_target() -> HcTarget {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let t = HcTarget {
        addr: l.local_addr().unwrap(),
        status: Arc::new(AtomicU16::new(200)),
        hits: Arc::default(),
        last: Arc::default(),
    };
    let (status, hits, last) = (t.status.clone(), t.hits.clone(), t.last.clone());
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            let (status, hits, last) = (status.clone(), hits.clone(), last.clone());
            let svc = service_fn(move |req: Request<Incoming>| {
                hits.fetch_add(1, Ordering::Relaxed);
                let host = req
                    .uri()
                    .authority()
                    .map(|a| a.to_string())
                    .or_else(|| header(&req, "host"))
                    .unwrap_or_default();
                let agent = header(&req, "user-agent").unwrap_or_default();
                *last.lock().unwrap() = Some((req.version(), host, agent));
                let mut resp = Response::new(Full::new(Bytes::from_static(b"ok")));
                *resp.status_mut() =
                    http::StatusCode::from_u16(status.load(Ordering::Relaxed)).unwrap();
                async move { Ok::<_, Infallible>(resp) }
            });
            tokio::spawn(
                hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(s), svc)
                    .into_owned(),
            );
        }
    });
    t
}

fn header(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A TCP upstream answering `PONG` once it has read `PING`.
async fn pong_target() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4];
                if s.read_exact(&mut buf).await.is_ok() && &buf == b"PING" {
                    let _ = s.write_all(b"PONG").await;
                }
            });
        }
    });
    addr
}

/// A port nothing listens on.
async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

fn checked_cluster(name: &str, hosts: &[SocketAddr], kind: Value) -> Value {
    let endpoints: Vec<Value> = hosts
        .iter()
        .map(|a| json!({"host": a.ip().to_string(), "port": a.port()}))
        .collect();
    json!({
        "name": name, "discovery": "static", "endpoints": endpoints,
        "health_checks": [{
            "timeout_ms": 1000, "interval_ms": 20,
            "unhealthy_threshold": 2, "healthy_threshold": 2, "kind": kind
        }]
    })
}

fn apply(e: &Engine, clusters: Vec<Value>) {
    e.apply(&json!({"clusters": clusters}).to_string()).unwrap();
}

fn flags(e: &Engine, cluster: &str) -> Vec<String> {
    e.clusters()
        .into_iter()
        .find(|c| c.name == cluster)
        .map(|c| c.endpoints.into_iter().map(|ep| ep.health_flags).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_check_fails_a_host_answering_500_and_restores_it_on_200() {
    let up = hc_target().await;
    let e = Engine::new(1).unwrap();
    let path = json!({"http": {"path": "/healthz"}});
    apply(&e, vec![checked_cluster("web", &[up.addr], path)]);

    settle(|| stat(&e, "cluster.web.health_check.success") >= 1).await;
    assert_eq!(flags(&e, "web"), ["healthy"]);
    let (version, host, agent) = up.last.lock().unwrap().clone().unwrap();
    assert_eq!(version, http::Version::HTTP_11);
    assert_eq!(host, "web", "the host header defaults to the cluster name");
    assert_eq!(agent, "Envoy/HC");

    // A wrong status fails the host at once (unhealthy_threshold is for network failures).
    up.status.store(500, Ordering::Relaxed);
    settle(|| flags(&e, "web") == ["/failed_active_hc"]).await;
    assert_eq!(flags(&e, "web"), ["/failed_active_hc"]);
    assert_eq!(stat(&e, "cluster.web.membership_healthy"), 0);
    assert_eq!(stat(&e, "cluster.web.health_check.healthy"), 0);
    assert!(stat(&e, "cluster.web.health_check.failure") >= 1);
    assert_eq!(stat(&e, "cluster.web.health_check.network_failure"), 0);

    up.status.store(200, Ordering::Relaxed);
    settle(|| flags(&e, "web") == ["healthy"]).await;
    assert_eq!(flags(&e, "web"), ["healthy"]);
    assert_eq!(stat(&e, "cluster.web.membership_healthy"), 1);
    assert_eq!(stat(&e, "cluster.web.health_check.healthy"), 1);
    assert!(stat(&e, "cluster.web.health_check.attempt") >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_check_uses_h2c_and_the_configured_host_and_statuses() {
    let up = hc_target().await;
    up.status.store(204, Ordering::Relaxed);
    let e = Engine::new(1).unwrap();
    let kind = json!({"http": {"path": "/hc", "host": "svc.local", "http2": true,
                               "expected_statuses": [[200, 300]]}});
    apply(&e, vec![checked_cluster("api", &[up.addr], kind)]);

    settle(|| stat(&e, "cluster.api.health_check.success") >= 1).await;
    assert_eq!(flags(&e, "api"), ["healthy"]);
    let (version, host, _) = up.last.lock().unwrap().clone().unwrap();
    assert_eq!(
        (version, host.as_str()),
        (http::Version::HTTP_2, "svc.local")
    );

    up.status.store(300, Ordering::Relaxed);
    settle(|| flags(&e, "api") == ["/failed_active_hc"]).await;
    assert_eq!(flags(&e, "api"), ["/failed_active_hc"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_check_fails_a_closed_port_and_passes_an_answering_one() {
    let (closed, pong) = (closed_port().await, pong_target().await);
    let e = Engine::new(1).unwrap();
    let kind = json!({"tcp": {"send": b"PING".to_vec(), "receive": b"PONG".to_vec()}});
    apply(&e, vec![checked_cluster("db", &[closed, pong], kind)]);

    settle(|| flags(&e, "db") == ["/failed_active_hc", "healthy"]).await;
    assert_eq!(flags(&e, "db"), ["/failed_active_hc", "healthy"]);
    // Network failures needed unhealthy_threshold (2) in a row.
    assert!(stat(&e, "cluster.db.health_check.network_failure") >= 2);
    assert!(stat(&e, "cluster.db.health_check.success") >= 1);
    assert_eq!(stat(&e, "cluster.db.membership_healthy"), 1);
    assert_eq!(stat(&e, "cluster.db.health_check.healthy"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_check_fails_when_the_expected_bytes_never_come() {
    let pong = pong_target().await;
    let e = Engine::new(1).unwrap();
    let kind = json!({"tcp": {"send": b"PING".to_vec(), "receive": b"PANG".to_vec()}});
    apply(&e, vec![checked_cluster("db", &[pong], kind)]);

    settle(|| flags(&e, "db") == ["/failed_active_hc"]).await;
    assert_eq!(flags(&e, "db"), ["/failed_active_hc"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_hosts_and_dropped_clusters_stop_being_checked() {
    let (a, b) = (hc_target().await, hc_target().await);
    let cfg = checked_cluster("web", &[a.addr, b.addr], json!({"http": {"path": "/"}}));
    let stats = Registry::default().group("cluster.web", cs::NAMES);
    let addrs = [a.addr, b.addr].map(|addr| EndpointAddr {
        addr,
        weight: 1,
        priority: 0,
    });
    let cluster = Arc::new(ClusterRt::new(
        serde_json::from_value(cfg).unwrap(),
        addrs.to_vec(),
        stats,
    ));
    health_check::spawn(&tokio::runtime::Handle::current(), &cluster);
    settle(|| b.hits.load(Ordering::Relaxed) >= 2).await;

    // b leaves the set (as a DNS refresh would do it): its checks stop, a's go on.
    cluster.set_endpoints(vec![addrs[0]]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (a_before, b_before) = (
        a.hits.load(Ordering::Relaxed),
        b.hits.load(Ordering::Relaxed),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(b.hits.load(Ordering::Relaxed), b_before);
    assert!(a.hits.load(Ordering::Relaxed) > a_before);

    // The cluster goes: every check stops.
    drop(cluster);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let a_after = a.hits.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(a.hits.load(Ordering::Relaxed), a_after);
}
