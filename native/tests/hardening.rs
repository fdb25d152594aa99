//! Hostile input against the engine: HTTP/2 floods that must end in GOAWAY, and
//! HTTP/1.1 request targets that must not split routing from forwarding.

mod common;
use common::*;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_gets_goaway() {
    let up = upstream("a").await;
    let (_e, a) = proxy_to(up);
    let mut s = h2c(a).await;
    let (mut rd, mut wr) = s.split();
    let flood = async {
        // Streams opened and cancelled in one breath (CVE-2023-44487), batch by batch.
        for batch in 0..200u32 {
            let mut bytes = Vec::new();
            for i in 0..100u32 {
                let id = 2 * (batch * 100 + i) + 1;
                bytes.extend(frame(HEADERS, END_STREAM | END_HEADERS, id, GET_ROOT));
                bytes.extend(frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes()));
            }
            if wr.write_all(&bytes).await.is_err() {
                return;
            }
        }
    };
    let ((), code) = tokio::time::timeout(
        Duration::from_secs(10),
        futures_util::future::join(flood, goaway_code(&mut rd)),
    )
    .await
    .expect("the flood was neither cut off nor closed");
    assert_eq!(code, Some(ENHANCE_YOUR_CALM));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_rapid_reset_is_closed_for_premature_resets() {
    // One stream at a time, each cancelled once the proxy is working on it: h2 never
    // sees a backlog of reset streams, only Envoy's premature-reset rule catches this.
    let up = upstream("a").await;
    let (e, a) = proxy_to(up);
    let mut s = h2c(a).await;
    let (mut rd, mut wr) = s.split();
    let slow = b"\x82\x86\x01\x01x\x04\x0a/slow/1000"; // GET http://x/slow/1000
    let mut sent = 0u32;
    let flood = async {
        for i in 0..2000u32 {
            let id = 2 * i + 1;
            let open = frame(HEADERS, END_STREAM | END_HEADERS, id, slow);
            if wr.write_all(&open).await.is_err() {
                return;
            }
            // Cancel only once the proxy works on it (never while h2 still queues it).
            let started = || stat(&e, "http.ingress.downstream_rq_total") > u64::from(i);
            let closed = || stat(&e, "http.ingress.downstream_rq_too_many_premature_resets") > 0;
            settle(|| started() || closed()).await;
            if !started() {
                return;
            }
            let cancel = frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes());
            if wr.write_all(&cancel).await.is_err() {
                return;
            }
            sent += 1;
        }
    };
    let ((), code) = tokio::time::timeout(
        Duration::from_secs(20),
        futures_util::future::join(flood, goaway_code(&mut rd)),
    )
    .await
    .expect("the paced flood was never cut off");
    assert_eq!(code, None, "closed without GOAWAY, as Envoy aborts it");
    assert!(
        sent < 1000,
        "{sent} streams opened and cancelled before the close"
    );
    assert_eq!(
        stat(&e, "http.ingress.downstream_rq_too_many_premature_resets"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_form_target_is_the_host_upstream() {
    let up = upstream("a").await;
    let (_e, a) = proxy_to(up);
    let mut s = TcpStream::connect(a).await.unwrap();
    s.write_all(
        b"GET http://public.example/x HTTP/1.1\r\nHost: internal.example\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    // RFC 9112 3.2.2: a proxy makes Host from the absolute-form target, never forwards
    // the received one (which a backend might route on differently).
    assert!(
        out.to_ascii_lowercase()
            .contains("\r\nx-seen-host: public.example\r\n"),
        "{out}"
    );
}

/// Everything the proxy answers to `request` on a fresh HTTP/1.1 connection, up to its close.
async fn exchange(a: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(a).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the connection stayed open");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_host_headers_are_refused_and_closed() {
    let up = upstream("a").await;
    let (_e, a) = proxy_to(up);
    let out = exchange(a, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_after_a_refused_connect_are_never_a_request() {
    let up = upstream("a").await;
    let (_e, a) = proxy_to(up);
    let out = exchange(
        a,
        b"CONNECT b.example:80 HTTP/1.1\r\nHost: b.example:80\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 404"), "{out}");
    assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_ends_in_fin_not_reset() {
    // h2spec 3.5/2: a bad preface on an h2c listener, with input left unread behind
    // it. The close must be clean (Envoy's delayed close), not a reset.
    let up = upstream("a").await;
    let e = engine();
    let mut listener = http_listener("ingress", "127.0.0.1:0", forward_all("web", 0));
    listener["filter"]["codec_type"] = json!("http2");
    e.apply(&snapshot(
        vec![listener],
        vec![cluster("web", &[up], json!({}))],
    ))
    .unwrap();
    let mut s = TcpStream::connect(addr_of(&e, "ingress")).await.unwrap();
    s.write_all(b"INVALID CONNECTION PREFACE\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("the connection stayed open");
    assert!(read.is_ok(), "reset instead of closed: {read:?}");
}
