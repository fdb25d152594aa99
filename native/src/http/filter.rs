//! The HTTP filter chain: phase hooks that run ahead of the router, each able
//! to edit the request, delay it, or answer it locally. The router is the
//! terminal stage.
//!
//! Shape follows pingora's `ProxyHttp` and mitmproxy's addons: one trait with
//! default no-op hooks. Hooks are synchronous and run on the worker thread; a
//! hook that wants to wait returns `FilterAction::Delay` and the chain runner
//! sleeps, so filters never hold a timer. A Python-filter bridge implements this
//! trait by calling into the interpreter (holding the GIL only for the hook), so
//! routes without Python filters never touch it. Native filters are variants of
//! `config::HttpFilterConfig`, built in `http::filters`.

use std::sync::Arc;
use std::time::Duration;

use http::{request, response, Response, StatusCode};

use crate::config::HttpFilterConfig;
use crate::http::filters::{self, RequestState, RouteFilters};
use crate::http::ProxyBody;
use crate::stats::Registry;

/// Per-request facts shared by every hook of the chain, and the state filters
/// leave for their own response hooks.
#[derive(Debug)]
pub struct FilterCtx<'a> {
    /// The downstream connection (addresses, TLS, the peer's identity).
    pub conn: &'a crate::conn::ConnInfo,
    /// The matched virtual host and route, if any.
    pub vhost: Option<&'a str>,
    pub route: Option<&'a str>,
    /// The matched route's per-filter configs (Envoy `typed_per_filter_config`).
    pub route_filters: &'a RouteFilters,
    pub state: RequestState,
}

impl<'a> FilterCtx<'a> {
    pub fn new(
        conn: &'a crate::conn::ConnInfo,
        vhost: Option<&'a str>,
        route_filters: &'a RouteFilters,
    ) -> Self {
        FilterCtx {
            conn,
            vhost,
            route: None,
            route_filters,
            state: RequestState::default(),
        }
    }
}

/// What a request hook wants next.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // returned once per hook, straight to the caller
pub enum FilterAction {
    /// Run the next filter, then the router.
    Continue,
    /// Stop here and send this response; response hooks of the filters already run still apply.
    Respond(Response<ProxyBody>),
    /// Hold the request this long (the chain runner sleeps), then continue, or
    /// answer with `then` when it is set.
    Delay {
        after: Duration,
        then: Option<Response<ProxyBody>>,
    },
}

impl FilterAction {
    /// A local reply with a plain-text body, as Envoy's `sendLocalReply`.
    pub fn local_reply(status: StatusCode, body: &'static str) -> Self {
        FilterAction::Respond(crate::http::local_reply(status, body))
    }
}

/// One HTTP filter. Every hook has a no-op default.
pub trait HttpFilter: Send + Sync + std::fmt::Debug + 'static {
    /// Stable name for logs and config dumps.
    fn name(&self) -> &str;

    /// Runs once the request headers arrived and the route is chosen, before
    /// the upstream request is sent. Edit `req` in place, delay, or short-circuit.
    fn request_headers(&self, _ctx: &mut FilterCtx<'_>, _req: &mut request::Parts) -> FilterAction {
        FilterAction::Continue
    }

    /// Runs on the response headers (upstream or local), in reverse filter order.
    fn response_headers(&self, _ctx: &FilterCtx<'_>, _resp: &mut response::Parts) {}
}

/// An ordered chain of filters, compiled from `config::HttpFilterConfig`.
#[derive(Debug, Default)]
pub struct FilterChain {
    pub filters: Vec<Arc<dyn HttpFilter>>,
}

