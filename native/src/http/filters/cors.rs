//! Envoy's `envoy.filters.http.cors` with the route's or virtual host's
//! `CorsPolicy`: preflights from allowed origins are answered here; other
//! requests from allowed origins get `access-control-allow-origin` (and
//! credentials, exposed headers) on their response; anything else passes untouched.

use std::sync::Arc;

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN,
};
use http::{request, response, HeaderName, HeaderValue, Method, Response, StatusCode};

use crate::config::{CorsPolicy, Fraction};
use crate::http::filter::{FilterAction, FilterCtx, HttpFilter};
use crate::http::router::StringMatcherRt;
use crate::http::ProxyBody;
use crate::stats::{cors as st, Registry, StatGroup};

static REQUEST_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-request-private-network");
static ALLOW_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-allow-private-network");
const TRUE: HeaderValue = HeaderValue::from_static("true");

/// One compiled `CorsPolicy`.
#[derive(Debug)]
pub struct CorsPolicyRt {
    allow_origin: Vec<StringMatcherRt>,
    /// Envoy: a matcher that matches `*` allows every origin.
    allow_any: bool,
    allow_methods: Option<HeaderValue>,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
    allow_credentials: bool,
    allow_private_network_access: bool,
    enabled: Fraction,
    forward_not_matching_preflights: bool,
}

impl CorsPolicyRt {
    /// `what` names the owner in errors.
    pub fn compile(c: &CorsPolicy, what: &str) -> Result<Self, String> {
        let value = |field: &str, v: &str| -> Result<Option<HeaderValue>, String> {
            if v.is_empty() {
                return Ok(None);
            }
            HeaderValue::from_str(v)
                .map(Some)
                .map_err(|_| format!("{what}: cors: bad {field} {v:?}"))
        };
        let allow_origin: Vec<StringMatcherRt> = c
            .allow_origin
            .iter()
            .map(|m| StringMatcherRt::compile(m, &format!("{what}: cors")))
            .collect::<Result<_, _>>()?;
        Ok(CorsPolicyRt {
            allow_any: allow_origin.iter().any(|m| m.matches("*")),
            allow_origin,
            allow_methods: value("allow_methods", &c.allow_methods)?,
            allow_headers: value("allow_headers", &c.allow_headers)?,
            expose_headers: value("expose_headers", &c.expose_headers)?,
            max_age: value("max_age", &c.max_age)?,
            allow_credentials: c.allow_credentials,
            allow_private_network_access: c.allow_private_network_access,
            enabled: c.enabled,
            forward_not_matching_preflights: c.forward_not_matching_preflights,
        })
    }

    fn allows(&self, origin: &str) -> bool {
        self.allow_any || self.allow_origin.iter().any(|m| m.matches(origin))
    }

    /// The local answer to a preflight, in Envoy's header order; `origin` when it is
    /// allowed (Envoy answers one it does not allow, when not forwarding it, without it).
    fn preflight(&self, origin: Option<HeaderValue>, req: &request::Parts) -> Response<ProxyBody> {
        let mut r = Response::new(ProxyBody::empty());
        *r.status_mut() = StatusCode::OK;
        let h = r.headers_mut();
        if let Some(origin) = origin {
            h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        }
        if self.allow_credentials {
            h.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
        }
        let fields = [
            (ACCESS_CONTROL_ALLOW_METHODS, &self.allow_methods),
            (ACCESS_CONTROL_ALLOW_HEADERS, &self.allow_headers),
            (ACCESS_CONTROL_MAX_AGE, &self.max_age),
        ];
        for (name, v) in fields {
            if let Some(v) = v {
                h.insert(name, v.clone());
            }
        }
        if self.allow_private_network_access
            && req
                .headers
                .get(&REQUEST_PRIVATE_NETWORK)
                .map(|v| v.as_bytes())
                == Some(b"true")
        {
            h.insert(ALLOW_PRIVATE_NETWORK.clone(), TRUE);
        }
        r
    }
}

/// The chain entry. Its policy is always the route's or virtual host's; without
/// one it does nothing.
#[derive(Debug)]
pub struct CorsFilter {
    stats: Arc<StatGroup>,
}

impl CorsFilter {
    /// Stats land under `http.<stat_prefix>.cors.*`.
    pub fn new(stats: &Registry, stat_prefix: &str) -> Self {
        CorsFilter {
            stats: stats.group(&format!("http.{stat_prefix}.cors"), st::NAMES),
        }
    }
}

