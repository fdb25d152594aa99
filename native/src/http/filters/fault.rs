//! Envoy's `envoy.filters.http.fault`: delay and/or abort a share of the
//! requests matching its header matchers, fixed or driven by the request's
//! `x-envoy-fault-*` headers, within `max_active_faults`.

use std::sync::Arc;
use std::time::Duration;

use http::{request, HeaderMap, StatusCode};

use super::{local_reply, RequestState};
use crate::config::{FaultConfig, Fraction};
use crate::http::filter::{FilterAction, FilterCtx, HttpFilter};
use crate::http::router::{HeaderMatcherRt, RouteInput};
use crate::stats::{fault as st, Registry, StatGroup};

/// Envoy 1.40's words.
const BODY: &str = "fault filter abort";

const DELAY_REQUEST: &str = "x-envoy-fault-delay-request";
const DELAY_PERCENTAGE: &str = "x-envoy-fault-delay-request-percentage";
const ABORT_REQUEST: &str = "x-envoy-fault-abort-request";
const ABORT_GRPC_REQUEST: &str = "x-envoy-fault-abort-grpc-request";
const ABORT_PERCENTAGE: &str = "x-envoy-fault-abort-request-percentage";

/// One compiled fault config: the filter's own, or a route's / virtual host's.
#[derive(Debug)]
pub struct FaultPolicy {
    headers: Vec<HeaderMatcherRt>,
    delay: Option<Delay>,
    abort: Option<AbortRule>,
    max_active_faults: Option<u64>,
}

#[derive(Debug)]
struct Delay {
    /// `None`: the duration comes from `x-envoy-fault-delay-request`.
    fixed: Option<Duration>,
    percent: Fraction,
}

#[derive(Debug)]
struct AbortRule {
    /// `None`: the status comes from the request's headers.
    fixed: Option<Abort>,
    percent: Fraction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Abort {
    Http(StatusCode),
    Grpc(u32),
}

impl FaultPolicy {
    /// `what` names the owner in errors.
    pub fn compile(c: &FaultConfig, what: &str) -> Result<Self, String> {
        let err = |e: &str| format!("{what}: fault: {e}");
        let delay = match &c.delay {
            None => None,
            Some(d) => Some(Delay {
                fixed: match (d.header_controlled, d.fixed_ms) {
                    (true, _) => None,
                    (false, Some(ms)) => Some(Duration::from_millis(ms)),
                    (false, None) => return Err(err("delay needs fixed_ms or header_controlled")),
                },
                percent: d.percent,
            }),
        };
        let abort = match &c.abort {
            None => None,
            Some(a) => Some(AbortRule {
                fixed: match (a.header_controlled, a.http_status, a.grpc_status) {
                    (true, None, None) => None,
                    (false, Some(s), None) => Some(Abort::Http(
                        http_status(s).ok_or_else(|| err("abort http_status must be 200..599"))?,
                    )),
                    (false, None, Some(g)) => Some(Abort::Grpc(g)),
                    _ => return Err(err(
                        "abort needs exactly one of http_status, grpc_status, header_controlled",
                    )),
                },
                percent: a.percent,
            }),
        };
        Ok(FaultPolicy {
            headers: c
                .headers
                .iter()
                .map(|h| HeaderMatcherRt::compile(h, what))
                .collect::<Result<_, _>>()?,
            delay,
            abort,
            max_active_faults: c.max_active_faults,
        })
    }

    /// Whether `req` passes every header matcher (Envoy `headers`).
    fn applies(&self, req: &request::Parts) -> bool {
        if self.headers.is_empty() {
            return true;
        }
        let input = RouteInput::from_request(req);
        self.headers.iter().all(|m| m.matches(&input))
    }

    /// The delay this request draws, if any (a zero delay is none, as in Envoy).
    fn pick_delay(&self, h: &HeaderMap) -> Option<Duration> {
        let d = self.delay.as_ref()?;
        let percent = match d.fixed {
            Some(_) => d.percent,
            None => header_percent(d.percent, h, DELAY_PERCENTAGE),
        };
        if !percent.roll() {
            return None;
        }
        let after = match d.fixed {
            Some(f) => f,
            None => Duration::from_millis(header_str(h, DELAY_REQUEST)?.parse().ok()?),
        };
        (!after.is_zero()).then_some(after)
    }

