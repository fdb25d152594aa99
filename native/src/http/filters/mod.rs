//! Envoy's native HTTP filters (fault, local rate limit, CORS, RBAC), the per-route
//! configs that override them, and what they share: percentage rolls and
//! Envoy-shaped local replies.

pub mod cors;
pub mod fault;
pub mod local_rate_limit;
pub mod rbac;

use std::sync::Arc;

use http::header::CONTENT_TYPE;
use http::{request, HeaderValue, Response, StatusCode};

use crate::config::{FilterOverrides, HttpFilterConfig};
use crate::http::filter::HttpFilter;
use crate::http::ProxyBody;
use crate::rbac::{Rbac, RbacStats};
use crate::stats::Registry;

/// One chain entry from its config.
pub(crate) fn build(
    cfg: &HttpFilterConfig,
    stats: &Registry,
    stat_prefix: &str,
) -> Result<Arc<dyn HttpFilter>, String> {
    Ok(match cfg {
        HttpFilterConfig::Fault(c) => Arc::new(fault::FaultFilter::new(
            Arc::new(fault::FaultPolicy::compile(c, "http filter fault")?),
            stats,
            stat_prefix,
        )),
        HttpFilterConfig::LocalRateLimit(c) => {
            Arc::new(local_rate_limit::LocalRateLimitFilter::new(Arc::new(
                local_rate_limit::RateLimitPolicy::compile(
                    c,
                    stats,
                    "http filter local_rate_limit",
                )?,
            )))
        }
        HttpFilterConfig::Cors => Arc::new(cors::CorsFilter::new(stats, stat_prefix)),
        HttpFilterConfig::Rbac(c) => Arc::new(rbac::RbacFilter::new(
            Arc::new(Rbac::compile(c, "http filter rbac")?),
            RbacStats::http(stats, stat_prefix, &c.stat_prefix),
        )),
    })
}

/// A route's per-filter configs (Envoy `typed_per_filter_config`), its virtual
/// host's laid under it. `None` leaves the filter's own config in force.
#[derive(Debug, Default)]
pub struct RouteFilters {
    pub fault: Option<Arc<fault::FaultPolicy>>,
    /// One token bucket per config: a virtual host's is shared by its routes.
    pub local_rate_limit: Option<Arc<local_rate_limit::RateLimitPolicy>>,
    pub cors: Option<Arc<cors::CorsPolicyRt>>,
    /// Envoy `RBACPerRoute`: replaces the filter's rules and shadow rules.
    pub rbac: Option<Arc<Rbac>>,
}

impl RouteFilters {
    /// No overrides.
    pub const NONE: RouteFilters = RouteFilters {
        fault: None,
        local_rate_limit: None,
        cors: None,
        rbac: None,
    };

    /// `what` names the owner (route or virtual host) in errors.
    pub fn compile(o: &FilterOverrides, stats: &Registry, what: &str) -> Result<Self, String> {
        Ok(RouteFilters {
            fault: match &o.fault {
                Some(c) => Some(Arc::new(fault::FaultPolicy::compile(c, what)?)),
                None => None,
            },
            local_rate_limit: match &o.local_rate_limit {
                Some(c) => Some(Arc::new(local_rate_limit::RateLimitPolicy::compile(
                    c, stats, what,
                )?)),
                None => None,
            },
            cors: match &o.cors {
                Some(c) => Some(Arc::new(cors::CorsPolicyRt::compile(c, what)?)),
                None => None,
            },
            rbac: match &o.rbac {
                Some(c) => Some(Arc::new(Rbac::compile(c, what)?)),
                None => None,
            },
        })
    }

    /// These (a route's) overrides, each falling back to `vhost`'s. Fallbacks share
    /// the virtual host's compiled config, so its rate limit bucket stays one bucket.
    pub fn over(self, vhost: &RouteFilters) -> RouteFilters {
        RouteFilters {
            fault: self.fault.or_else(|| vhost.fault.clone()),
            local_rate_limit: self
                .local_rate_limit
                .or_else(|| vhost.local_rate_limit.clone()),
            cors: self.cors.or_else(|| vhost.cors.clone()),
            rbac: self.rbac.or_else(|| vhost.rbac.clone()),
        }
    }
}

/// What filters remember about one request between its request and response hooks.
#[derive(Debug, Default)]
pub struct RequestState {
    /// CORS: the allowed `origin` of this request, echoed on the response.
    pub(crate) cors_origin: Option<HeaderValue>,
    /// Fault: this request's slot in `active_faults`, freed when the request ends.
    pub(crate) active_fault: Option<fault::ActiveFault>,
    /// Local rate limit: the bucket as this request left it, for `x-ratelimit-*`.
    pub(crate) rate_limit: Option<local_rate_limit::XRateLimit>,
}

/// Envoy's `Grpc::Common::isGrpcRequestHeaders`: `application/grpc`, optionally
/// followed by `+codec` or `;params` (not `application/grpc-web`).
fn is_grpc(req: &request::Parts) -> bool {
    req.headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.as_bytes().strip_prefix(b"application/grpc"))
        .is_some_and(|rest| matches!(rest.first(), None | Some(b'+') | Some(b';')))
}

