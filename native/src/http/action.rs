//! What a matched route does, compiled: forward (to one cluster or a weighted
//! split, with rewrites, retries, hashing, mirrors and timeouts), answer
//! directly, or redirect.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use regex::Regex;

use crate::config::{self, Fraction, RetryOn};
use crate::http::headers::HeaderOps;
use crate::upstream::ClusterRt;

/// Boxed variants keep a route small: tens of thousands of routes are common.
#[derive(Debug)]
pub enum ActionRt {
    Forward(Box<ForwardRt>),
    Direct { status: StatusCode, body: Bytes },
    Redirect(Box<RedirectRt>),
}

#[derive(Debug)]
pub struct ForwardRt {
    pub target: Target,
    pub timeout: Option<Duration>,
    /// (matched prefix, replacement) when the route rewrites its prefix.
    pub prefix_rewrite: Option<Box<(String, String)>>,
    pub regex_rewrite: Option<Box<(Regex, String)>>,
    pub host_rewrite: Option<HeaderValue>,
    /// `x-envoy-expected-rq-timeout-ms` for the upstream, when the route has a timeout.
    pub expected_timeout: Option<HeaderValue>,
    pub retry: Option<Box<RetryRt>>,
    pub hash_policy: Vec<config::HashPolicy>,
    /// Per-stream idle timeout; `None` = none.
    pub idle_timeout: Option<Duration>,
    pub max_stream_duration: Option<Duration>,
    pub mirrors: Vec<(Arc<ClusterRt>, Fraction)>,
}

/// Where a forward goes: one cluster, or a weighted split.
#[derive(Debug)]
pub enum Target {
    One(Arc<ClusterRt>),
    Split {
        /// (cumulative weight, branch), ascending.
        branches: Vec<(u64, Branch)>,
        total: u64,
    },
}

/// One side of a weighted split.
#[derive(Debug)]
pub struct Branch {
    pub cluster: Arc<ClusterRt>,
    pub headers: HeaderOps,
    pub host_rewrite: Option<HeaderValue>,
}

impl Target {
    /// The cluster for this request and the split branch's own header mutations, if any.
    #[inline]
    pub fn choose(&self) -> (&Arc<ClusterRt>, Option<&Branch>) {
        match self {
            Target::One(c) => (c, None),
            Target::Split { branches, total } => {
                let r = fastrand::u64(..*total);
                let i = branches.partition_point(|(cum, _)| *cum <= r);
                let b = &branches[i.min(branches.len() - 1)].1;
                (&b.cluster, Some(b))
            }
        }
    }
}

/// A compiled retry policy.
#[derive(Debug)]
pub struct RetryRt {
    on: u32,
    pub num_retries: u32,
    pub per_try_timeout: Option<Duration>,
    retriable_status_codes: Vec<u16>,
    base: Duration,
    max: Duration,
    pub avoid_previous_hosts: bool,
}

/// How one attempt ended, as retry policy sees it.
#[derive(Debug, Clone, Copy)]
pub enum AttemptEnd<'a> {
    Response {
        status: u16,
        headers: &'a http::HeaderMap,
    },
    ConnectFailure,
    Reset,
    /// The per-try timeout fired.
    PerTryTimeout,
}

fn bit(on: RetryOn) -> u32 {
    1 << on as u32
}

