//! TLS through the engine: listeners terminating TLS (ALPN, mutual TLS with SAN
//! and SPIFFE checks, PERMISSIVE, rotation, resumption), clusters originating it,
//! and `x-forwarded-client-cert`. Certificates are made per test with rcgen.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use fastmesh_native::Engine;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

type Error = Box<dyn std::error::Error + Send + Sync>;

const SERVER_ID: &str = "spiffe://td/ns/mesh/sa/server";
const CLIENT_ID: &str = "spiffe://td/ns/app/sa/client";

// ---- a tiny PKI ----

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    der: CertificateDer<'static>,
    pem: String,
}

/// A leaf certificate and its key.
struct Leaf {
    der: CertificateDer<'static>,
    pem: String,
    key_pem: String,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        der: cert.der().clone(),
        pem: cert.pem(),
        params,
        key,
    }
}

fn uri(u: &str) -> SanType {
    SanType::URI(u.try_into().unwrap())
}

fn dns(d: &str) -> SanType {
    SanType::DnsName(d.try_into().unwrap())
}

impl Ca {
    /// An X.509-SVID-shaped leaf with `sans`, changed by `tweak` first.
    fn issue_with(&self, sans: Vec<SanType>, tweak: impl FnOnce(&mut CertificateParams)) -> Leaf {
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, "workload");
        p.subject_alt_names = sans;
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        tweak(&mut p);
        let key = KeyPair::generate().unwrap();
        let cert = p
            .signed_by(&key, &Issuer::from_params(&self.params, &self.key))
            .unwrap();
        Leaf {
            der: cert.der().clone(),
            pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    fn issue(&self, sans: Vec<SanType>) -> Leaf {
        self.issue_with(sans, |_| {})
    }

    /// The proxy's own certificate: a SPIFFE ID, and `localhost` for the test clients.
    fn server_leaf(&self) -> Leaf {
        self.issue(vec![uri(SERVER_ID), dns("localhost")])
    }
}

fn sha256_hex(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---- snapshots ----

fn uri_exact(id: &str) -> Value {
    json!([{"san_type": "uri", "matcher": {"kind": {"exact": id}}}])
}

fn downstream_tls(leaf: &Leaf, extra: Value) -> Value {
    let mut t = json!({
        "cert_chain_pem": leaf.pem,
        "private_key_pem": leaf.key_pem,
        "alpn": ["h2", "http/1.1"],
    });
    t.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    t
}

/// Listener "ingress" with `tls`, forwarding to `up`; `hcm` adds to the connection manager.
fn tls_snapshot(up: SocketAddr, tls: Value, hcm: Value) -> String {
    let mut l = http_listener("ingress", "127.0.0.1:0", forward_all("web", 15000));
    l["tls"] = tls;
    l["filter"]
        .as_object_mut()
        .unwrap()
        .extend(hcm.as_object().unwrap().clone());
    snapshot(vec![l], vec![cluster("web", &[up], json!({}))])
}

fn mtls(ca: &Ca, san: Value) -> Value {
    json!({
        "require_client_certificate": true,
        "validation": {"trusted_ca_pem": ca.pem, "match_subject_alt_names": san},
    })
}

// ---- clients ----

fn client_config(trust: &Ca, cert: Option<&Leaf>, alpn: &[&str]) -> Arc<ClientConfig> {
    client_config_for(rustls::DEFAULT_VERSIONS, trust, cert, alpn)
}

fn client_config_for(
    versions: &[&'static rustls::SupportedProtocolVersion],
    trust: &Ca,
    cert: Option<&Leaf>,
    alpn: &[&str],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(trust.der.clone()).unwrap();
    let b = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut c = match cert {
        Some(l) => b
            .with_client_auth_cert(
                vec![l.der.clone()],
                PrivateKeyDer::from_pem_slice(l.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    c.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(c)
}

/// An open HTTP connection over TLS, and what its handshake showed.
struct Conn {
    send: Sender,
    server_cert: CertificateDer<'static>,
    resumed: bool,
}

enum Sender {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
}

async fn connect(addr: SocketAddr, cfg: &Arc<ClientConfig>) -> Result<Conn, Error> {
    connect_as(addr, cfg, "localhost").await
}

/// `connect`, sending SNI `name`.
async fn connect_as(addr: SocketAddr, cfg: &Arc<ClientConfig>, name: &str) -> Result<Conn, Error> {
    let tcp = TcpStream::connect(addr).await?;
    let tls = TlsConnector::from(cfg.clone())
        .connect(ServerName::try_from(name.to_owned())?, tcp)
        .await?;
    let (_, session) = tls.get_ref();
    let server_cert = session.peer_certificates().unwrap()[0].clone();
    let resumed = session.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    let send = if session.alpn_protocol() == Some(b"h2") {
        let (s, c) = http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
        tokio::spawn(c);
        Sender::H2(s)
    } else {
        let (s, c) = http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(c);
        Sender::H1(s)
    };
    Ok(Conn {
        send,
        server_cert,
        resumed,
    })
}

impl Conn {
    /// GET `path`: status, version, headers, body.
    async fn get(
        &mut self,
        path: &str,
    ) -> Result<(StatusCode, http::Version, http::HeaderMap, String), Error> {
        let resp = match &mut self.send {
            Sender::H1(s) => {
                let req = Request::get(path)
                    .header("host", "localhost")
                    .body(Empty::new())?;
                s.send_request(req).await?
            }
            Sender::H2(s) => {
                let req = Request::get(format!("https://localhost{path}")).body(Empty::new())?;
                s.send_request(req).await?
            }
        };
        let (p, b) = resp.into_parts();
        let body = b.collect().await?.to_bytes();
        Ok((
            p.status,
            p.version,
            p.headers,
            String::from_utf8_lossy(&body).into_owned(),
        ))
    }
}

/// One request on a fresh connection; `Err` when the handshake or the request fails.
async fn get_once(
    addr: SocketAddr,
    cfg: &Arc<ClientConfig>,
) -> Result<(StatusCode, http::HeaderMap), Error> {
    let mut c = connect(addr, cfg).await?;
    let (status, _, headers, _) = c.get("/").await?;
    Ok((status, headers))
}

fn ssl(e: &Engine, name: &str) -> u64 {
    let at = addr_of(e, "ingress").to_string().replace(':', "_");
    stat(e, &format!("listener.{at}.ssl.{name}"))
}

async fn proxy(snapshot: String) -> (Arc<Engine>, SocketAddr) {
    let e = engine();
    e.apply(&snapshot).unwrap();
    let a = addr_of(&e, "ingress");
    (e, a)
}

// ---- downstream ----

#[tokio::test]
async fn tls_listener_serves_http1_and_h2_by_alpn() {
    let up = upstream("up").await;
    let pki = ca("root");
    let (e, addr) = proxy(tls_snapshot(
        up,
        downstream_tls(&pki.server_leaf(), json!({})),
        json!({}),
    ))
    .await;

    for (alpn, version) in [
        ("h2", http::Version::HTTP_2),
        ("http/1.1", http::Version::HTTP_11),
    ] {
        let mut c = connect(addr, &client_config(&pki, None, &[alpn]))
            .await
            .unwrap();
        let (status, v, headers, body) = c.get("/hello").await.unwrap();
        assert_eq!((status, v), (StatusCode::OK, version), "{alpn}");
        assert_eq!(body, "up GET /hello");
        assert_eq!(headers["x-seen-x-forwarded-proto"], "https");
    }
    assert_eq!(ssl(&e, "handshake"), 2);
    assert_eq!(ssl(&e, "no_certificate"), 2);
}

#[tokio::test]
async fn plaintext_to_a_tls_listener_is_refused() {
    let up = upstream("up").await;
    let pki = ca("root");
    let (e, addr) = proxy(tls_snapshot(
        up,
        downstream_tls(&pki.server_leaf(), json!({})),
        json!({}),
    ))
    .await;
    let req = Request::get(format!("http://{addr}/"))
        .body(full(""))
        .unwrap();
    assert!(h1().request(req).await.is_err());
    settle(|| ssl(&e, "connection_error") == 1).await;
    assert_eq!(ssl(&e, "connection_error"), 1);
    assert_eq!(ssl(&e, "handshake"), 0);
}

#[tokio::test]
async fn mutual_tls_refuses_missing_untrusted_and_mismatched_client_certificates() {
    let up = upstream("up").await;
    let pki = ca("root");
    let tls = downstream_tls(&pki.server_leaf(), mtls(&pki, uri_exact(CLIENT_ID)));
    let (e, addr) = proxy(tls_snapshot(up, tls, json!({}))).await;

    assert!(get_once(addr, &client_config(&pki, None, &[]))
        .await
        .is_err());
    settle(|| ssl(&e, "fail_verify_no_cert") == 1).await;
    assert_eq!(ssl(&e, "fail_verify_no_cert"), 1);

    let stranger = ca("other root").issue(vec![uri(CLIENT_ID)]);
    assert!(get_once(addr, &client_config(&pki, Some(&stranger), &[]))
        .await
        .is_err());
    settle(|| ssl(&e, "fail_verify_error") == 1).await;
    assert_eq!(ssl(&e, "fail_verify_error"), 1);

    let impostor = pki.issue(vec![uri("spiffe://td/ns/app/sa/other")]);
    assert!(get_once(addr, &client_config(&pki, Some(&impostor), &[]))
        .await
        .is_err());
    settle(|| ssl(&e, "fail_verify_san") == 1).await;
    assert_eq!(ssl(&e, "fail_verify_san"), 1);

    // As Envoy: a verification failure is not a `connection_error` too.
    assert_eq!(ssl(&e, "connection_error"), 0);
    assert_eq!(ssl(&e, "handshake"), 0);
}

#[tokio::test]
async fn the_right_spiffe_id_is_accepted_and_forwarded_in_xfcc() {
    let up = upstream("up").await;
    let pki = ca("root");
    let tls = downstream_tls(&pki.server_leaf(), mtls(&pki, uri_exact(CLIENT_ID)));
    let hcm = json!({"forward_client_cert": "sanitize_set", "client_cert_details": {"uri": true}});
    let (e, addr) = proxy(tls_snapshot(up, tls, hcm)).await;
    let client = pki.issue(vec![uri(CLIENT_ID)]);

    let mut c = connect(addr, &client_config(&pki, Some(&client), &["h2"]))
        .await
        .unwrap();
    let req = Request::get("https://localhost/").header("x-forwarded-client-cert", "By=forged");
    let Sender::H2(s) = &mut c.send else {
        panic!("h2 expected")
    };
    let resp = s
        .send_request(req.body(Empty::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let xfcc = resp.headers()["x-seen-x-forwarded-client-cert"]
        .to_str()
        .unwrap();
    assert_eq!(
        xfcc,
        format!(
            "By={SERVER_ID};Hash={};URI={CLIENT_ID}",
            sha256_hex(&client.der)
        )
    );
    assert_eq!(ssl(&e, "handshake"), 1);
    assert_eq!(ssl(&e, "no_certificate"), 0);
}

#[tokio::test]
async fn xfcc_from_clients_is_removed_by_default() {
    let up = upstream("up").await;
    let (_e, addr) = proxy(forward_snapshot(up)).await;
    let req = Request::get(format!("http://{addr}/"))
        .header("x-forwarded-client-cert", "By=forged")
        .body(full(""))
        .unwrap();
    let resp = h1().request(req).await.unwrap();
    assert!(!resp
        .headers()
        .contains_key("x-seen-x-forwarded-client-cert"));
    assert_eq!(resp.headers()["x-seen-x-forwarded-proto"], "http");
}

#[tokio::test]
async fn client_svids_breaking_the_spiffe_rules_are_refused() {
    let up = upstream("up").await;
    let pki = ca("root");
    // No SAN matchers: only the chain and the SVID rules apply.
    let tls = downstream_tls(&pki.server_leaf(), mtls(&pki, json!([])));
    let (e, addr) = proxy(tls_snapshot(up, tls, json!({}))).await;

    let two_ids = pki.issue(vec![uri(CLIENT_ID), uri("spiffe://td/ns/app/sa/second")]);
    let no_signature = pki.issue_with(vec![uri(CLIENT_ID)], |p| {
        p.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
    });
    let signs_certs = pki.issue_with(vec![uri(CLIENT_ID)], |p| {
        p.key_usages.push(KeyUsagePurpose::KeyCertSign);
    });
    for (i, bad) in [two_ids, no_signature, signs_certs].iter().enumerate() {
        let r = get_once(addr, &client_config(&pki, Some(bad), &[])).await;
        assert!(r.is_err(), "certificate {i} was accepted");
    }
    settle(|| ssl(&e, "fail_verify_error") == 3).await;
    assert_eq!(ssl(&e, "fail_verify_error"), 3);

    // The rules are SPIFFE's: two plain URI SANs are fine.
    let not_spiffe = pki.issue(vec![uri("https://a.example/x"), uri("https://b.example/y")]);
    let (status, _) = get_once(addr, &client_config(&pki, Some(&not_spiffe), &[]))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn permissive_serves_plaintext_and_tls_on_one_port() {
    let up = upstream("up").await;
    let pki = ca("root");
    let tls = downstream_tls(&pki.server_leaf(), json!({"allow_plaintext": true}));
    let (e, addr) = proxy(tls_snapshot(up, tls, json!({}))).await;

    let (status, headers, _) = get(&h1(), format!("http://{addr}/"), "localhost").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-seen-x-forwarded-proto"], "http");
    let (status, headers) = get_once(addr, &client_config(&pki, None, &[]))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-seen-x-forwarded-proto"], "https");
    assert_eq!(ssl(&e, "handshake"), 1);
}

#[tokio::test]
async fn a_rotated_certificate_serves_new_handshakes_while_open_connections_go_on() {
    let up = upstream("up").await;
    let pki = ca("root");
    let (old, new) = (pki.server_leaf(), pki.server_leaf());
    let (e, addr) = proxy(tls_snapshot(up, downstream_tls(&old, json!({})), json!({}))).await;
    let cfg = client_config(&pki, None, &["http/1.1"]);

    let mut open = connect(addr, &cfg).await.unwrap();
    assert_eq!(open.get("/").await.unwrap().0, StatusCode::OK);
    assert_eq!(open.server_cert, old.der);

    e.apply(&tls_snapshot(
        up,
        downstream_tls(&new, json!({})),
        json!({}),
    ))
    .unwrap();
    assert_eq!(
        addr_of(&e, "ingress"),
        addr,
        "the listener keeps its socket"
    );
    assert_eq!(open.get("/again").await.unwrap().0, StatusCode::OK);
    let fresh = connect(addr, &cfg).await.unwrap();
    assert_eq!(fresh.server_cert, new.der);
}

#[tokio::test]
async fn sessions_resume_and_are_counted() {
    let up = upstream("up").await;
    let pki = ca("root");
    let tls = downstream_tls(&pki.server_leaf(), json!({}));
    let (e, addr) = proxy(tls_snapshot(up, tls.clone(), json!({}))).await;
    let cfg = client_config(&pki, None, &[]);

    let mut first = connect(addr, &cfg).await.unwrap();
    // The response comes after the session tickets: the client has them now.
    first.get("/").await.unwrap();
    assert!(!first.resumed);
    let second = connect(addr, &cfg).await.unwrap();
    assert!(second.resumed);
    // TLS 1.3: the server finishes its side after the client does.
    settle(|| ssl(&e, "session_reused") == 1).await;
    assert_eq!(ssl(&e, "session_reused"), 1);

    // An apply that leaves the TLS context alone keeps its ticket keys.
    e.apply(&tls_snapshot(up, tls, json!({"server_name": "other"})))
        .unwrap();
    assert!(connect(addr, &cfg).await.unwrap().resumed);
    settle(|| ssl(&e, "session_reused") == 2).await;
    assert_eq!(ssl(&e, "session_reused"), 2);
}

/// Listener "ingress": the default chain forwards to `up` with the `localhost`
/// certificate; SNI `api.test` (or `*.api.test`) picks a chain with its own
/// certificate forwarding to `api`.
fn sni_snapshot(up: SocketAddr, api: SocketAddr, pki: &Ca, api_leaf: &Leaf, tag: &str) -> String {
    let mut l = http_listener("ingress", "127.0.0.1:0", forward_all("web", 15000));
    l["tls"] = downstream_tls(&pki.server_leaf(), json!({}));
    let api_filter = http_listener("x", "127.0.0.1:0", forward_all("api", 15000))["filter"].clone();
    l["server_name_chains"] = json!([{
        "server_names": ["api.test", "*.api.test"],
        "tls": downstream_tls(api_leaf, json!({})),
        "filter": api_filter,
    }]);
    l["filter"]["server_name"] = json!(tag);
    snapshot(
        vec![l],
        vec![
            cluster("web", &[up], json!({})),
            cluster("api", &[api], json!({})),
        ],
    )
}

#[tokio::test]
async fn the_sni_picks_the_chain_and_an_apply_keeps_its_sessions() {
    let (up, api) = (upstream("up").await, upstream("api").await);
    let pki = ca("root");
    let api_leaf = pki.issue(vec![dns("api.test"), dns("*.api.test")]);
    let (e, addr) = proxy(sni_snapshot(up, api, &pki, &api_leaf, "one")).await;
    let cfg = client_config(&pki, None, &["http/1.1"]);

    let mut c = connect_as(addr, &cfg, "v1.api.test").await.unwrap();
    assert_eq!(c.server_cert, api_leaf.der);
    assert_eq!(c.get("/x").await.unwrap().3, "api GET /x");
    let mut c = connect(addr, &cfg).await.unwrap();
    assert_eq!(c.get("/x").await.unwrap().3, "up GET /x");

    // The chains' TLS contexts are unchanged: a client resumes on its chain.
    e.apply(&sni_snapshot(up, api, &pki, &api_leaf, "two"))
        .unwrap();
    let mut c = connect_as(addr, &cfg, "v1.api.test").await.unwrap();
    assert!(c.resumed);
    assert_eq!(c.get("/y").await.unwrap().3, "api GET /y");
    assert_eq!(ssl(&e, "handshake"), 3);
}

#[tokio::test]
async fn an_unmatched_sni_without_a_default_chain_is_closed_and_counted() {
    let (up, api) = (upstream("up").await, upstream("api").await);
    let pki = ca("root");
    let api_leaf = pki.issue(vec![dns("api.test")]);
    let mut snap: Value =
        serde_json::from_str(&sni_snapshot(up, api, &pki, &api_leaf, "t")).unwrap();
    let l = snap["listeners"][0].as_object_mut().unwrap();
    l.remove("filter");
    l.remove("tls");
    let (e, addr) = proxy(snap.to_string()).await;
    let cfg = client_config(&pki, None, &[]);
    assert!(connect(addr, &cfg).await.is_err());
    let at = addr.to_string().replace(':', "_");
    settle(|| stat(&e, &format!("listener.{at}.no_filter_chain_match")) == 1).await;
    assert_eq!(stat(&e, &format!("listener.{at}.no_filter_chain_match")), 1);
    assert!(connect_as(addr, &cfg, "api.test").await.is_ok());
}

#[tokio::test]
async fn contradictory_chains_are_refused_at_apply() {
    let (up, api) = (upstream("up").await, upstream("api").await);
    let pki = ca("root");
    let api_leaf = pki.issue(vec![dns("api.test")]);
    let good: Value = serde_json::from_str(&sni_snapshot(up, api, &pki, &api_leaf, "t")).unwrap();
    let mut permissive = good["listeners"][0]["tls"].clone();
    permissive["allow_plaintext"] = json!(true);
    let e = engine();
    for (change, why) in [
        (
            json!({"filter": null, "tls": null, "server_name_chains": []}),
            "filter: missing",
        ),
        (
            json!({"filter": null}),
            "tls and network_rbac belong to the default chain",
        ),
        (
            json!({"tls": permissive}),
            "tls.allow_plaintext: not with server_name_chains",
        ),
    ] {
        let mut snap = good.clone();
        let l = snap["listeners"][0].as_object_mut().unwrap();
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                l.remove(k);
            } else {
                l.insert(k.clone(), v.clone());
            }
        }
        let err = e.apply(&snap.to_string()).unwrap_err().to_string();
        assert!(err.contains(why), "{err}");
    }
}

// ---- upstream ----

/// A TLS acceptor for `leaf`, offering h2 and HTTP/1.1.
fn acceptor(
    leaf: &Leaf,
    b: rustls::ConfigBuilder<ServerConfig, rustls::server::WantsServerCert>,
) -> TlsAcceptor {
    let mut cfg = b
        .with_single_cert(
            vec![leaf.der.clone()],
            PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TlsAcceptor::from(Arc::new(cfg))
}

/// An HTTPS upstream with `leaf`, answering `tls-up <version>` and whether the
/// client presented a certificate.
async fn tls_upstream(leaf: &Leaf, client_ca: Option<&Ca>) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let b = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca.der.clone()).unwrap();
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            b.with_client_cert_verifier(v)
        }
        None => b.with_no_client_auth(),
    };
    let acceptor = acceptor(leaf, b);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else {
                    return;
                };
                let client_cert = tls.get_ref().1.peer_certificates().is_some();
                let svc = hyper::service::service_fn(
                    move |req: Request<hyper::body::Incoming>| async move {
                        let mut r =
                            http::Response::new(full(format!("tls-up {:?}", req.version())));
                        r.headers_mut()
                            .insert("x-client-cert", client_cert.to_string().parse().unwrap());
                        Ok::<_, std::convert::Infallible>(r)
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    addr
}

fn upstream_tls_snapshot(up: SocketAddr, tls: Value) -> String {
    snapshot(
        vec![http_listener(
            "ingress",
            "127.0.0.1:0",
            forward_all("web", 15000),
        )],
        vec![cluster("web", &[up], json!({"tls": tls}))],
    )
}

#[tokio::test]
async fn upstream_tls_checks_the_servers_chain_and_san_not_its_hostname() {
    let pki = ca("root");
    // No DNS name at all: Istio-style, the SPIFFE ID is the identity.
    let up = tls_upstream(&pki.issue(vec![uri(SERVER_ID)]), None).await;
    let validation =
        |id: &str| json!({"trusted_ca_pem": pki.pem, "match_subject_alt_names": uri_exact(id)});

    let (e, addr) = proxy(upstream_tls_snapshot(
        up,
        json!({"validation": validation(SERVER_ID)}),
    ))
    .await;
    let (status, _, body) = get(&h1(), format!("http://{addr}/"), "x").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "tls-up HTTP/1.1"));
    assert_eq!(stat(&e, "cluster.web.ssl.handshake"), 1);

    let (e, addr) = proxy(upstream_tls_snapshot(
        up,
        json!({"validation": validation(CLIENT_ID)}),
    ))
    .await;
    let (status, _, _) = get(&h1(), format!("http://{addr}/"), "x").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(stat(&e, "cluster.web.ssl.fail_verify_san"), 1);
    assert_eq!(stat(&e, "cluster.web.ssl.handshake"), 0);
    assert!(stat(&e, "cluster.web.upstream_cx_connect_fail") >= 1);

    let other = ca("other root");
    let untrusted = json!({"validation": {"trusted_ca_pem": other.pem}});
    let (e, addr) = proxy(upstream_tls_snapshot(up, untrusted)).await;
    let (status, _, _) = get(&h1(), format!("http://{addr}/"), "x").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(stat(&e, "cluster.web.ssl.fail_verify_error") >= 1);
}

#[tokio::test]
async fn upstream_mutual_tls_presents_the_cluster_certificate() {
    let pki = ca("root");
    let up = tls_upstream(&pki.issue(vec![uri(SERVER_ID)]), Some(&pki)).await;
    let mine = pki.issue(vec![uri(CLIENT_ID)]);
    let tls = json!({
        "cert_chain_pem": mine.pem,
        "private_key_pem": mine.key_pem,
        "validation": {"trusted_ca_pem": pki.pem},
    });
    let (_e, addr) = proxy(upstream_tls_snapshot(up, tls.clone())).await;
    let (status, headers, _) = get(&h1(), format!("http://{addr}/"), "x").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-client-cert"], "true");

    // Without a validation context any server certificate goes, as in Envoy.
    let (_e, addr) = proxy(upstream_tls_snapshot(
        up,
        json!({"cert_chain_pem": mine.pem, "private_key_pem": mine.key_pem}),
    ))
    .await;
    let (status, _, _) = get(&h1(), format!("http://{addr}/"), "x").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn bad_tls_material_is_refused_at_apply() {
    let up = upstream("up").await;
    let pki = ca("root");
    let leaf = pki.server_leaf();
    let e = engine();
    let wrong_key =
        json!({"cert_chain_pem": leaf.pem, "private_key_pem": pki.issue(vec![]).key_pem});
    let err = e
        .apply(&tls_snapshot(up, wrong_key, json!({})))
        .unwrap_err()
        .to_string();
    assert!(err.contains("tls"), "{err}");
    let bad_version = downstream_tls(&leaf, json!({"min_version": "1.1"}));
    assert!(e.apply(&tls_snapshot(up, bad_version, json!({}))).is_err());
    let half = json!({"cert_chain_pem": leaf.pem});
    assert!(e.apply(&upstream_tls_snapshot(up, half)).is_err());
    assert!(e.listening().is_empty(), "nothing was applied");
}

#[tokio::test]
async fn h2_upstreams_are_reached_over_tls_with_alpn() {
    let pki = ca("root");
    let up = tls_upstream(&pki.issue(vec![uri(SERVER_ID)]), None).await;
    let snap = snapshot(
        vec![http_listener(
            "ingress",
            "127.0.0.1:0",
            forward_all("web", 15000),
        )],
        vec![cluster(
            "web",
            &[up],
            json!({"http2": true, "tls": {"alpn": ["h2"]}}),
        )],
    );
    let (e, addr) = proxy(snap).await;
    // Eight requests at once, over as many downstream connections as the client opens:
    // each worker multiplexes its share on one upstream connection.
    let client = h1();
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let client = client.clone();
        requests.spawn(async move { get(&client, format!("http://{addr}/"), "x").await });
    }
    while let Some(answer) = requests.join_next().await {
        let (status, _, body) = answer.unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, "tls-up HTTP/2.0"));
    }
    let handshakes = stat(&e, "cluster.web.ssl.handshake");
    assert!(
        (1..=2).contains(&handshakes),
        "8 requests on 2 workers made {handshakes} upstream connections"
    );
}

#[tokio::test]
async fn tcp_proxy_runs_tls_on_both_sides_with_half_close() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let pki = ca("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let up_tls = acceptor(
        &pki.issue(vec![uri(SERVER_ID)]),
        ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth(),
    );
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let mut s = up_tls.accept(s).await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        got.reverse();
        s.write_all(&got).await.unwrap();
        s.shutdown().await.unwrap();
    });
    let mut listener = json!({"name": "ingress", "address": "127.0.0.1:0",
        "filter": {"type": "tcp", "stat_prefix": "db", "cluster": "db"}});
    listener["tls"] = downstream_tls(&pki.server_leaf(), json!({"alpn": []}));
    let upstream_tls = json!({"validation": {"trusted_ca_pem": pki.pem, "match_subject_alt_names": uri_exact(SERVER_ID)}});
    let (e, addr) = proxy(snapshot(
        vec![listener],
        vec![cluster("db", &[up], json!({"tls": upstream_tls}))],
    ))
    .await;

    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut s = TlsConnector::from(client_config(&pki, None, &[]))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    s.write_all(b"hello").await.unwrap();
    s.shutdown().await.unwrap();
    let mut back = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, b"olleh");
    assert_eq!(ssl(&e, "handshake"), 1);
    assert_eq!(stat(&e, "cluster.db.ssl.handshake"), 1);
}

