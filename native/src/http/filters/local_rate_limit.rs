//! Envoy's `envoy.filters.http.local_ratelimit`: one token bucket per config,
//! shared by every worker, with Envoy's enabled/enforced shares, local reply
//! and `x-ratelimit-*` (DRAFT_VERSION_03) headers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use http::{request, response, HeaderValue, StatusCode};

use super::{local_reply, RequestState};
use crate::config::{Fraction, HeaderMutation, LocalRateLimitConfig};
use crate::http::filter::{FilterAction, FilterCtx, HttpFilter};
use crate::http::headers::HeaderOps;
use crate::stats::{local_rate_limit as st, Registry, StatGroup};

/// Envoy 1.40's words.
const BODY: &str = "local_rate_limited";

/// Envoy 1.40's timer-less bucket (`AtomicTokenBucketImpl`): tokens flow in
/// continuously at `tokens_per_fill / fill_interval`, up to `max_tokens`, and the
/// whole state is one atomic: the instant the bucket was (or would have been) empty.
/// A take is one compare-and-swap, with no lock and no refill task.
#[derive(Debug)]
pub struct TokenBucket {
    max_tokens: u32,
    tokens_per_fill: u128,
    /// Token arithmetic runs in units of `ns x tokens_per_fill`, where one token
    /// is `fill_interval_ns` units: exact integers, whatever the rate.
    fill_interval_ns: u128,
    /// Time to refill from empty to full, ns (rounded up).
    full_span_ns: u64,
    epoch: Instant,
    /// `empty_at + full_span_ns`, ns since `epoch`; 0 = full at `epoch`.
    mark: AtomicU64,
}

/// The bucket as one take left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Take {
    pub allowed: bool,
    /// Whole tokens left.
    pub remaining: u32,
    /// Seconds until the next whole token, rounded up; 0 while tokens remain.
    pub reset_secs: u64,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(
        max_tokens: u32,
        tokens_per_fill: u32,
        fill_interval_ms: u64,
        now: Instant,
    ) -> Result<Self, String> {
        if max_tokens == 0 || tokens_per_fill == 0 {
            return Err("token_bucket: max_tokens and tokens_per_fill must be > 0".into());
        }
        // Envoy's lower bound, against refill storms.
        if fill_interval_ms < 50 {
            return Err("token_bucket: fill_interval must be >= 50ms".into());
        }
        let fill_interval_ns = u128::from(fill_interval_ms) * 1_000_000;
        let tokens_per_fill = u128::from(tokens_per_fill);
        let full_span_ns =
            u64::try_from((u128::from(max_tokens) * fill_interval_ns).div_ceil(tokens_per_fill))
                .map_err(|_| {
                    "token_bucket: refilling from empty would take centuries".to_owned()
                })?;
        Ok(TokenBucket {
            max_tokens,
            tokens_per_fill,
            fill_interval_ns,
            full_span_ns,
            epoch: now,
            mark: AtomicU64::new(0),
        })
    }

    pub fn max_tokens(&self) -> u32 {
        self.max_tokens
    }

    /// Take one token at `now` if there is one.
    pub fn take(&self, now: Instant) -> Take {
        let now_ns = now.saturating_duration_since(self.epoch).as_nanos() as u64;
        let one = self.fill_interval_ns;
        let mut mark = self.mark.load(Ordering::Relaxed);
        loop {
            let have = self.units(now_ns, mark);
            if have < one {
                return self.report(false, have);
            }
            let left = have - one;
            // Rounded up so the mark never drops a token's last nanosecond.
            let new_mark = now_ns + self.full_span_ns - left.div_ceil(self.tokens_per_fill) as u64;
            match self.mark.compare_exchange_weak(
                mark,
                new_mark,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return self.report(true, left),
                Err(m) => mark = m,
            }
        }
    }

    fn units(&self, now_ns: u64, mark: u64) -> u128 {
        let since_empty = (now_ns + self.full_span_ns).saturating_sub(mark);
        (u128::from(since_empty) * self.tokens_per_fill)
            .min(u128::from(self.max_tokens) * self.fill_interval_ns)
    }

    fn report(&self, allowed: bool, units: u128) -> Take {
        let one = self.fill_interval_ns;
        let remaining = (units / one) as u32;
        let reset_secs = if remaining > 0 {
            0
        } else {
            let wait_ns = (one - units).div_ceil(self.tokens_per_fill);
            wait_ns.div_ceil(1_000_000_000) as u64
        };
        Take {
            allowed,
            remaining,
            reset_secs,
        }
    }
}

/// The `x-ratelimit-*` values for one checked request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct XRateLimit {
    limit: u32,
    remaining: u32,
    reset_secs: u64,
}

/// One compiled rate-limit config: the filter's own, or a route's / virtual host's.
#[derive(Debug)]
pub struct RateLimitPolicy {
    /// `None`: installed but limits nothing.
    bucket: Option<TokenBucket>,
    enabled: Fraction,
    enforced: Fraction,
    status: StatusCode,
    headers_to_add: HeaderOps,
    x_ratelimit_headers: bool,
    stats: Arc<StatGroup>,
}

