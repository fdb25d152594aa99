//! End to end: Envoy's HTTP RBAC filter in a running engine, in front of a real
//! upstream, answering as Envoy 1.40 does (403 `RBAC: access denied`).

mod common;
use common::{full, stat, upstream};

use std::net::SocketAddr;

use fastmesh_native::Engine;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};

/// An engine whose listener "ingress" runs one RBAC filter (`rbac`) and forwards
/// everything to an upstream: `/open/*` through route "open" (with `open_override`
/// as its RBAC override, if any), the rest through route "rest"; the virtual host
/// carries `vhost_override`, if any.
async fn proxy(rbac: Value, vhost_override: Value, open_override: Value) -> (Engine, SocketAddr) {
    let up = upstream("up").await;
    let overrides = |o: &Value| {
        if o.is_null() {
            json!({})
        } else {
            json!({ "rbac": o })
        }
    };
    let mut filter = rbac;
    filter["type"] = json!("rbac");
    let forward = json!({"forward": {"cluster": "web"}});
    let snapshot = common::snapshot(
        vec![json!({
            "name": "ingress",
            "address": "127.0.0.1:0",
            "filter": {
                "type": "http",
                "stat_prefix": "ingress",
                "http_filters": [filter],
                "route_config": {"virtual_hosts": [{
                    "name": "all",
                    "domains": ["*"],
                    "filter_overrides": overrides(&vhost_override),
                    "routes": [
                        {"name": "open", "match": {"path": {"prefix": "/open/"}}, "action": forward,
                         "filter_overrides": overrides(&open_override)},
                        {"name": "rest", "match": {"path": {"prefix": "/"}}, "action": forward},
                    ],
                }]},
            },
        })],
        vec![common::cluster("web", &[up], json!({}))],
    );
    let e = Engine::new(1).unwrap();
    e.apply(&snapshot).unwrap();
    let addr = e.listening()["ingress"];
    (e, addr)
}

/// ALLOW rules with one policy: these permissions, from anyone.
fn allow(permissions: Value) -> Value {
    rules("allow", permissions, json!(["any"]))
}

fn rules(action: &str, permissions: Value, principals: Value) -> Value {
    json!({"action": action, "policies": {
        "p": {"permissions": permissions, "principals": principals},
    }})
}

