//! The HTTP filter chain: phase hooks that run ahead of the router, each able
//! to edit the request or answer it locally. The router is the terminal stage.
//!
//! Shape follows pingora's `ProxyHttp` and mitmproxy's addons: one trait with
//! default no-op hooks. Hooks are synchronous and run on the worker thread; a
//! Python-filter bridge implements this trait by calling into the interpreter
//! (holding the GIL only for the hook), so routes without Python filters never
//! touch it. Native filters become variants of `config::HttpFilterConfig`.

use http::{request, response, Response, StatusCode};

use crate::http::ProxyBody;

/// Per-request facts shared by every hook of the chain.
#[derive(Debug)]
pub struct FilterCtx<'a> {
    pub downstream_addr: std::net::SocketAddr,
    /// The matched virtual host and route, if any.
    pub vhost: Option<&'a str>,
    pub route: Option<&'a str>,
}

/// What a request hook wants next.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // returned once per hook, straight to the caller
pub enum FilterAction {
    /// Run the next filter, then the router.
    Continue,
    /// Stop here and send this response; response hooks of the filters already run still apply.
    Respond(Response<ProxyBody>),
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
    /// the upstream request is sent. Edit `req` in place or short-circuit.
    fn request_headers(&self, _ctx: &FilterCtx<'_>, _req: &mut request::Parts) -> FilterAction {
        FilterAction::Continue
    }

    /// Runs on the response headers (upstream or local), in reverse filter order.
    fn response_headers(&self, _ctx: &FilterCtx<'_>, _resp: &mut response::Parts) {}
}

/// An ordered chain of filters, compiled from `config::HttpFilterConfig`.
#[derive(Debug, Default)]
pub struct FilterChain {
    pub filters: Vec<std::sync::Arc<dyn HttpFilter>>,
}

impl FilterChain {
    pub fn compile(cfg: &[crate::config::HttpFilterConfig]) -> Result<Self, String> {
        match cfg.first() {
            None => Ok(FilterChain::default()),
            Some(f) => Err(format!("http filter {f:?}: not built yet")),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Run request hooks in order; `Some(resp)` when one answered locally.
    pub fn on_request(
        &self,
        ctx: &FilterCtx<'_>,
        req: &mut request::Parts,
    ) -> Option<Response<ProxyBody>> {
        for f in &self.filters {
            if let FilterAction::Respond(r) = f.request_headers(ctx, req) {
                return Some(r);
            }
        }
        None
    }

    /// Run response hooks in reverse order.
    pub fn on_response(&self, ctx: &FilterCtx<'_>, resp: &mut response::Parts) {
        for f in self.filters.iter().rev() {
            f.response_headers(ctx, resp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Debug)]
    struct Deny;
    impl HttpFilter for Deny {
        fn name(&self) -> &str {
            "deny"
        }
        fn request_headers(&self, _: &FilterCtx<'_>, req: &mut request::Parts) -> FilterAction {
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

    #[test]
    fn filters_edit_or_short_circuit() {
        let chain = FilterChain {
            filters: vec![Arc::new(Deny)],
        };
        let ctx = FilterCtx {
            downstream_addr: "127.0.0.1:1".parse().unwrap(),
            vhost: None,
            route: None,
        };
        let (mut ok, _) = http::Request::new(()).into_parts();
        assert!(chain.on_request(&ctx, &mut ok).is_none());
        assert_eq!(ok.headers["x-checked"], "1");
        let (mut denied, _) = http::Request::builder()
            .header("x-deny", "1")
            .body(())
            .unwrap()
            .into_parts();
        let r = chain
            .on_request(&ctx, &mut denied)
            .expect("short-circuited");
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let (mut rp, _) = r.into_parts();
        chain.on_response(&ctx, &mut rp);
        assert_eq!(rp.headers["x-filtered"], "1");
    }
}