impl RateLimitPolicy {
    /// Stats land under `<c.stat_prefix>.http_local_rate_limit.*`; `what` names the
    /// owner in errors.
    pub fn compile(c: &LocalRateLimitConfig, stats: &Registry, what: &str) -> Result<Self, String> {
        let err = |e: String| format!("{what}: local_rate_limit: {e}");
        let bucket = match &c.token_bucket {
            Some(b) => Some(
                TokenBucket::new(
                    b.max_tokens,
                    b.tokens_per_fill,
                    b.fill_interval_ms,
                    Instant::now(),
                )
                .map_err(err)?,
            ),
            None => None,
        };
        let headers_to_add = HeaderOps::compile(&HeaderMutation {
            response_add: c.response_headers_to_add.clone(),
            ..Default::default()
        })
        .map_err(err)?;
        // Envoy answers 429 for a configured status below 400.
        let status = StatusCode::from_u16(c.status)
            .ok()
            .filter(|s| s.as_u16() >= 400)
            .unwrap_or(StatusCode::TOO_MANY_REQUESTS);
        Ok(RateLimitPolicy {
            bucket,
            enabled: c.enabled,
            enforced: c.enforced,
            status,
            headers_to_add,
            x_ratelimit_headers: c.x_ratelimit_headers,
            stats: stats.group(
                &format!("{}.http_local_rate_limit", c.stat_prefix),
                st::NAMES,
            ),
        })
    }

    /// Check `req` against the bucket at `now`: continue, or the local reply
    /// when limited and enforced. Leaves `x-ratelimit-*` values in `state`.
    fn check(&self, req: &request::Parts, now: Instant, state: &mut RequestState) -> FilterAction {
        let Some(bucket) = &self.bucket else {
            return FilterAction::Continue;
        };
        if !self.enabled.roll() {
            return FilterAction::Continue;
        }
        self.stats.inc(st::ENABLED);
        let take = bucket.take(now);
        if self.x_ratelimit_headers {
            state.rate_limit = Some(XRateLimit {
                limit: bucket.max_tokens(),
                remaining: take.remaining,
                reset_secs: take.reset_secs,
            });
        }
        if take.allowed {
            self.stats.inc(st::OK);
            return FilterAction::Continue;
        }
        self.stats.inc(st::RATE_LIMITED);
        if !self.enforced.roll() {
            return FilterAction::Continue;
        }
        self.stats.inc(st::ENFORCED);
        let mut reply = local_reply(req, self.status, None, BODY);
        self.headers_to_add.apply_response(reply.headers_mut());
        FilterAction::Respond(reply)
    }
}

/// The chain entry: the route's policy if it has one, else the filter's own.
#[derive(Debug)]
pub struct LocalRateLimitFilter {
    policy: Arc<RateLimitPolicy>,
}

impl LocalRateLimitFilter {
    pub fn new(policy: Arc<RateLimitPolicy>) -> Self {
        LocalRateLimitFilter { policy }
    }
}

impl HttpFilter for LocalRateLimitFilter {
    fn name(&self) -> &str {
        "envoy.filters.http.local_ratelimit"
    }

    fn request_headers(&self, ctx: &mut FilterCtx<'_>, req: &mut request::Parts) -> FilterAction {
        let overrides = ctx.route_filters;
        let policy = overrides
            .local_rate_limit
            .as_deref()
            .unwrap_or(&self.policy);
        policy.check(req, Instant::now(), &mut ctx.state)
    }