/// Status and body of one request over HTTP/1.1 (or h2 prior knowledge).
async fn send(
    addr: SocketAddr,
    h2: bool,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let client = if h2 { common::h2() } else { common::h1() };
    let mut b = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let r = client.request(b.body(full("")).unwrap()).await.unwrap();
    let status = r.status();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn get(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    send(addr, false, "GET", path, &[]).await
}

fn denied() -> (StatusCode, String) {
    (StatusCode::FORBIDDEN, "RBAC: access denied".to_owned())
}

fn rbac_stats(e: &Engine) -> [u64; 4] {
    ["allowed", "denied", "shadow_allowed", "shadow_denied"]
        .map(|n| stat(e, &format!("http.ingress.rbac.{n}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allow_policy_lets_only_its_paths_through() {
    let (e, addr) = proxy(
        json!({"rules": allow(json!([{"url_path": {"kind": {"prefix": "/public/"}}}]))}),
        Value::Null,
        Value::Null,
    )
    .await;
    assert_eq!(
        get(addr, "/public/a?q=1").await,
        (StatusCode::OK, "up GET /public/a".to_owned())
    );
    assert_eq!(get(addr, "/private").await, denied());
    assert_eq!(
        send(addr, true, "GET", "/private/public/", &[]).await,
        denied()
    );
    assert_eq!(rbac_stats(&e), [1, 2, 0, 0]);
    assert_eq!(stat(&e, "http.ingress.downstream_rq_4xx"), 2);
    assert_eq!(
        stat(&e, "cluster.web.upstream_rq_total"),
        1,
        "denied requests never reach the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_policy_refuses_requests_with_a_header_or_method() {
    let (e, addr) = proxy(
        json!({"rules": rules("deny", json!([
            {"header": {"name": "x-debug", "match": {"present": true}}},
            {"header": {"name": ":method", "match": {"exact": "DELETE"}}},
        ]), json!(["any"]))}),
        Value::Null,
        Value::Null,
    )
    .await;
    assert_eq!(get(addr, "/a").await.0, StatusCode::OK);
    assert_eq!(
        send(addr, false, "GET", "/a", &[("x-debug", "1")]).await,
        denied()
    );
    assert_eq!(send(addr, true, "DELETE", "/a", &[]).await, denied());
    assert_eq!(send(addr, false, "POST", "/a", &[]).await.0, StatusCode::OK);
    assert_eq!(rbac_stats(&e), [2, 2, 0, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_ip_principals_see_the_clients_address() {
    // The test client connects from 127.0.0.1.
    let (e, addr) = proxy(
        json!({"rules": rules("deny", json!(["any"]), json!([{"direct_remote_ip": "127.0.0.0/8"}]))}),
        Value::Null,
        Value::Null,
    )
    .await;
    assert_eq!(get(addr, "/a").await, denied());
    let (e2, addr2) = proxy(
        json!({"rules": rules("allow", json!(["any"]), json!([{"remote_ip": "10.0.0.0/8"}]))}),
        Value::Null,
        Value::Null,
    )
    .await;
    assert_eq!(get(addr2, "/a").await, denied());
    assert_eq!(rbac_stats(&e), [0, 1, 0, 0]);
    assert_eq!(rbac_stats(&e2), [0, 1, 0, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_and_vhost_overrides_replace_the_filters_rules() {
    let deny_all = json!({"rules": {"action": "allow"}});
    let (e, addr) = proxy(
        json!({"rules": {"action": "deny"}}),
        deny_all,
        // No rules on the route: RBAC is off there.
        json!({}),
    )
    .await;
    assert_eq!(get(addr, "/open/x").await.0, StatusCode::OK);
    assert_eq!(get(addr, "/other").await, denied(), "the vhost's rules");
    assert_eq!(
        rbac_stats(&e),
        [0, 1, 0, 0],
        "the filter counts, whatever applies"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_rules_count_but_never_block() {
    let (e, addr) = proxy(
        json!({"shadow_rules": allow(json!([{"url_path": {"kind": {"exact": "/ok"}}}]))}),
        Value::Null,
        Value::Null,
    )
    .await;
    assert_eq!(get(addr, "/ok").await.0, StatusCode::OK);
    assert_eq!(get(addr, "/nope").await.0, StatusCode::OK);
    assert_eq!(get(addr, "/nope").await.0, StatusCode::OK);
    assert_eq!(rbac_stats(&e), [0, 0, 1, 2], "no rules: nothing enforced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_policy_is_refused_and_the_old_snapshot_keeps_serving() {
    let (e, addr) = proxy(json!({}), Value::Null, Value::Null).await;
    // The same listener (name and configured address), now with a bad policy.
    let bad = json!({"listeners": [{
        "name": "ingress",
        "address": "127.0.0.1:0",
        "filter": {"type": "http", "stat_prefix": "ingress",
            "http_filters": [{"type": "rbac", "rules": rules("deny", json!(["any"]),
                json!([{"remote_ip": "10.0.0.0/40"}]))}],
            "route_config": {"virtual_hosts": []}},
    }]});
    let err = e.apply(&bad.to_string()).unwrap_err().to_string();
    assert!(err.contains("bad CIDR range \"10.0.0.0/40\""), "{err}");
    assert_eq!(get(addr, "/a").await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_no_route_matches_are_judged_before_the_404() {
    let mut filter =
        json!({"rules": allow(json!([{"url_path": {"kind": {"prefix": "/public/"}}}]))});
    filter["type"] = json!("rbac");
    let e = Engine::new(1).unwrap();
    e.apply(&common::snapshot(
        vec![json!({
            "name": "ingress",
            "address": "127.0.0.1:0",
            "filter": {"type": "http", "stat_prefix": "ingress", "http_filters": [filter],
                "route_config": {"virtual_hosts": [{"name": "only", "domains": ["known.test"],
                    "routes": [{"match": {"path": {"prefix": "/"}}, "action": {"direct": {"status": 200}}}]}]}},
        })],
        vec![],
    ))
    .unwrap();
    let addr = e.listening()["ingress"];
    // Envoy's chain runs before the router: RBAC refuses first, then no route is a 404.
    let c = common::h1();
    let (status, _, _) = common::get(&c, format!("http://{addr}/private"), "elsewhere.test").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = common::get(&c, format!("http://{addr}/public/x"), "elsewhere.test").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(stat(&e, "http.ingress.no_route"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_network_filter_closes_a_denied_connection_before_its_filter() {
    let up = upstream("up").await;
    let deny_loopback = json!({"stat_prefix": "net", "rules": {"action": "deny", "policies": {
        "loopback": {"permissions": ["any"], "principals": [{"direct_remote_ip": "127.0.0.0/8"}]}}}});
    let snapshot = |filters: Value| {
        let mut l = common::http_listener("ingress", "127.0.0.1:0", common::forward_all("web", 0));
        l["network_rbac"] = filters;
        common::snapshot(vec![l], vec![common::cluster("web", &[up], json!({}))])
    };
    let e = Engine::new(1).unwrap();
    e.apply(&snapshot(json!([deny_loopback]))).unwrap();
    let addr = e.listening()["ingress"];
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = s.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n").await;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    assert!(buf.is_empty(), "a denied connection gets no answer");
    assert_eq!(stat(&e, "net.rbac.denied"), 1);
    assert_eq!(stat(&e, "cluster.web.upstream_rq_total"), 0);

    e.apply(&snapshot(json!([]))).unwrap();
    let (status, _, _) = common::get(&common::h1(), format!("http://{addr}/"), "a").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the same listener, without the filter"
    );
}
