//! Requests refused before routing because a front end and a back end could read
//! them differently (request smuggling), as Envoy refuses them. hyper has already
//! refused what it cannot frame (bad lengths, chunking, header syntax); these
//! parse, but are ambiguous. The connection is closed after the answer.

use http::{Method, Request, StatusCode, Version};

/// Why `request` must not be routed, as the status to answer; None if it may.
pub fn refusal<B>(request: &Request<B>) -> Option<StatusCode> {
    let uri = request.uri();
    if request.method() == Method::CONNECT {
        // No route accepts CONNECT (Envoy needs `connect_matcher`). Whatever
        // follows it on the connection is tunnel payload to the client, never a
        // request to parse.
        return Some(match uri.authority() {
            Some(_) if uri.path_and_query().is_none() => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        });
    }
    if request.version() == Version::HTTP_11
        && request.headers().get_all(http::header::HOST).iter().count() != 1
    {
        // RFC 9112 3.2: none or several Host lines is a 400, or one hop routes on
        // the first and the next on the last.
        return Some(StatusCode::BAD_REQUEST);
    }
    let odd_scheme = !matches!(uri.scheme_str(), None | Some("http" | "https"));
    // `http://user@host/`: routed on the whole authority, but a later hop may
    // read only what follows the `@` (RFC 9110 4.2.4 deprecates userinfo).
    let userinfo = uri.authority().is_some_and(|a| a.as_str().contains('@'));
    (odd_scheme || userinfo).then_some(StatusCode::BAD_REQUEST)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, target: &str, hosts: &[&str]) -> Request<()> {
        let mut b = Request::builder().method(method).uri(target);
        for h in hosts {
            b = b.header("host", *h);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn an_ordinary_request_passes() {
        assert_eq!(refusal(&request("GET", "/a", &["x"])), None);
        assert_eq!(
            refusal(&request("GET", "http://x/a", &["y"])),
            None,
            "absolute-form: the target's authority wins over Host"
        );
    }

    #[test]
    fn host_must_appear_exactly_once_in_http11() {
        assert_eq!(
            refusal(&request("GET", "/", &[])),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            refusal(&request("GET", "/", &["a", "b"])),
            Some(StatusCode::BAD_REQUEST)
        );
        let mut old = request("GET", "/", &[]);
        *old.version_mut() = Version::HTTP_10;
        assert_eq!(refusal(&old), None, "HTTP/1.0 may omit Host");
    }

    #[test]
    fn connect_is_refused() {
        assert_eq!(
            refusal(&request("CONNECT", "example.com:443", &["example.com:443"])),
            Some(StatusCode::NOT_FOUND)
        );
        assert_eq!(
            refusal(&request("CONNECT", "/", &["x"])),
            Some(StatusCode::BAD_REQUEST)
        );
    }

    #[test]
    fn only_plain_http_targets_are_proxied() {
        assert_eq!(
            refusal(&request("GET", "ftp://x/", &["x"])),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            refusal(&request("GET", "http://a@internal/", &["x"])),
            Some(StatusCode::BAD_REQUEST)
        );
    }
}