#[tokio::test]
async fn min_version_1_3_refuses_tls_1_2_clients() {
    let up = upstream("up").await;
    let pki = ca("root");
    let tls = downstream_tls(&pki.server_leaf(), json!({"min_version": "1.3"}));
    let (e, addr) = proxy(tls_snapshot(up, tls, json!({}))).await;
    let old = client_config_for(&[&rustls::version::TLS12], &pki, None, &[]);
    assert!(get_once(addr, &old).await.is_err());
    settle(|| ssl(&e, "connection_error") == 1).await;
    assert_eq!(ssl(&e, "connection_error"), 1);
    let (status, _) = get_once(addr, &client_config(&pki, None, &[]))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn mutual_tls_1_2_verifies_resumes_and_forwards_the_identity() {
    let up = upstream("up").await;
    let pki = ca("root");
    let tls = downstream_tls(&pki.server_leaf(), mtls(&pki, uri_exact(CLIENT_ID)));
    let hcm =
        json!({"forward_client_cert": "append_forward", "client_cert_details": {"uri": true}});
    let (e, addr) = proxy(tls_snapshot(up, tls, hcm)).await;
    let client = pki.issue(vec![uri(CLIENT_ID)]);
    let cfg = client_config_for(&[&rustls::version::TLS12], &pki, Some(&client), &[]);

    let mut first = connect(addr, &cfg).await.unwrap();
    let (status, _, headers, _) = first.get("/").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["x-seen-x-forwarded-client-cert"],
        format!(
            "By={SERVER_ID};Hash={};URI={CLIENT_ID}",
            sha256_hex(&client.der)
        )
        .as_str()
    );
    let mut second = connect(addr, &cfg).await.unwrap();
    assert!(second.resumed);
    // A resumed session still knows its peer.
    let (_, _, headers, _) = second.get("/").await.unwrap();
    assert!(headers.contains_key("x-seen-x-forwarded-client-cert"));
    assert_eq!(ssl(&e, "session_reused"), 1);
}