    fn response_headers(&self, ctx: &FilterCtx<'_>, resp: &mut response::Parts) {
        if let Some(x) = ctx.state.rate_limit {
            let h = &mut resp.headers;
            h.insert("x-ratelimit-limit", HeaderValue::from(x.limit));
            h.insert("x-ratelimit-remaining", HeaderValue::from(x.remaining));
            h.insert("x-ratelimit-reset", HeaderValue::from(x.reset_secs));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn taken(b: &TokenBucket, at: Instant) -> (bool, u32, u64) {
        let t = b.take(at);
        (t.allowed, t.remaining, t.reset_secs)
    }

    #[test]
    fn bucket_starts_full_and_empties() {
        let t0 = Instant::now();
        let b = TokenBucket::new(2, 1, 60_000, t0).unwrap();
        // Envoy 1.40: reset is 0 while a token is left, then the wait for the next.
        assert_eq!(taken(&b, t0), (true, 1, 0));
        assert_eq!(taken(&b, t0), (true, 0, 60));
        assert_eq!(taken(&b, t0), (false, 0, 60));
        assert_eq!(taken(&b, t0 + ms(1_500)), (false, 0, 59));
    }

    #[test]
    fn bucket_refills_at_the_fill_rate_up_to_max() {
        let t0 = Instant::now();
        // 4 tokens every 4 s: one a second, continuously (Envoy's timer-less bucket).
        let b = TokenBucket::new(4, 4, 4_000, t0).unwrap();
        for _ in 0..4 {
            assert!(b.take(t0).allowed);
        }
        assert!(!b.take(t0).allowed);
        assert!(!b.take(t0 + ms(999)).allowed);
        assert_eq!(taken(&b, t0 + ms(1_000)), (true, 0, 1));
        assert!(!b.take(t0 + ms(1_000)).allowed);
        // A long idle refills to max_tokens, never above.
        let later = t0 + ms(3_600_000);
        for left in (0..4).rev() {
            assert_eq!(taken(&b, later), (true, left, if left > 0 { 0 } else { 1 }));
        }
        assert!(!b.take(later).allowed);
    }

    #[test]
    fn fractional_rates_lose_no_tokens_to_rounding() {
        let t0 = Instant::now();
        // 7 tokens per 1000 ms: one every 142.857.. ms.
        let b = TokenBucket::new(3, 7, 1_000, t0).unwrap();
        assert_eq!(taken(&b, t0), (true, 2, 0));
        assert_eq!(taken(&b, t0), (true, 1, 0));
        assert_eq!(taken(&b, t0), (true, 0, 1));
        assert!(!b.take(t0 + ms(142)).allowed);
        assert!(b.take(t0 + ms(143)).allowed);
    }

    #[test]
    fn bad_buckets_are_rejected() {
        let t0 = Instant::now();
        assert!(TokenBucket::new(0, 1, 1000, t0).is_err());
        assert!(TokenBucket::new(1, 0, 1000, t0).is_err());
        assert!(TokenBucket::new(1, 1, 10, t0).is_err());
    }

    #[test]
    fn bucket_is_shared_by_threads() {
        let t0 = Instant::now();
        let b = Arc::new(TokenBucket::new(1000, 1, 3_600_000, t0).unwrap());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || (0..500).filter(|_| b.take(t0).allowed).count())
            })
            .collect();
        let granted: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(granted, 1000);
    }

    fn policy(stats: &Registry, extra: serde_json::Value) -> RateLimitPolicy {
        let mut c = serde_json::json!({
            "stat_prefix": "rl",
            "token_bucket": {"max_tokens": 1, "fill_interval_ms": 60000},
        });
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        RateLimitPolicy::compile(&serde_json::from_value(c).unwrap(), stats, "t").unwrap()
    }

    fn stat(stats: &Registry, name: &str) -> u64 {
        let full = format!("rl.http_local_rate_limit.{name}");
        stats
            .snapshot()
            .into_iter()
            .find(|(n, _)| *n == full)
            .map_or(0, |(_, v)| v)
    }

    fn req() -> request::Parts {
        http::Request::new(()).into_parts().0
    }

    fn check(
        p: &RateLimitPolicy,
        state: &mut RequestState,
    ) -> Option<http::Response<crate::http::ProxyBody>> {
        match p.check(&req(), Instant::now(), state) {
            FilterAction::Continue => None,
            FilterAction::Respond(r) => Some(r),
            FilterAction::Delay { .. } => panic!("rate limits never delay"),
        }
    }

    #[test]
    fn nothing_is_limited_unless_enabled() {
        let stats = Registry::default();
        let p = policy(&stats, serde_json::json!({}));
        for _ in 0..3 {
            assert!(check(&p, &mut RequestState::default()).is_none());
        }
        assert_eq!(stat(&stats, "enabled"), 0);
    }

    #[test]
    fn enabled_but_not_enforced_only_counts() {
        let stats = Registry::default();
        let p = policy(&stats, serde_json::json!({"enabled": {"numerator": 100}}));
        for _ in 0..3 {
            assert!(check(&p, &mut RequestState::default()).is_none());
        }
        let counts: Vec<u64> = ["enabled", "ok", "rate_limited", "enforced"]
            .iter()
            .map(|n| stat(&stats, n))
            .collect();
        assert_eq!(counts, [3, 1, 2, 0]);
    }

    #[test]
    fn enforced_limits_answer_like_envoy() {
        let stats = Registry::default();
        let p = policy(
            &stats,
            serde_json::json!({
                "enabled": {"numerator": 100}, "enforced": {"numerator": 100},
                "x_ratelimit_headers": true,
                "response_headers_to_add": [{"name": "x-added", "value": "yes"}],
            }),
        );
        let mut first = RequestState::default();
        assert!(check(&p, &mut first).is_none());
        let mut second = RequestState::default();
        let r = check(&p, &mut second).expect("limited");
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()["x-added"], "yes");
        assert!(!r.headers().contains_key("x-envoy-ratelimited"));
        let x = second.rate_limit.unwrap();
        assert_eq!((x.limit, x.remaining, x.reset_secs), (1, 0, 60));
        assert_eq!(stat(&stats, "enforced"), 1);
    }

    #[test]
    fn low_statuses_become_429() {
        let stats = Registry::default();
        let p = policy(&stats, serde_json::json!({"status": 200}));
        assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS);
        let p = policy(&stats, serde_json::json!({"status": 503}));
        assert_eq!(p.status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