/// Envoy's `Grpc::Utility::httpToGrpcStatus`.
fn grpc_status_for(status: StatusCode) -> u32 {
    match status.as_u16() {
        400 => 13,                   // INTERNAL
        401 => 16,                   // UNAUTHENTICATED
        403 => 7,                    // PERMISSION_DENIED
        404 => 12,                   // UNIMPLEMENTED
        429 | 502 | 503 | 504 => 14, // UNAVAILABLE
        _ => 2,                      // UNKNOWN
    }
}

/// A filter's local reply as Envoy's `sendLocalReply` shapes it: `body` as plain
/// text, or for a gRPC request a trailers-only response (HTTP 200,
/// `content-type: application/grpc`, `grpc-status` = `grpc` or the status
/// mapped from `status`, `grpc-message` = `body`).
pub(crate) fn local_reply(
    req: &request::Parts,
    status: StatusCode,
    grpc: Option<u32>,
    body: &'static str,
) -> Response<ProxyBody> {
    if !is_grpc(req) {
        return crate::http::local_reply(status, body);
    }
    let mut r = Response::new(ProxyBody::empty());
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.insert(
        "grpc-status",
        HeaderValue::from(grpc.unwrap_or_else(|| grpc_status_for(status))),
    );
    h.insert("grpc-message", HeaderValue::from_static(body));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LocalRateLimitConfig;

    fn req(content_type: Option<&str>) -> request::Parts {
        let mut b = http::Request::builder();
        if let Some(ct) = content_type {
            b = b.header("content-type", ct);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn grpc_requests_get_trailers_only_replies() {
        for ct in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc;x=1",
        ] {
            let r = local_reply(&req(Some(ct)), StatusCode::TOO_MANY_REQUESTS, None, "nope");
            assert_eq!(r.status(), StatusCode::OK, "{ct}");
            assert_eq!(r.headers()["content-type"], "application/grpc");
            assert_eq!(r.headers()["grpc-status"], "14");
            assert_eq!(r.headers()["grpc-message"], "nope");
        }
        let r = local_reply(&req(Some("application/grpc")), StatusCode::OK, Some(5), "x");
        assert_eq!(r.headers()["grpc-status"], "5");
        for ct in [None, Some("application/grpc-web"), Some("text/plain")] {
            let r = local_reply(&req(ct), StatusCode::FORBIDDEN, Some(5), "nope");
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{ct:?}");
            assert_eq!(r.headers()["content-type"], "text/plain");
            assert!(!r.headers().contains_key("grpc-status"));
        }
    }

    fn rate_limit(stat_prefix: &str, on: u32) -> LocalRateLimitConfig {
        serde_json::from_value(serde_json::json!({
            "stat_prefix": stat_prefix,
            "token_bucket": {"max_tokens": 1, "fill_interval_ms": 3_600_000},
            "enabled": {"numerator": on}, "enforced": {"numerator": on},
        }))
        .unwrap()
    }

    fn overrides(rl: Option<LocalRateLimitConfig>) -> FilterOverrides {
        FilterOverrides {
            local_rate_limit: rl.map(Box::new),
            ..Default::default()
        }
    }

    /// Status of one request through `chain` on a route with `route` overrides.
    async fn status(chain: &crate::http::filter::FilterChain, route: &RouteFilters) -> u16 {
        let mut ctx = crate::http::filter::FilterCtx::new(crate::conn::test_conn(), None, route);
        let mut req = req(None);
        chain
            .on_request(&mut ctx, &mut req)
            .await
            .map_or(200, |r| r.status().as_u16())
    }

    #[tokio::test]
    async fn route_overrides_win_and_a_vhost_bucket_is_shared_by_its_routes() {
        let stats = Registry::default();
        // The filter's own config limits nothing; the overrides allow one request each.
        let chain = crate::http::filter::FilterChain::compile(
            &[HttpFilterConfig::LocalRateLimit(rate_limit("own", 0))],
            &stats,
            "in",
        )
        .unwrap();
        let vhost =
            RouteFilters::compile(&overrides(Some(rate_limit("vh", 100))), &stats, "vh").unwrap();
        let compile_route = |rl| {
            RouteFilters::compile(&overrides(rl), &stats, "r")
                .unwrap()
                .over(&vhost)
        };
        let (a, b) = (compile_route(None), compile_route(None));
        let with_own = compile_route(Some(rate_limit("route", 100)));

        assert_eq!(status(&chain, &a).await, 200);
        assert_eq!(
            status(&chain, &b).await,
            429,
            "b drew from a's (the vhost's) bucket"
        );
        assert_eq!(status(&chain, &with_own).await, 200, "its own bucket");
        assert_eq!(status(&chain, &with_own).await, 429);
        for _ in 0..3 {
            assert_eq!(status(&chain, &RouteFilters::NONE).await, 200);
        }
    }
}