    /// The abort this request draws, if any. From headers, an HTTP status wins
    /// over a gRPC one, and one outside 200..599 is no abort.
    fn pick_abort(&self, h: &HeaderMap) -> Option<Abort> {
        let a = self.abort.as_ref()?;
        let percent = match a.fixed {
            Some(_) => a.percent,
            None => header_percent(a.percent, h, ABORT_PERCENTAGE),
        };
        if !percent.roll() {
            return None;
        }
        a.fixed.or_else(|| match header_str(h, ABORT_REQUEST) {
            Some(v) => v.parse().ok().and_then(http_status).map(Abort::Http),
            None => header_str(h, ABORT_GRPC_REQUEST)?
                .parse()
                .ok()
                .map(Abort::Grpc),
        })
    }
}

fn http_status(code: u16) -> Option<StatusCode> {
    (200..600)
        .contains(&code)
        .then(|| StatusCode::from_u16(code).ok())
        .flatten()
}

fn header_str<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Envoy's `HeaderPercentageProvider`: the header's numerator over the configured
/// denominator, never above the configured share.
fn header_percent(configured: Fraction, h: &HeaderMap, name: &str) -> Fraction {
    match header_str(h, name).and_then(|v| v.parse::<u32>().ok()) {
        Some(n) => Fraction {
            numerator: n.min(configured.numerator),
            denominator: configured.denominator,
        },
        None => configured,
    }
}

/// A request's slot in the `active_faults` gauge, given back on drop.
#[derive(Debug)]
pub(crate) struct ActiveFault(Arc<StatGroup>);

impl Drop for ActiveFault {
    fn drop(&mut self) {
        self.0.dec(st::ACTIVE_FAULTS);
    }
}

/// The chain entry: the route's policy if it has one, else the filter's own.
/// Stats are the filter's, whichever policy applies (as in Envoy).
#[derive(Debug)]
pub struct FaultFilter {
    policy: Arc<FaultPolicy>,
    stats: Arc<StatGroup>,
}

impl FaultFilter {
    /// Stats land under `http.<stat_prefix>.fault.*`.
    pub fn new(policy: Arc<FaultPolicy>, stats: &Registry, stat_prefix: &str) -> Self {
        FaultFilter {
            policy,
            stats: stats.group(&format!("http.{stat_prefix}.fault"), st::NAMES),
        }
    }

    /// Envoy's `tryIncActiveFaults`: one slot per request, whatever it injects.
    fn activate(&self, policy: &FaultPolicy, state: &mut RequestState) -> bool {
        if state.active_fault.is_some() {
            return true;
        }
        if let Some(max) = policy.max_active_faults {
            if self.stats.get(st::ACTIVE_FAULTS) >= max {
                self.stats.inc(st::FAULTS_OVERFLOW);
                return false;
            }
        }
        self.stats.inc(st::ACTIVE_FAULTS);
        state.active_fault = Some(ActiveFault(self.stats.clone()));
        true
    }
}

impl HttpFilter for FaultFilter {
    fn name(&self) -> &str {
        "envoy.filters.http.fault"
    }

