//! Helpers shared by the engine's end-to-end tests: a real upstream (hyper),
//! snapshot builders, clients, and waiting on state.
#![allow(dead_code)] // each test crate uses its own subset

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fastmesh_native::Engine;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub type BoxBody = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

pub fn full(s: impl Into<Bytes>) -> BoxBody {
    Full::new(s.into()).map_err(|never| match never {}).boxed()
}

/// An upstream that answers `<tag> <method> <path>` and echoes what it saw in
/// `x-seen-*` headers. `/slow/<ms>` waits; `/echo` streams the request body back;
/// `/trailers` ends with `grpc-status: 0`.
pub async fn upstream(tag: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| async move {
                    let path = req.uri().path().to_owned();
                    let mut resp = if let Some(ms) = path.strip_prefix("/slow/") {
                        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
                        Response::new(full(format!("{tag} slow")))
                    } else if path == "/echo" {
                        Response::new(req.into_body().boxed())
                    } else if path == "/trailers" {
                        let mut t = http::HeaderMap::new();
                        t.insert("grpc-status", "0".parse().unwrap());
                        let frames: Vec<Result<Frame<Bytes>, hyper::Error>> = vec![
                            Ok(Frame::data(Bytes::from_static(b"grpc-data"))),
                            Ok(Frame::trailers(t)),
                        ];
                        let mut r = Response::new(BodyExt::boxed(StreamBody::new(
                            futures_util::stream::iter(frames),
                        )));
                        r.headers_mut()
                            .insert("content-type", "application/grpc".parse().unwrap());
                        r
                    } else {
                        let body = format!("{tag} {} {}", req.method(), path);
                        let mut r = Response::new(full(body));
                        for (k, v) in req.headers() {
                            if let Ok(n) =
                                http::HeaderName::from_bytes(format!("x-seen-{k}").as_bytes())
                            {
                                r.headers_mut().append(n, v.clone());
                            }
                        }
                        r
                    };
                    resp.headers_mut().insert(
                        "x-upstream-version",
                        format!("{:?}", req_version_tag()).parse().unwrap(),
                    );
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

pub fn req_version_tag() -> &'static str {
    "ok"
}

pub fn cluster(name: &str, addrs: &[SocketAddr], extra: serde_json::Value) -> serde_json::Value {
    let mut c = json!({
        "name": name,
        "discovery": "static",
        "endpoints": addrs.iter().map(|a| json!({"host": a.ip().to_string(), "port": a.port()})).collect::<Vec<_>>(),
    });
    c.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    c
}

pub fn http_listener(name: &str, address: &str, vhosts: serde_json::Value) -> serde_json::Value {
    json!({
        "name": name,
        "address": address,
        "filter": {"type": "http", "stat_prefix": name, "route_config": {"name": "rc", "virtual_hosts": vhosts}},
    })
}

pub fn forward_all(cluster: &str, timeout_ms: u64) -> serde_json::Value {
    json!([{"name": "all", "domains": ["*"], "routes": [
        {"name": "r", "match": {"path": {"prefix": "/"}}, "action": {"forward": {"cluster": cluster, "timeout_ms": timeout_ms}}}
    ]}])
}

pub fn snapshot(listeners: Vec<serde_json::Value>, clusters: Vec<serde_json::Value>) -> String {
    json!({"version": "t", "listeners": listeners, "clusters": clusters}).to_string()
}

/// The setup most tests need: listener "ingress" on an ephemeral port forwarding
/// everything to cluster "web" (`up`) with a 15 s route timeout.
pub fn forward_snapshot(up: SocketAddr) -> String {
    snapshot(
        vec![http_listener(
            "ingress",
            "127.0.0.1:0",
            forward_all("web", 15000),
        )],
        vec![cluster("web", &[up], json!({}))],
    )
}

/// An engine serving `forward_snapshot(up)`, and the address of its "ingress" listener.
pub fn proxy_to(up: SocketAddr) -> (Arc<Engine>, SocketAddr) {
    let e = engine();
    e.apply(&forward_snapshot(up)).unwrap();
    let a = addr_of(&e, "ingress");
    (e, a)
}

pub fn engine() -> Arc<Engine> {
    Arc::new(Engine::new(2).unwrap())
}

pub fn addr_of(e: &Engine, name: &str) -> SocketAddr {
    e.listening()[name]
}

/// Waits until `cond` holds, at most 5 s; the assertions that follow say what was wrong
/// if it never did. Tests wait on state, never on a guessed duration.
pub async fn settle(mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !cond() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub fn h1() -> Client<hyper_util::client::legacy::connect::HttpConnector, BoxBody> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn h2() -> Client<hyper_util::client::legacy::connect::HttpConnector, BoxBody> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

pub async fn get(
    c: &Client<hyper_util::client::legacy::connect::HttpConnector, BoxBody>,
    url: String,
    host: &str,
) -> (StatusCode, http::HeaderMap, String) {
    let req = Request::get(url)
        .header("host", host)
        .body(full(""))
        .unwrap();
    let r = c.request(req).await.unwrap();
    let (p, b) = r.into_parts();
    let body = b.collect().await.unwrap().to_bytes();
    (
        p.status,
        p.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

pub fn stat(e: &Engine, name: &str) -> u64 {
    e.stats()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no stat {name}"))
}

// Hand-made HTTP/2 frames, for clients no library would be.

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const GOAWAY: u8 = 0x7;
pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const CANCEL: u32 = 0x8;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;
/// `GET http://x/` in HPACK: static-table indexes and one literal authority.
pub const GET_ROOT: &[u8] = b"\x82\x86\x84\x01\x01x";

pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(9 + payload.len());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Reads frames until a GOAWAY (returns its error code) or the close (None).
pub async fn goaway_code(s: &mut (impl AsyncRead + Unpin)) -> Option<u32> {
    let mut head = [0u8; 9];
    loop {
        s.read_exact(&mut head).await.ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).await.ok()?;
        if head[3] == GOAWAY {
            return Some(u32::from_be_bytes(payload[4..8].try_into().ok()?));
        }
    }
}

pub async fn h2c(a: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(a).await.unwrap();
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    s.write_all(&hello).await.unwrap();
    s
}