impl RetryRt {
    fn compile(p: &config::RetryPolicy) -> Self {
        let base = Duration::from_millis(p.base_interval_ms.max(1));
        RetryRt {
            on: p.retry_on.iter().fold(0, |acc, o| acc | bit(*o)),
            num_retries: p.num_retries,
            per_try_timeout: p
                .per_try_timeout_ms
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis),
            retriable_status_codes: p.retriable_status_codes.clone(),
            base,
            max: p
                .max_interval_ms
                .map_or(base * 10, Duration::from_millis)
                .max(base),
            avoid_previous_hosts: p.avoid_previous_hosts,
        }
    }

    fn has(&self, on: RetryOn) -> bool {
        self.on & bit(on) != 0
    }

    /// Envoy's `RetryStateImpl` rules: would this outcome be retried?
    pub fn wants_retry(&self, end: AttemptEnd<'_>) -> bool {
        use RetryOn::*;
        match end {
            // A reset (or timeout) is a 5xx and a gateway error to these policies.
            AttemptEnd::Reset | AttemptEnd::PerTryTimeout => {
                self.has(FiveXx) || self.has(GatewayError) || self.has(Reset)
            }
            AttemptEnd::ConnectFailure => {
                self.has(FiveXx)
                    || self.has(GatewayError)
                    || self.has(Reset)
                    || self.has(ConnectFailure)
            }
            AttemptEnd::Response { status, headers } => {
                (self.has(FiveXx) && status >= 500)
                    || (self.has(GatewayError) && (502..=504).contains(&status))
                    || (self.has(Retriable4xx) && status == 409)
                    || (self.has(RetriableStatusCodes)
                        && self.retriable_status_codes.contains(&status))
                    || self.grpc_retriable(headers)
            }
        }
    }

    fn grpc_retriable(&self, headers: &http::HeaderMap) -> bool {
        let Some(code) = headers.get("grpc-status") else {
            return false;
        };
        let want = match code.as_bytes() {
            b"1" => RetryOn::Cancelled,
            b"4" => RetryOn::DeadlineExceeded,
            b"8" => RetryOn::ResourceExhausted,
            b"13" => RetryOn::Internal,
            b"14" => RetryOn::Unavailable,
            _ => return false,
        };
        self.has(want)
    }

    /// Envoy's fully jittered exponential back-off before retry `n` (1-based):
    /// uniform in `[0, (2^n - 1) x base)`, capped at `max`.
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = (1u64 << n.min(20)) - 1;
        let ceiling = self
            .base
            .saturating_mul(factor as u32)
            .min(self.max)
            .as_millis() as u64;
        Duration::from_millis(fastrand::u64(..ceiling.max(1)))
    }
}

/// A compiled redirect.
#[derive(Debug)]
pub struct RedirectRt {
    pub status: StatusCode,
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub path: Option<String>,
    pub prefix_rewrite: Option<(String, String)>,
    pub regex_rewrite: Option<(Regex, String)>,
    pub strip_query: bool,
}

impl RedirectRt {
    /// The `location` for a request to `scheme://host` + `path_and_query`.
    pub fn location(&self, scheme: &str, host: &str, path_and_query: &str) -> String {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let scheme = self.scheme.as_deref().unwrap_or(scheme);
        let (req_host, req_port) = split_host_port(host);
        let host = self.host.as_deref().unwrap_or(req_host);
        // Envoy drops a port that is the new scheme's default, and keeps the
        // request's port only when neither host nor scheme changed.
        let port = match (self.port, req_port) {
            (Some(p), _) => Some(p.to_string()),
            (None, Some(p)) if self.host.is_none() && self.scheme.is_none() => Some(p.to_owned()),
            _ => None,
        }
        .filter(|p| !matches!((scheme, p.as_str()), ("http", "80") | ("https", "443")));
        let new_path: std::borrow::Cow<'_, str> = if let Some(p) = &self.path {
            p.into()
        } else if let Some((prefix, rw)) = &self.prefix_rewrite {
            format!("{rw}{}", path.get(prefix.len()..).unwrap_or("")).into()
        } else if let Some((re, sub)) = &self.regex_rewrite {
            re.replace_all(path, sub.as_str())
        } else {
            path.into()
        };
        let mut url = format!("{scheme}://{host}");
        if let Some(p) = port {
            url.push(':');
            url.push_str(&p);
        }
        url.push_str(&new_path);
        // A `path` that carries its own query replaces the request's.
        if let (Some(q), false, false) = (query, self.strip_query, new_path.contains('?')) {
            url.push('?');
            url.push_str(q);
        }
        url
    }
}

fn split_host_port(host: &str) -> (&str, Option<&str>) {
    let bare = crate::http::router::strip_port(host);
    match host.get(bare.len() + 1..) {
        Some(port) if !port.is_empty() => (bare, Some(port)),
        _ => (bare, None),
    }
}

/// Envoy's regex substitution uses `\1`; the regex crate writes `${1}`.
fn substitution(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some(d)) if d.is_ascii_digit() => {
                out.push_str(&format!("${{{d}}}"));
                chars.next();
            }
            ('$', _) => out.push_str("$$"),
            _ => out.push(c),
        }
    }
    out
}

