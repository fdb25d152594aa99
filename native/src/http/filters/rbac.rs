//! Envoy's `envoy.filters.http.rbac`: the route's (or virtual host's) RBAC config
//! if it has one, else the filter's own, decides each request; a denied one is
//! answered 403 `RBAC: access denied` (a trailers-only `PERMISSION_DENIED` for gRPC).

use std::sync::Arc;

use http::{request, StatusCode};

use super::local_reply;
use crate::http::filter::{FilterAction, FilterCtx, HttpFilter};
use crate::http::router::RouteInput;
use crate::rbac::{Rbac, RbacInput, RbacStats};

/// Envoy 1.40's words.
const BODY: &str = "RBAC: access denied";

/// The chain entry. Stats are the filter's whichever config applies (as in Envoy).
#[derive(Debug)]
pub struct RbacFilter {
    rbac: Arc<Rbac>,
    stats: RbacStats,
}

impl RbacFilter {
    pub fn new(rbac: Arc<Rbac>, stats: RbacStats) -> Self {
        RbacFilter { rbac, stats }
    }
}

impl HttpFilter for RbacFilter {
    fn name(&self) -> &str {
        "envoy.filters.http.rbac"
    }

    fn request_headers(&self, ctx: &mut FilterCtx<'_>, req: &mut request::Parts) -> FilterAction {
        let rbac = ctx.route_filters.rbac.as_deref().unwrap_or(&self.rbac);
        let request = RouteInput::from_request(req);
        if rbac.check(&RbacInput::http(ctx.conn, &request), &self.stats) {
            FilterAction::Continue
        } else {
            FilterAction::Respond(local_reply(req, StatusCode::FORBIDDEN, None, BODY))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HttpFilterConfig;
    use crate::http::filters::RouteFilters;
    use crate::http::ProxyBody;
    use crate::stats::Registry;
    use serde_json::{json, Value};

    fn rbac(config: Value) -> Rbac {
        Rbac::compile(&serde_json::from_value(config).unwrap(), "t").unwrap()
    }

    /// ALLOW rules letting through only `GET`s.
    fn gets_only() -> Value {
        json!({"rules": {"action": "allow", "policies": {"get": {
            "permissions": [{"header": {"name": ":method", "match": {"exact": "GET"}}}],
            "principals": ["any"],
        }}}})
    }

    /// The reply to one request, `None` when it passed.
    fn run(
        f: &RbacFilter,
        route: &RouteFilters,
        method: &str,
        headers: &[(&str, &str)],
    ) -> Option<http::Response<ProxyBody>> {
        let mut b = http::Request::builder().method(method).uri("/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let mut req = b.body(()).unwrap().into_parts().0;
        let mut ctx = FilterCtx::new(crate::conn::test_conn(), None, route);
        match f.request_headers(&mut ctx, &mut req) {
            FilterAction::Continue => None,
            FilterAction::Respond(r) => Some(r),
            FilterAction::Delay { .. } => panic!("rbac never delays"),
        }
    }

    fn stat(stats: &Registry, name: &str) -> u64 {
        stats
            .snapshot()
            .into_iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| v)
    }

    #[test]
    fn denied_requests_get_403_and_grpc_ones_permission_denied() {
        let stats = Registry::default();
        let f = RbacFilter::new(
            Arc::new(rbac(gets_only())),
            RbacStats::http(&stats, "in", ""),
        );
        assert!(run(&f, &RouteFilters::NONE, "GET", &[]).is_none());
        let r = run(&f, &RouteFilters::NONE, "POST", &[]).expect("denied");
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(r.headers()["content-type"], "text/plain");
        assert!(matches!(r.body(), ProxyBody::Full(Some(b)) if b == BODY));
        let grpc = [("content-type", "application/grpc")];
        let r = run(&f, &RouteFilters::NONE, "POST", &grpc).expect("denied");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["grpc-status"], "7");
        assert_eq!(r.headers()["grpc-message"], BODY);
        assert_eq!(stat(&stats, "http.in.rbac.allowed"), 1);
        assert_eq!(stat(&stats, "http.in.rbac.denied"), 2);
    }

    #[tokio::test]
    async fn the_chain_builds_it_with_its_rules_stat_prefix() {
        let stats = Registry::default();
        let mut cfg = gets_only();
        cfg["stat_prefix"] = json!("mine_");
        let chain = crate::http::filter::FilterChain::compile(
            &[HttpFilterConfig::Rbac(serde_json::from_value(cfg).unwrap())],
            &stats,
            "in",
        )
        .unwrap();
        let mut ctx = FilterCtx::new(crate::conn::test_conn(), None, &RouteFilters::NONE);
        let mut post = http::Request::post("/x").body(()).unwrap().into_parts().0;
        let r = chain.on_request(&mut ctx, &mut post).await.expect("denied");
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(stat(&stats, "http.in.rbac.mine_.denied"), 1);
    }

    #[test]
    fn a_route_config_replaces_the_filters_own_and_counts_as_the_filter() {
        let stats = Registry::default();
        let f = RbacFilter::new(
            Arc::new(rbac(gets_only())),
            RbacStats::http(&stats, "in", ""),
        );
        let route = |config: Value| RouteFilters {
            rbac: Some(Arc::new(rbac(config))),
            ..RouteFilters::NONE
        };
        let deny_all = route(json!({"rules": {"action": "allow"}}));
        assert!(
            run(&f, &deny_all, "GET", &[]).is_some(),
            "the route's rules"
        );
        let disabled = route(json!({}));
        assert!(run(&f, &disabled, "POST", &[]).is_none(), "no rules: off");
        assert_eq!(stat(&stats, "http.in.rbac.denied"), 1);
        assert_eq!(
            stat(&stats, "http.in.rbac.allowed"),
            0,
            "off counts nothing"
        );
    }
}
