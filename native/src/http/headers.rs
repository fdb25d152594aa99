//! Header work the proxy does on every request and response: configured
//! add/remove mutations (route, then virtual host, then route config), hop-by-hop
//! removal, and Envoy's `x-forwarded-*` / `x-request-id` conventions.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::HeaderMutation;

/// One level's compiled header mutations. Most levels have none, so the
/// lists live behind one pointer: an empty level costs 8 bytes per route.
#[derive(Debug, Default)]
pub struct HeaderOps(Option<Box<Mutations>>);

#[derive(Debug)]
struct Mutations {
    request_add: Vec<(HeaderName, HeaderValue, bool)>,
    request_remove: Vec<HeaderName>,
    response_add: Vec<(HeaderName, HeaderValue, bool)>,
    response_remove: Vec<HeaderName>,
}

fn name(n: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes())
        .map_err(|_| format!("bad header name {n:?}"))
}

impl HeaderOps {
    pub fn compile(m: &HeaderMutation) -> Result<Self, String> {
        let adds = |v: &[crate::config::HeaderValueOption]| {
            v.iter()
                .map(|o| {
                    let val = HeaderValue::from_str(&o.value)
                        .map_err(|_| format!("bad value for header {:?}", o.name))?;
                    Ok((name(&o.name)?, val, o.append))
                })
                .collect::<Result<Vec<_>, String>>()
        };
        let removes = |v: &[String]| {
            v.iter()
                .map(|n| name(n))
                .collect::<Result<Vec<_>, String>>()
        };
        let m = Mutations {
            request_add: adds(&m.request_add)?,
            request_remove: removes(&m.request_remove)?,
            response_add: adds(&m.response_add)?,
            response_remove: removes(&m.response_remove)?,
        };
        let empty = m.request_add.is_empty()
            && m.request_remove.is_empty()
            && m.response_add.is_empty()
            && m.response_remove.is_empty();
        Ok(HeaderOps((!empty).then(|| Box::new(m))))
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    pub fn apply_request(&self, h: &mut HeaderMap) {
        if let Some(m) = &self.0 {
            apply(h, &m.request_remove, &m.request_add);
        }
    }

    pub fn apply_response(&self, h: &mut HeaderMap) {
        if let Some(m) = &self.0 {
            apply(h, &m.response_remove, &m.response_add);
        }
    }
}

fn apply(h: &mut HeaderMap, remove: &[HeaderName], add: &[(HeaderName, HeaderValue, bool)]) {
    for n in remove {
        h.remove(n);
    }
    for (n, v, append) in add {
        if *append {
            h.append(n.clone(), v.clone());
        } else {
            h.insert(n.clone(), v.clone());
        }
    }
}

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_ORIGINAL_PATH: HeaderName = HeaderName::from_static("x-envoy-original-path");
pub static X_ORIGINAL_HOST: HeaderName = HeaderName::from_static("x-envoy-original-host");
pub static X_EXPECTED_TIMEOUT: HeaderName =
    HeaderName::from_static("x-envoy-expected-rq-timeout-ms");
pub static X_UPSTREAM_SERVICE_TIME: HeaderName =
    HeaderName::from_static("x-envoy-upstream-service-time");

/// Drop connection-scoped headers (and those `connection` names); keep `te: trailers`.
pub fn remove_hop_by_hop(h: &mut HeaderMap) {
    if let Some(conn) = h.remove(header::CONNECTION) {
        if let Ok(s) = conn.to_str() {
            for n in s.split(',') {
                let n = n.trim();
                if !n.is_empty() && !n.eq_ignore_ascii_case("te") {
                    if let Ok(n) = HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes()) {
                        h.remove(n);
                    }
                }
            }
        }
    }
    h.remove(&KEEP_ALIVE);
    h.remove(&PROXY_CONNECTION);
    h.remove(header::TRANSFER_ENCODING);
    h.remove(header::UPGRADE);
    // hyper answers `100 Continue` downstream once the body is read; upstream never sees it.
    h.remove(header::EXPECT);
    if let Some(te) = h.get(header::TE) {
        let trailers = te.to_str().map(|s| {
            s.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
        if trailers.unwrap_or(false) {
            h.insert(header::TE, HeaderValue::from_static("trailers"));
        } else {
            h.remove(header::TE);
        }
    }
}

/// Response side: hyper re-frames bodies itself, so framing and connection headers go.
pub fn remove_hop_by_hop_response(h: &mut HeaderMap) {
    if h.contains_key(header::CONNECTION) {
        h.remove(header::CONNECTION);
    }
    h.remove(&KEEP_ALIVE);
    h.remove(&PROXY_CONNECTION);
    h.remove(header::TRANSFER_ENCODING);
    h.remove(header::UPGRADE);
}

/// hyper's HTTP/1.1 encoder only sends trailers the response declares in
/// `trailer`; h2 upstreams never declare them. For gRPC (whose status lives in
/// trailers) declare gRPC's own, so h1 clients keep them.
pub fn declare_grpc_trailers(h: &mut HeaderMap) {
    let grpc = h
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if grpc && !h.contains_key(header::TRAILER) {
        h.insert(
            header::TRAILER,
            HeaderValue::from_static("grpc-status, grpc-message, grpc-status-details-bin"),
        );
    }
}

/// A random (v4) UUID, as Envoy puts in `x-request-id`.
pub fn request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut b = fastrand::u128(..).to_le_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut out = [0u8; 36];
    let mut o = 0;
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[o] = b'-';
            o += 1;
        }
        out[o] = HEX[(byte >> 4) as usize];
        out[o + 1] = HEX[(byte & 0xf) as usize];
        o += 2;
    }
    HeaderValue::from_bytes(&out).expect("hex is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_but_te_trailers_stays() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("gzip, trailers"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h);
        assert!(
            h.get("x-secret").is_none()
                && h.get("keep-alive").is_none()
                && h.get("connection").is_none()
        );
        assert_eq!(h.get(header::TE).unwrap(), "trailers");
        assert_eq!(h.get("x-keep").unwrap(), "1");
    }

    #[test]
    fn mutations_add_append_and_remove() {
        let m: HeaderMutation = serde_json::from_str(
            r#"{"request_add":[{"name":"X-A","value":"1"},{"name":"x-b","value":"2","append":false}],
                "request_remove":["x-gone"]}"#,
        )
        .unwrap();
        let ops = HeaderOps::compile(&m).unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("0"));
        h.insert("x-b", HeaderValue::from_static("0"));
        h.insert("x-gone", HeaderValue::from_static("0"));
        ops.apply_request(&mut h);
        assert_eq!(h.get_all("x-a").iter().count(), 2);
        assert_eq!(h.get("x-b").unwrap(), "2");
        assert!(h.get("x-gone").is_none());
    }

    #[test]
    fn request_ids_are_uuid_v4() {
        let id = request_id();
        let s = id.to_str().unwrap();
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
        assert_ne!(request_id(), id);
    }
}