impl HttpFilter for CorsFilter {
    fn name(&self) -> &str {
        "envoy.filters.http.cors"
    }

    fn request_headers(&self, ctx: &mut FilterCtx<'_>, req: &mut request::Parts) -> FilterAction {
        let overrides = ctx.route_filters;
        let Some(policy) = overrides.cors.as_deref() else {
            return FilterAction::Continue;
        };
        if !policy.enabled.roll() {
            return FilterAction::Continue;
        }
        let Some(origin) = req.headers.get(ORIGIN).filter(|o| !o.is_empty()) else {
            return FilterAction::Continue;
        };
        let preflight = req.method == Method::OPTIONS
            && req
                .headers
                .get(ACCESS_CONTROL_REQUEST_METHOD)
                .is_some_and(|m| !m.is_empty());
        if !origin.to_str().is_ok_and(|o| policy.allows(o)) {
            self.stats.inc(st::ORIGIN_INVALID);
            return if preflight && !policy.forward_not_matching_preflights {
                FilterAction::Respond(policy.preflight(None, req))
            } else {
                FilterAction::Continue
            };
        }
        self.stats.inc(st::ORIGIN_VALID);
        ctx.state.cors_origin = Some(origin.clone());
        if preflight {
            FilterAction::Respond(policy.preflight(Some(origin.clone()), req))
        } else {
            FilterAction::Continue
        }
    }