fn regex_rewrite(rw: &config::RegexRewrite, ctx: &str) -> Result<(Regex, String), String> {
    let re = Regex::new(&rw.pattern)
        .map_err(|e| format!("{ctx}: bad regex_rewrite pattern {:?}: {e}", rw.pattern))?;
    Ok((re, substitution(&rw.substitution)))
}

type Clusters = HashMap<String, Arc<ClusterRt>>;

fn cluster(clusters: &Clusters, name: &str, ctx: &str) -> Result<Arc<ClusterRt>, String> {
    clusters
        .get(name)
        .cloned()
        .ok_or_else(|| format!("{ctx}: unknown cluster {name:?}"))
}

fn host_value(h: &Option<String>, ctx: &str) -> Result<Option<HeaderValue>, String> {
    h.as_ref()
        .map(|h| HeaderValue::from_str(h).map_err(|_| format!("{ctx}: bad host_rewrite {h:?}")))
        .transpose()
}

impl ActionRt {
    pub fn compile(
        action: &config::RouteAction,
        path: &config::PathMatch,
        clusters: &Clusters,
        ctx: &str,
    ) -> Result<Self, String> {
        let prefix_of = |rw: &Option<String>, what: &str| match (rw, path) {
            (Some(rw), config::PathMatch::Prefix(p)) => Ok(Some((p.clone(), rw.clone()))),
            (Some(_), _) => Err(format!("{ctx}: {what} prefix_rewrite needs a prefix match")),
            (None, _) => Ok(None),
        };
        Ok(match action {
            config::RouteAction::Forward(f) => {
                let target = match (f.cluster.is_empty(), f.weighted_clusters.is_empty()) {
                    (false, true) => Target::One(cluster(clusters, &f.cluster, ctx)?),
                    (true, false) => {
                        let mut total = 0u64;
                        let mut branches = Vec::with_capacity(f.weighted_clusters.len());
                        for w in &f.weighted_clusters {
                            if w.weight == 0 {
                                continue;
                            }
                            total += u64::from(w.weight);
                            let bctx = format!("{ctx} weighted cluster {}", w.name);
                            branches.push((
                                total,
                                Branch {
                                    cluster: cluster(clusters, &w.name, ctx)?,
                                    headers: HeaderOps::compile(&w.headers)
                                        .map_err(|e| format!("{bctx}: {e}"))?,
                                    host_rewrite: host_value(&w.host_rewrite, &bctx)?,
                                },
                            ));
                        }
                        if total == 0 {
                            return Err(format!("{ctx}: weighted clusters have no weight"));
                        }
                        Target::Split { branches, total }
                    }
                    _ => {
                        return Err(format!(
                            "{ctx}: set exactly one of cluster and weighted_clusters"
                        ))
                    }
                };
                let ms = |v: Option<u64>| v.filter(|ms| *ms > 0).map(Duration::from_millis);
                ActionRt::Forward(Box::new(ForwardRt {
                    target,
                    timeout: ms(Some(f.timeout_ms)),
                    prefix_rewrite: prefix_of(&f.prefix_rewrite, "route")?.map(Box::new),
                    regex_rewrite: f
                        .regex_rewrite
                        .as_ref()
                        .map(|r| regex_rewrite(r, ctx).map(Box::new))
                        .transpose()?,
                    host_rewrite: host_value(&f.host_rewrite, ctx)?,
                    expected_timeout: (f.timeout_ms > 0).then(|| HeaderValue::from(f.timeout_ms)),
                    retry: f
                        .retry_policy
                        .as_ref()
                        .map(|p| Box::new(RetryRt::compile(p))),
                    hash_policy: f.hash_policy.clone(),
                    idle_timeout: ms(f.idle_timeout_ms),
                    max_stream_duration: ms(f.max_stream_duration_ms),
                    mirrors: f
                        .mirrors
                        .iter()
                        .map(|m| Ok((cluster(clusters, &m.cluster, ctx)?, m.percent)))
                        .collect::<Result<_, String>>()?,
                }))
            }
            config::RouteAction::Direct { status, body } => ActionRt::Direct {
                status: StatusCode::from_u16(*status)
                    .map_err(|_| format!("{ctx}: bad status {status}"))?,
                body: Bytes::from(body.clone()),
            },
            config::RouteAction::Redirect(r) => {
                let status = match r.response_code {
                    301 | 302 | 303 | 307 | 308 => StatusCode::from_u16(r.response_code)
                        .expect("a redirect status is a status"),
                    c => {
                        return Err(format!(
                            "{ctx}: redirect response_code {c} is not a redirect"
                        ))
                    }
                };
                ActionRt::Redirect(Box::new(RedirectRt {
                    status,
                    scheme: r.scheme.clone(),
                    host: r.host.clone(),
                    port: r.port,
                    path: r.path.clone(),
                    prefix_rewrite: prefix_of(&r.prefix_rewrite, "redirect")?,
                    regex_rewrite: r
                        .regex_rewrite
                        .as_ref()
                        .map(|rw| regex_rewrite(rw, ctx))
                        .transpose()?,
                    strip_query: r.strip_query,
                }))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(json: &str) -> RetryRt {
        RetryRt::compile(&serde_json::from_str(json).unwrap())
    }

    #[test]
    fn retry_on_follows_envoys_rules() {
        let h = http::HeaderMap::new();
        let resp = |status| AttemptEnd::Response {
            status,
            headers: &h,
        };
        let gw = retry(r#"{"retry_on":["gateway-error"]}"#);
        assert!(gw.wants_retry(resp(503)) && !gw.wants_retry(resp(500)));
        assert!(gw.wants_retry(AttemptEnd::Reset));
        let cf = retry(r#"{"retry_on":["connect-failure"]}"#);
        assert!(cf.wants_retry(AttemptEnd::ConnectFailure));
        assert!(!cf.wants_retry(AttemptEnd::Reset) && !cf.wants_retry(resp(503)));
        let codes =
            retry(r#"{"retry_on":["retriable-status-codes"],"retriable_status_codes":[418]}"#);
        assert!(codes.wants_retry(resp(418)) && !codes.wants_retry(resp(503)));
        let c4 = retry(r#"{"retry_on":["retriable-4xx"]}"#);
        assert!(c4.wants_retry(resp(409)) && !c4.wants_retry(resp(404)));
        let mut g = http::HeaderMap::new();
        g.insert("grpc-status", HeaderValue::from_static("14"));
        let unavailable = retry(r#"{"retry_on":["unavailable"]}"#);
        assert!(unavailable.wants_retry(AttemptEnd::Response {
            status: 200,
            headers: &g
        }));
        assert!(!unavailable.wants_retry(resp(200)));
    }

    #[test]
    fn backoff_is_jittered_exponential_and_capped() {
        let r = retry(r#"{"retry_on":["5xx"],"base_interval_ms":10,"max_interval_ms":50}"#);
        for _ in 0..200 {
            assert!(r.backoff(1) < Duration::from_millis(10));
            assert!(r.backoff(2) < Duration::from_millis(30));
            assert!(r.backoff(8) < Duration::from_millis(50));
        }
    }

    #[test]
    fn substitution_speaks_envoys_group_syntax() {
        assert_eq!(substitution(r"/v2/\1/x$"), "/v2/${1}/x$$");
    }

    fn redirect(json: &str) -> RedirectRt {
        let a: config::RouteAction = serde_json::from_str(json).unwrap();
        match ActionRt::compile(
            &a,
            &config::PathMatch::Prefix("/old".into()),
            &HashMap::new(),
            "t",
        )
        .unwrap()
        {
            ActionRt::Redirect(r) => *r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn redirect_locations() {
        let https = redirect(r#"{"redirect":{"scheme":"https"}}"#);
        assert_eq!(
            https.location("http", "a.com:80", "/x?q=1"),
            "https://a.com/x?q=1"
        );
        let prefix = redirect(r#"{"redirect":{"prefix_rewrite":"/new","strip_query":true}}"#);
        assert_eq!(
            prefix.location("http", "a.com:8080", "/old/p?q=1"),
            "http://a.com:8080/new/p"
        );
        let host = redirect(r#"{"redirect":{"host":"b.com","response_code":302}}"#);
        assert_eq!(host.status, StatusCode::FOUND);
        assert_eq!(host.location("http", "a.com:8080", "/p"), "http://b.com/p");
        let path = redirect(r#"{"redirect":{"path":"/z?k=v"}}"#);
        assert_eq!(
            path.location("http", "a.com", "/old?q=1"),
            "http://a.com/z?k=v"
        );
    }
}