impl FilterChain {
    /// Build the connection manager's chain; filter stats land under
    /// `http.<stat_prefix>.*` (the rate limiter's under its own prefix).
    pub fn compile(
        cfg: &[HttpFilterConfig],
        stats: &Registry,
        stat_prefix: &str,
    ) -> Result<Self, String> {
        let filters = cfg
            .iter()
            .map(|c| filters::build(c, stats, stat_prefix))
            .collect::<Result<_, _>>()?;
        Ok(FilterChain { filters })
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Run request hooks in order, sleeping where one asks to; `Some(resp)` when
    /// one answered locally, with the response hooks of the filters that ran
    /// (that one included) already applied.
    pub async fn on_request(
        &self,
        ctx: &mut FilterCtx<'_>,
        req: &mut request::Parts,
    ) -> Option<Response<ProxyBody>> {
        for (i, f) in self.filters.iter().enumerate() {
            let reply = match f.request_headers(ctx, req) {
                FilterAction::Continue => None,
                FilterAction::Respond(r) => Some(r),
                FilterAction::Delay { after, then } => {
                    tokio::time::sleep(after).await;
                    then
                }
            };
            if let Some(r) = reply {
                return Some(run_response_hooks(&self.filters[..=i], ctx, r));
            }
        }
        None
    }

    /// Run every response hook, in reverse order, on a response to a request
    /// that went past every filter (upstream, direct or router-local).
    pub fn respond(&self, ctx: &FilterCtx<'_>, resp: Response<ProxyBody>) -> Response<ProxyBody> {
        run_response_hooks(&self.filters, ctx, resp)
    }
}

fn run_response_hooks(
    filters: &[Arc<dyn HttpFilter>],
    ctx: &FilterCtx<'_>,
    resp: Response<ProxyBody>,
) -> Response<ProxyBody> {
    if filters.is_empty() {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    for f in filters.iter().rev() {
        f.response_headers(ctx, &mut parts);
    }
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Deny;
    impl HttpFilter for Deny {
        fn name(&self) -> &str {
            "deny"
        }
        fn request_headers(&self, _: &mut FilterCtx<'_>, req: &mut request::Parts) -> FilterAction {
            if req.headers.contains_key("x-deny") {
                FilterAction::local_reply(StatusCode::FORBIDDEN, "denied")
            } else {
                req.headers.insert("x-checked", "1".parse().unwrap());
                FilterAction::Continue
            }
        }
        fn response_headers(&self, _: &FilterCtx<'_>, resp: &mut response::Parts) {
            resp.headers.insert("x-filtered", "1".parse().unwrap());
        }
    }

    /// Delays every request by 50 ms, then answers 418 when `x-teapot` is set.
    #[derive(Debug)]
    struct Slow;
    impl HttpFilter for Slow {
        fn name(&self) -> &str {
            "slow"
        }
        fn request_headers(&self, _: &mut FilterCtx<'_>, req: &mut request::Parts) -> FilterAction {
            FilterAction::Delay {
                after: Duration::from_millis(50),
                then: req
                    .headers
                    .contains_key("x-teapot")
                    .then(|| crate::http::local_reply(StatusCode::IM_A_TEAPOT, "")),
            }
        }
        fn response_headers(&self, _: &FilterCtx<'_>, resp: &mut response::Parts) {
            resp.headers.insert("x-slow", "1".parse().unwrap());
        }
    }

    fn ctx() -> FilterCtx<'static> {
        FilterCtx::new(crate::conn::test_conn(), None, &RouteFilters::NONE)
    }

    fn request(headers: &[&str]) -> request::Parts {
        let mut b = http::Request::builder();
        for h in headers {
            b = b.header(*h, "1");
        }
        b.body(()).unwrap().into_parts().0
    }

    #[tokio::test]
    async fn filters_edit_or_short_circuit() {
        let chain = FilterChain {
            filters: vec![Arc::new(Deny)],
        };
        let mut ctx = ctx();
        let mut ok = request(&[]);
        assert!(chain.on_request(&mut ctx, &mut ok).await.is_none());
        assert_eq!(ok.headers["x-checked"], "1");
        let mut denied = request(&["x-deny"]);
        let r = chain
            .on_request(&mut ctx, &mut denied)
            .await
            .expect("short-circuited");
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(r.headers()["x-filtered"], "1");
    }

    #[tokio::test(start_paused = true)]
    async fn delays_sleep_in_the_runner_then_continue_or_answer() {
        // Deny after Slow: a reply from Slow skips Deny's response hook.
        let chain = FilterChain {
            filters: vec![Arc::new(Slow), Arc::new(Deny)],
        };
        let mut ctx = ctx();
        let t0 = tokio::time::Instant::now();
        let mut passed = request(&[]);
        assert!(chain.on_request(&mut ctx, &mut passed).await.is_none());
        assert_eq!(t0.elapsed(), Duration::from_millis(50));
        assert_eq!(passed.headers["x-checked"], "1", "the next filter ran");

        let mut teapot = request(&["x-teapot"]);
        let r = chain.on_request(&mut ctx, &mut teapot).await.unwrap();
        assert_eq!(t0.elapsed(), Duration::from_millis(100));
        assert_eq!(r.status(), StatusCode::IM_A_TEAPOT);
        assert_eq!(r.headers()["x-slow"], "1");
        assert!(!r.headers().contains_key("x-filtered"));
        assert!(!teapot.headers.contains_key("x-checked"));
    }
}