    fn response_headers(&self, ctx: &FilterCtx<'_>, resp: &mut response::Parts) {
        let (Some(origin), Some(policy)) = (&ctx.state.cors_origin, &ctx.route_filters.cors) else {
            return;
        };
        let h = &mut resp.headers;
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        if policy.allow_credentials {
            h.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
        }
        if let Some(v) = &policy.expose_headers {
            h.insert(ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::filter::FilterChain;
    use crate::http::filters::RouteFilters;

    fn route(policy: serde_json::Value) -> RouteFilters {
        RouteFilters {
            cors: Some(Arc::new(
                CorsPolicyRt::compile(&serde_json::from_value(policy).unwrap(), "t").unwrap(),
            )),
            ..RouteFilters::default()
        }
    }

    fn full_policy() -> RouteFilters {
        route(serde_json::json!({
            "allow_origin": [{"kind": {"exact": "https://ok.com"}}],
            "allow_methods": "GET, POST",
            "allow_headers": "x-a,x-b",
            "expose_headers": "x-exp",
            "max_age": "600",
            "allow_credentials": true,
            "allow_private_network_access": true,
        }))
    }

    fn chain(stats: &Registry) -> FilterChain {
        FilterChain {
            filters: vec![Arc::new(CorsFilter::new(stats, "in"))],
        }
    }

    /// Run `req` through the chain; a request that passes gets a bare 200 "upstream" response.
    async fn send(
        chain: &FilterChain,
        route: &RouteFilters,
        method: &str,
        headers: &[(&str, &str)],
    ) -> (bool, Vec<(String, String)>) {
        let mut b = http::Request::builder().method(method).uri("/");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let mut req = b.body(()).unwrap().into_parts().0;
        let mut ctx = FilterCtx::new(crate::conn::test_conn(), None, route);
        let (local, r) = match chain.on_request(&mut ctx, &mut req).await {
            Some(r) => (true, r),
            None => (
                false,
                chain.respond(&ctx, Response::new(ProxyBody::empty())),
            ),
        };
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        (local, headers)
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn preflight_from_allowed_origin_is_answered_like_envoy() {
        let stats = Registry::default();
        let (c, r) = (chain(&stats), full_policy());
        let asked = [
            ("origin", "https://ok.com"),
            ("access-control-request-method", "GET"),
            ("access-control-request-private-network", "true"),
        ];
        let (local, headers) = send(&c, &r, "OPTIONS", &asked).await;
        assert!(local);
        // Envoy 1.40's exact headers and order: the response hook adds expose-headers last.
        assert_eq!(
            headers,
            pairs(&[
                ("access-control-allow-origin", "https://ok.com"),
                ("access-control-allow-credentials", "true"),
                ("access-control-allow-methods", "GET, POST"),
                ("access-control-allow-headers", "x-a,x-b"),
                ("access-control-max-age", "600"),
                ("access-control-allow-private-network", "true"),
                ("access-control-expose-headers", "x-exp"),
            ])
        );
        let (_, headers) = send(&c, &r, "OPTIONS", &asked[..2]).await;
        assert!(
            !headers
                .iter()
                .any(|(k, _)| k == "access-control-allow-private-network"),
            "private network access only when asked"
        );
    }

    #[tokio::test]
    async fn simple_requests_get_origin_on_the_response() {
        let stats = Registry::default();
        let (c, r) = (chain(&stats), full_policy());
        let (local, headers) = send(&c, &r, "GET", &[("origin", "https://ok.com")]).await;
        assert!(!local);
        assert_eq!(
            headers,
            pairs(&[
                ("access-control-allow-origin", "https://ok.com"),
                ("access-control-allow-credentials", "true"),
                ("access-control-expose-headers", "x-exp"),
            ])
        );
        // OPTIONS without access-control-request-method is no preflight.
        let (local, _) = send(&c, &r, "OPTIONS", &[("origin", "https://ok.com")]).await;
        assert!(!local);
    }

    #[tokio::test]
    async fn disallowed_origins_pass_untouched() {
        let stats = Registry::default();
        let (c, r) = (chain(&stats), full_policy());
        let bad = [
            ("origin", "https://bad.com"),
            ("access-control-request-method", "GET"),
        ];
        assert_eq!(send(&c, &r, "OPTIONS", &bad).await, (false, vec![]));
        assert_eq!(send(&c, &r, "GET", &bad[..1]).await, (false, vec![]));
        let snap = stats.snapshot();
        let get = |n: &str| snap.iter().find(|(k, _)| k == n).unwrap().1;
        assert_eq!(get("http.in.cors.origin_invalid"), 2);
        assert_eq!(get("http.in.cors.origin_valid"), 0);
    }

    #[tokio::test]
    async fn unmatched_preflights_answered_here_when_not_forwarded() {
        let stats = Registry::default();
        let c = chain(&stats);
        let r = route(serde_json::json!({
            "allow_origin": [{"kind": {"exact": "https://ok.com"}}],
            "allow_methods": "GET",
            "forward_not_matching_preflights": false,
        }));
        let bad = [
            ("origin", "https://bad.com"),
            ("access-control-request-method", "GET"),
        ];
        // As Envoy: a local 200 with the policy's headers but no allow-origin.
        assert_eq!(
            send(&c, &r, "OPTIONS", &bad).await,
            (true, pairs(&[("access-control-allow-methods", "GET")]))
        );
        // Only preflights: other requests from the origin still pass.
        assert_eq!(send(&c, &r, "GET", &bad[..1]).await, (false, vec![]));
    }

    #[tokio::test]
    async fn no_policy_or_disabled_policy_does_nothing() {
        let stats = Registry::default();
        let c = chain(&stats);
        let h = [
            ("origin", "https://ok.com"),
            ("access-control-request-method", "GET"),
        ];
        assert_eq!(
            send(&c, &RouteFilters::NONE, "OPTIONS", &h).await,
            (false, vec![])
        );
        let off = route(serde_json::json!({
            "allow_origin": [{"kind": {"exact": "https://ok.com"}}],
            "enabled": {"numerator": 0},
        }));
        assert_eq!(send(&c, &off, "OPTIONS", &h).await, (false, vec![]));
    }

    #[test]
    fn origin_matchers() {
        let p = |m: serde_json::Value| {
            CorsPolicyRt::compile(
                &serde_json::from_value(serde_json::json!({ "allow_origin": [m] })).unwrap(),
                "t",
            )
            .unwrap()
        };
        assert!(p(serde_json::json!({"kind": {"exact": "*"}})).allows("https://any.org"));
        let suffix =
            p(serde_json::json!({"kind": {"suffix": ".Example.com"}, "ignore_case": true}));
        assert!(suffix.allows("https://a.EXAMPLE.com"));
        assert!(!suffix.allows("https://example.org"));
        let re = p(serde_json::json!({"kind": {"regex": "https://[a-z]+\\.ok\\.com"}}));
        assert!(re.allows("https://api.ok.com"));
        assert!(
            !re.allows("https://api.ok.com.evil.org"),
            "regex matches the whole origin"
        );
        assert!(!p(serde_json::json!({"kind": {"prefix": "https://ok"}})).allows("http://ok.com"));
    }
}