    fn request_headers(&self, ctx: &mut FilterCtx<'_>, req: &mut request::Parts) -> FilterAction {
        let overrides = ctx.route_filters;
        let policy = overrides.fault.as_deref().unwrap_or(&self.policy);
        if !policy.applies(req) {
            return FilterAction::Continue;
        }
        let delay = policy
            .pick_delay(&req.headers)
            .filter(|_| self.activate(policy, &mut ctx.state));
        if delay.is_some() {
            self.stats.inc(st::DELAYS_INJECTED);
        }
        // Envoy decides the abort once the delay is over; the headers it reads
        // are the same now, so deciding here is equivalent.
        let reply = policy
            .pick_abort(&req.headers)
            .filter(|_| self.activate(policy, &mut ctx.state))
            .map(|abort| {
                self.stats.inc(st::ABORTS_INJECTED);
                match abort {
                    Abort::Http(s) => local_reply(req, s, None, BODY),
                    Abort::Grpc(g) => local_reply(req, StatusCode::OK, Some(g), BODY),
                }
            });
        match (delay, reply) {
            (Some(after), then) => FilterAction::Delay { after, then },
            (None, Some(r)) => FilterAction::Respond(r),
            (None, None) => FilterAction::Continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::filters::RouteFilters;
    use http::Response;

    use crate::http::ProxyBody;

    fn policy(cfg: serde_json::Value) -> FaultPolicy {
        FaultPolicy::compile(&serde_json::from_value(cfg).unwrap(), "t").unwrap()
    }

    fn req(headers: &[(&str, &str)]) -> request::Parts {
        let mut b = http::Request::builder().uri("http://a.com/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    /// The filter's outcome: (delay, reply) for one request.
    fn run(
        f: &FaultFilter,
        route: &RouteFilters,
        headers: &[(&str, &str)],
    ) -> (Option<Duration>, Option<Response<ProxyBody>>) {
        let mut ctx = FilterCtx::new(crate::conn::test_conn(), None, route);
        match f.request_headers(&mut ctx, &mut req(headers)) {
            FilterAction::Continue => (None, None),
            FilterAction::Respond(r) => (None, Some(r)),
            FilterAction::Delay { after, then } => (Some(after), then),
        }
    }

    fn filter(stats: &Registry, cfg: serde_json::Value) -> FaultFilter {
        FaultFilter::new(Arc::new(policy(cfg)), stats, "in")
    }

    fn stat(stats: &Registry, name: &str) -> u64 {
        let full = format!("http.in.fault.{name}");
        stats
            .snapshot()
            .into_iter()
            .find(|(n, _)| *n == full)
            .map_or(0, |(_, v)| v)
    }

    #[test]
    fn fixed_abort_at_100_and_0_percent() {
        let stats = Registry::default();
        let all = filter(
            &stats,
            serde_json::json!({"abort": {"http_status": 503, "percent": {"numerator": 100}}}),
        );
        let (delay, r) = run(&all, &RouteFilters::NONE, &[]);
        let r = r.expect("aborted");
        assert_eq!(delay, None);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(matches!(r.body(), ProxyBody::Full(Some(b)) if b == BODY));
        assert_eq!(stat(&stats, "aborts_injected"), 1);

        let none = filter(
            &stats,
            serde_json::json!({"abort": {"http_status": 503, "percent": {"numerator": 0}}}),
        );
        assert!(run(&none, &RouteFilters::NONE, &[]).1.is_none());
        assert_eq!(stat(&stats, "aborts_injected"), 1);
    }

    #[test]
    fn grpc_abort_is_200_for_plain_http_and_trailers_only_for_grpc() {
        let stats = Registry::default();
        let f = filter(
            &stats,
            serde_json::json!({"abort": {"grpc_status": 14, "percent": {"numerator": 100}}}),
        );
        let r = run(&f, &RouteFilters::NONE, &[]).1.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "text/plain");
        let r = run(
            &f,
            &RouteFilters::NONE,
            &[("content-type", "application/grpc")],
        )
        .1
        .unwrap();
        assert_eq!(r.headers()["grpc-status"], "14");
        assert_eq!(r.headers()["grpc-message"], BODY);
    }

    #[test]
    fn delay_then_abort_and_one_active_slot_per_request() {
        let stats = Registry::default();
        let f = filter(
            &stats,
            serde_json::json!({
                "delay": {"fixed_ms": 250, "percent": {"numerator": 100}},
                "abort": {"http_status": 418, "percent": {"numerator": 100}},
            }),
        );
        let mut ctx = FilterCtx::new(crate::conn::test_conn(), None, &RouteFilters::NONE);
        let action = f.request_headers(&mut ctx, &mut req(&[]));
        let FilterAction::Delay { after, then } = action else {
            panic!("{action:?}")
        };
        assert_eq!(after, Duration::from_millis(250));
        assert_eq!(then.unwrap().status(), StatusCode::IM_A_TEAPOT);
        assert_eq!(stat(&stats, "active_faults"), 1);
        assert_eq!(stat(&stats, "delays_injected"), 1);
        drop(ctx);
        assert_eq!(
            stat(&stats, "active_faults"),
            0,
            "the slot ends with the request"
        );
    }

    #[test]
    fn header_controlled_faults() {
        let stats = Registry::default();
        let f = filter(
            &stats,
            serde_json::json!({
                "delay": {"header_controlled": true, "percent": {"numerator": 100}},
                "abort": {"header_controlled": true, "percent": {"numerator": 100}},
            }),
        );
        let none = &RouteFilters::NONE;
        assert_eq!(run(&f, none, &[]).0, None, "no header, no fault");
        assert!(run(&f, none, &[]).1.is_none());
        let (delay, _) = run(&f, none, &[(DELAY_REQUEST, "300")]);
        assert_eq!(delay, Some(Duration::from_millis(300)));
        assert_eq!(run(&f, none, &[(DELAY_REQUEST, "soon")]).0, None);
        let status = |h: &[(&str, &str)]| run(&f, none, h).1.map(|r| r.status().as_u16());
        assert_eq!(status(&[(ABORT_REQUEST, "429")]), Some(429));
        assert_eq!(status(&[(ABORT_REQUEST, "99")]), None, "outside 200..599");
        assert_eq!(status(&[(ABORT_GRPC_REQUEST, "5")]), Some(200));
        assert_eq!(
            status(&[(ABORT_GRPC_REQUEST, "5"), (ABORT_REQUEST, "429")]),
            Some(429),
            "HTTP wins"
        );
        assert_eq!(
            status(&[(ABORT_REQUEST, "429"), (ABORT_PERCENTAGE, "0")]),
            None,
            "the header lowers the share"
        );
    }

    #[test]
    fn percentage_header_never_raises_the_configured_share() {
        let configured = Fraction {
            numerator: 0,
            denominator: 100,
        };
        let mut h = HeaderMap::new();
        h.insert(ABORT_PERCENTAGE, "100".parse().unwrap());
        assert_eq!(
            header_percent(configured, &h, ABORT_PERCENTAGE).numerator,
            0
        );
        let f = filter(
            &Registry::default(),
            serde_json::json!({"abort": {"header_controlled": true, "percent": {"numerator": 0}}}),
        );
        let hdrs = [(ABORT_REQUEST, "503"), (ABORT_PERCENTAGE, "100")];
        assert!(run(&f, &RouteFilters::NONE, &hdrs).1.is_none());
    }

    #[test]
    fn header_matchers_gate_the_fault() {
        let f = filter(
            &Registry::default(),
            serde_json::json!({
                "abort": {"http_status": 503, "percent": {"numerator": 100}},
                "headers": [{"name": "x-chaos", "match": {"exact": "on"}}],
            }),
        );
        assert!(run(&f, &RouteFilters::NONE, &[]).1.is_none());
        assert!(run(&f, &RouteFilters::NONE, &[("x-chaos", "off")])
            .1
            .is_none());
        assert!(run(&f, &RouteFilters::NONE, &[("x-chaos", "on")])
            .1
            .is_some());
    }

    #[test]
    fn max_active_faults_overflow() {
        let stats = Registry::default();
        let f = filter(
            &stats,
            serde_json::json!({
                "delay": {"fixed_ms": 10, "percent": {"numerator": 100}},
                "max_active_faults": 1,
            }),
        );
        let mut first = FilterCtx::new(crate::conn::test_conn(), None, &RouteFilters::NONE);
        assert!(matches!(
            f.request_headers(&mut first, &mut req(&[])),
            FilterAction::Delay { .. }
        ));
        assert_eq!(run(&f, &RouteFilters::NONE, &[]).0, None, "over the limit");
        assert_eq!(stat(&stats, "faults_overflow"), 1);
        drop(first);
        assert!(run(&f, &RouteFilters::NONE, &[]).0.is_some());
    }

    #[test]
    fn route_policy_replaces_the_filters_own() {
        let f = filter(
            &Registry::default(),
            serde_json::json!({"abort": {"http_status": 503, "percent": {"numerator": 100}}}),
        );
        let route = RouteFilters {
            fault: Some(Arc::new(policy(serde_json::json!({})))),
            ..RouteFilters::default()
        };
        assert!(
            run(&f, &route, &[]).1.is_none(),
            "the route's empty policy wins"
        );
        assert!(run(&f, &RouteFilters::NONE, &[]).1.is_some());
    }

    #[test]
    fn bad_configs_are_rejected() {
        let bad = |c: serde_json::Value| {
            FaultPolicy::compile(&serde_json::from_value(c).unwrap(), "r").unwrap_err()
        };
        let p = serde_json::json!({"numerator": 1});
        assert!(
            bad(serde_json::json!({"abort": {"http_status": 99, "percent": p}}))
                .contains("200..599")
        );
        assert!(bad(serde_json::json!({"abort": {"percent": p}})).contains("exactly one"));
        assert!(bad(serde_json::json!({"delay": {"percent": p}})).contains("fixed_ms"));
    }
}
