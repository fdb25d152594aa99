//! The compiled routing table: virtual host selection by domain (exact, then
//! longest suffix wildcard, then longest prefix wildcard, then `*`), then the
//! first route whose path and header matchers all match.

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderName, Method};
use regex::Regex;

use crate::config::{self, HeaderMatchKind, PathMatch, StringMatch};
use crate::http::action::ActionRt;
use crate::http::filters::RouteFilters;
use crate::http::headers::HeaderOps;
use crate::stats::{route as rs, Registry, StatGroup};
use crate::upstream::ClusterRt;

/// A snapshot's route configuration, ready for matching.
#[derive(Debug)]
pub struct RouteTable {
    exact: HashMap<String, usize>,
    /// (`.example.com`-style suffix, vhost), longest first.
    suffix: Vec<(String, usize)>,
    /// (`api.`-style prefix, vhost), longest first.
    prefix: Vec<(String, usize)>,
    star: Option<usize>,
    /// Envoy `strip_any_host_port`: match `host:port` as `host`.
    strip_any_host_port: bool,
    pub vhosts: Vec<VirtualHostRt>,
    pub headers: HeaderOps,
}

#[derive(Debug)]
pub struct VirtualHostRt {
    pub name: String,
    pub routes: Vec<RouteRt>,
    pub headers: HeaderOps,
}

#[derive(Debug)]
pub struct RouteRt {
    path: PathMatcher,
    header_matchers: Vec<HeaderMatcherRt>,
    query_matchers: Vec<(String, Option<StringMatcherRt>)>,
    pub action: ActionRt,
    pub headers: HeaderOps,
    pub stats: Arc<StatGroup>,
    /// Per-route filter configs (the route's own over its virtual host's).
    pub filters: RouteFilters,
}

#[derive(Debug)]
enum PathMatcher {
    Prefix { value: String, case_sensitive: bool },
    Exact { value: String, case_sensitive: bool },
    Regex(Regex),
}

/// Envoy's `StringMatcher`, compiled.
#[derive(Debug)]
pub struct StringMatcherRt {
    kind: StringKindRt,
    ignore_case: bool,
}

#[derive(Debug)]
enum StringKindRt {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Regex(Regex),
}

impl StringMatcherRt {
    pub fn compile(m: &config::StringMatcher, ctx: &str) -> Result<Self, String> {
        let fold = |v: &String| {
            if m.ignore_case {
                v.to_lowercase()
            } else {
                v.clone()
            }
        };
        let kind = match &m.kind {
            StringMatch::Exact(v) => StringKindRt::Exact(fold(v)),
            StringMatch::Prefix(v) => StringKindRt::Prefix(fold(v)),
            StringMatch::Suffix(v) => StringKindRt::Suffix(fold(v)),
            StringMatch::Contains(v) => StringKindRt::Contains(fold(v)),
            StringMatch::Regex(re) => StringKindRt::Regex(anchored(re, ctx)?),
        };
        Ok(StringMatcherRt {
            kind,
            ignore_case: m.ignore_case,
        })
    }

    pub fn matches(&self, value: &str) -> bool {
        let lowered;
        let v = if self.ignore_case && !matches!(self.kind, StringKindRt::Regex(_)) {
            lowered = value.to_lowercase();
            lowered.as_str()
        } else {
            value
        };
        match &self.kind {
            StringKindRt::Exact(e) => v == e,
            StringKindRt::Prefix(p) => v.starts_with(p.as_str()),
            StringKindRt::Suffix(x) => v.ends_with(x.as_str()),
            StringKindRt::Contains(c) => v.contains(c.as_str()),
            StringKindRt::Regex(re) => re.is_match(v),
        }
    }
}

/// A compiled `config::HeaderMatcher` (routes; the fault filter's `headers`).
#[derive(Debug)]
pub(crate) struct HeaderMatcherRt {
    name: HeaderTarget,
    kind: HeaderKindRt,
    invert: bool,
}

#[derive(Debug)]
enum HeaderTarget {
    Authority,
    Method,
    Path,
    Header(HeaderName),
}

#[derive(Debug)]
enum HeaderKindRt {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Regex(Regex),
    Present(bool),
}

/// The request facts routing looks at.
pub struct RouteInput<'a> {
    /// Host without the port, any case.
    pub host: &'a str,
    pub path: &'a str,
    pub method: &'a Method,
    pub path_and_query: &'a str,
    pub headers: &'a http::HeaderMap,
}

impl<'a> RouteInput<'a> {
    /// The facts of a request the route was already chosen for (filters match on them).
    pub fn from_request(req: &'a http::request::Parts) -> Self {
        let host = match req.uri.authority() {
            Some(a) => a.as_str(),
            None => req
                .headers
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
        };
        RouteInput {
            host,
            path: req.uri.path(),
            method: &req.method,
            path_and_query: req.uri.path_and_query().map_or("/", |p| p.as_str()),
            headers: &req.headers,
        }
    }
}

fn anchored(re: &str, what: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{re})$")).map_err(|e| format!("{what}: bad regex {re:?}: {e}"))
}

impl RouteTable {
    /// Compile `rc`; every cluster a route names must be in `clusters`.
    pub fn compile(
        rc: &config::RouteConfiguration,
        clusters: &HashMap<String, Arc<ClusterRt>>,
        stats: &Registry,
        strip_any_host_port: bool,
    ) -> Result<Self, String> {
        let mut t = RouteTable {
            strip_any_host_port,
            exact: HashMap::new(),
            suffix: Vec::new(),
            prefix: Vec::new(),
            star: None,
            vhosts: Vec::new(),
            headers: HeaderOps::compile(&rc.headers)
                .map_err(|e| format!("route_config {}: {e}", rc.name))?,
        };
        for (vi, vh) in rc.virtual_hosts.iter().enumerate() {
            let ctx = format!("virtual_host {}", vh.name);
            for d in &vh.domains {
                let d = d.to_ascii_lowercase();
                let dup = if d == "*" {
                    t.star.replace(vi).is_some()
                } else if let Some(rest) = d.strip_prefix('*') {
                    t.suffix.iter().any(|(s, _)| *s == rest) || {
                        t.suffix.push((rest.to_owned(), vi));
                        false
                    }
                } else if let Some(rest) = d.strip_suffix('*') {
                    t.prefix.iter().any(|(s, _)| *s == rest) || {
                        t.prefix.push((rest.to_owned(), vi));
                        false
                    }
                } else {
                    t.exact.insert(d.clone(), vi).is_some()
                };
                if dup {
                    return Err(format!(
                        "{ctx}: domain {d:?} is already used by another virtual host"
                    ));
                }
            }
            let vhost_filters = RouteFilters::compile(&vh.filter_overrides, stats, &ctx)?;
            let mut routes = Vec::with_capacity(vh.routes.len());
            for (ri, r) in vh.routes.iter().enumerate() {
                let rname = if r.name.is_empty() {
                    format!("route_{ri}")
                } else {
                    r.name.clone()
                };
                let rctx = format!("{ctx} route {rname}");
                let cs = r.matcher.case_sensitive;
                let path = match &r.matcher.path {
                    PathMatch::Prefix(p) => PathMatcher::Prefix {
                        value: p.clone(),
                        case_sensitive: cs,
                    },
                    PathMatch::Exact(p) => PathMatcher::Exact {
                        value: p.clone(),
                        case_sensitive: cs,
                    },
                    PathMatch::Regex(re) => PathMatcher::Regex(anchored(re, &rctx)?),
                };
                let header_matchers = r
                    .matcher
                    .headers
                    .iter()
                    .map(|h| HeaderMatcherRt::compile(h, &rctx))
                    .collect::<Result<Vec<_>, _>>()?;
                let action = ActionRt::compile(&r.action, &r.matcher.path, clusters, &rctx)?;
                let query_matchers = r
                    .matcher
                    .query_parameters
                    .iter()
                    .map(|q| {
                        let m = q
                            .value
                            .as_ref()
                            .map(|v| StringMatcherRt::compile(v, &rctx))
                            .transpose()?;
                        Ok((q.name.clone(), m))
                    })
                    .collect::<Result<_, String>>()?;
                let mut filters =
                    RouteFilters::compile(&r.filter_overrides, stats, &rctx)?.over(&vhost_filters);
                if !matches!(action, ActionRt::Forward(_)) {
                    // Envoy's CORS filter skips routes that do not forward (no route entry).
                    filters.cors = None;
                }
                routes.push(RouteRt {
                    path,
                    header_matchers,
                    query_matchers,
                    action,
                    headers: HeaderOps::compile(&r.headers).map_err(|e| format!("{rctx}: {e}"))?,
                    stats: stats.group(&format!("vhost.{}.route.{}", vh.name, rname), rs::NAMES),
                    filters,
                });
            }
            t.vhosts.push(VirtualHostRt {
                name: vh.name.clone(),
                routes,
                headers: HeaderOps::compile(&vh.headers).map_err(|e| format!("{ctx}: {e}"))?,
            });
        }
        t.suffix.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        t.prefix.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        Ok(t)
    }

    /// The virtual host for `host` (with or without `:port`).
    pub fn vhost(&self, host: &str) -> Option<&VirtualHostRt> {
        self.vhost_index(host).map(|i| &self.vhosts[i])
    }

    fn vhost_index(&self, host: &str) -> Option<usize> {
        let mut buf = [0u8; 256];
        let lowered: std::borrow::Cow<'_, str> = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            if host.len() <= buf.len() {
                let b = &mut buf[..host.len()];
                b.copy_from_slice(host.as_bytes());
                b.make_ascii_lowercase();
                std::borrow::Cow::Borrowed(std::str::from_utf8(&buf[..host.len()]).unwrap_or(""))
            } else {
                std::borrow::Cow::Owned(host.to_ascii_lowercase())
            }
        } else {
            std::borrow::Cow::Borrowed(host)
        };
        let host = &*lowered;
        if !self.exact.is_empty() {
            if let Some(i) = self.exact.get(host) {
                return Some(*i);
            }
        }
        // Envoy matches the host with its port unless told to strip it.
        let host = if self.strip_any_host_port {
            strip_port(host)
        } else {
            host
        };
        if self.strip_any_host_port && !self.exact.is_empty() {
            if let Some(i) = self.exact.get(host) {
                return Some(*i);
            }
        }
        for (s, i) in &self.suffix {
            if host.len() > s.len() && host.ends_with(s.as_str()) {
                return Some(*i);
            }
        }
        for (p, i) in &self.prefix {
            if host.len() > p.len() && host.starts_with(p.as_str()) {
                return Some(*i);
            }
        }
        self.star
    }
}

/// `host:port` -> `host`, leaving IPv6 literals (`[::1]:80`) bracketed.
pub fn strip_port(host: &str) -> &str {
    if let Some(end) = host.rfind(']') {
        return &host[..=end];
    }
    match host.rfind(':') {
        Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
        _ => host,
    }
}

impl VirtualHostRt {
    /// The first route matching the request.
    pub fn route(&self, input: &RouteInput<'_>) -> Option<&RouteRt> {
        self.routes.iter().find(|r| r.matches(input))
    }
}

impl RouteRt {
    fn matches(&self, input: &RouteInput<'_>) -> bool {
        let path = input.path;
        let ok = match &self.path {
            PathMatcher::Prefix {
                value,
                case_sensitive: true,
            } => path.starts_with(value.as_str()),
            PathMatcher::Prefix {
                value,
                case_sensitive: false,
            } => {
                path.len() >= value.len()
                    && path.as_bytes()[..value.len()].eq_ignore_ascii_case(value.as_bytes())
            }
            PathMatcher::Exact {
                value,
                case_sensitive: true,
            } => path == value,
            PathMatcher::Exact {
                value,
                case_sensitive: false,
            } => path.eq_ignore_ascii_case(value),
            PathMatcher::Regex(re) => re.is_match(path),
        };
        ok && self.header_matchers.iter().all(|m| m.matches(input))
            && (self.query_matchers.is_empty() || self.query_matches(input.path_and_query))
    }

    /// Envoy: each matcher looks at the first occurrence of its parameter,
    /// compared as written (not percent-decoded).
    fn query_matches(&self, path_and_query: &str) -> bool {
        let query = path_and_query.split_once('?').map_or("", |(_, q)| q);
        self.query_matchers.iter().all(|(name, m)| {
            let value = query.split('&').find_map(|kv| match kv.split_once('=') {
                Some((k, v)) if k == name => Some(v),
                None if kv == name => Some(""),
                _ => None,
            });
            match (value, m) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(v), Some(m)) => m.matches(v),
            }
        })
    }
}

impl HeaderMatcherRt {
    /// `what` names the owner in errors.
    pub(crate) fn compile(h: &config::HeaderMatcher, what: &str) -> Result<Self, String> {
        let lname = h.name.to_ascii_lowercase();
        let name = match lname.as_str() {
            ":authority" | "host" => HeaderTarget::Authority,
            ":method" => HeaderTarget::Method,
            ":path" => HeaderTarget::Path,
            n => HeaderTarget::Header(
                HeaderName::from_bytes(n.as_bytes())
                    .map_err(|_| format!("{what}: bad header name {n:?}"))?,
            ),
        };
        let kind = match &h.kind {
            HeaderMatchKind::Exact(v) => HeaderKindRt::Exact(v.clone()),
            HeaderMatchKind::Prefix(v) => HeaderKindRt::Prefix(v.clone()),
            HeaderMatchKind::Suffix(v) => HeaderKindRt::Suffix(v.clone()),
            HeaderMatchKind::Contains(v) => HeaderKindRt::Contains(v.clone()),
            HeaderMatchKind::Regex(v) => HeaderKindRt::Regex(anchored(v, what)?),
            HeaderMatchKind::Present(p) => HeaderKindRt::Present(*p),
        };
        Ok(HeaderMatcherRt {
            name,
            kind,
            invert: h.invert,
        })
    }

    pub(crate) fn matches(&self, input: &RouteInput<'_>) -> bool {
        let joined;
        let value: Option<&str> = match &self.name {
            HeaderTarget::Authority => Some(input.host),
            HeaderTarget::Method => Some(input.method.as_str()),
            HeaderTarget::Path => Some(input.path_and_query),
            HeaderTarget::Header(n) => {
                let mut all = input.headers.get_all(n).iter();
                match (all.next(), all.next()) {
                    (None, _) => None,
                    (Some(v), None) => v.to_str().ok(),
                    (Some(_), Some(_)) => {
                        // Envoy matches multiple values joined with ','.
                        joined = input
                            .headers
                            .get_all(n)
                            .iter()
                            .filter_map(|v| v.to_str().ok())
                            .collect::<Vec<_>>()
                            .join(",");
                        Some(joined.as_str())
                    }
                }
            }
        };
        let Some(value) = value else {
            // Envoy: a missing header fails every matcher, inverted or not, except
            // `present: false` (and `present: true` inverted).
            return matches!(self.kind, HeaderKindRt::Present(p) if p == self.invert);
        };
        let value = Some(value);
        let hit = match (&self.kind, value) {
            (HeaderKindRt::Present(want), v) => v.is_some() == *want,
            (_, None) => false,
            (HeaderKindRt::Exact(e), Some(v)) => v == e,
            (HeaderKindRt::Prefix(p), Some(v)) => v.starts_with(p.as_str()),
            (HeaderKindRt::Suffix(s), Some(v)) => v.ends_with(s.as_str()),
            (HeaderKindRt::Contains(s), Some(v)) => v.contains(s.as_str()),
            (HeaderKindRt::Regex(re), Some(v)) => re.is_match(v),
        };
        hit != self.invert
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn table(json: &str) -> Result<RouteTable, String> {
        let rc: config::RouteConfiguration = serde_json::from_str(json).unwrap();
        RouteTable::compile(&rc, &HashMap::new(), &Registry::default(), false)
    }

    fn vh(domains: &[&str], name: &str) -> String {
        format!(
            r#"{{"name":"{name}","domains":{},"routes":[{{"match":{{"path":{{"prefix":"/"}}}},"action":{{"direct":{{"status":200}}}}}}]}}"#,
            serde_json::to_string(domains).unwrap()
        )
    }

    fn pick<'a>(t: &'a RouteTable, host: &str) -> Option<&'a str> {
        t.vhost(host).map(|v| v.name.as_str())
    }

    #[test]
    fn vhost_precedence_exact_suffix_prefix_star() {
        let t = table(&format!(
            r#"{{"virtual_hosts":[{},{},{},{},{}]}}"#,
            vh(&["*"], "star"),
            vh(&["api.*"], "prefix"),
            vh(&["*.example.com"], "suffix"),
            vh(&["*.api.example.com"], "longer_suffix"),
            vh(&["api.example.com", "port.example.com:8080"], "exact"),
        ))
        .unwrap();
        assert_eq!(pick(&t, "api.example.com"), Some("exact"));
        assert_eq!(pick(&t, "API.Example.com"), Some("exact"));
        assert_eq!(pick(&t, "port.example.com:8080"), Some("exact"));
        // Ports are not stripped by default (Envoy): only wildcards can still match.
        assert_eq!(pick(&t, "www.example.com:80"), Some("star"));
        assert_eq!(pick(&t, "api.example.com:80"), Some("prefix"));
        assert_eq!(pick(&t, "v1.api.example.com"), Some("longer_suffix"));
        assert_eq!(pick(&t, "www.example.com"), Some("suffix"));
        assert_eq!(pick(&t, "api.other.org"), Some("prefix"));
        assert_eq!(pick(&t, "elsewhere"), Some("star"));
        assert_eq!(
            pick(&t, "example.com"),
            Some("star"),
            "a wildcard needs a non-empty match"
        );
    }

    #[test]
    fn strip_any_host_port_ignores_ports() {
        let rc: config::RouteConfiguration =
            serde_json::from_str(&format!(r#"{{"virtual_hosts":[{}]}}"#, vh(&["a.com"], "a")))
                .unwrap();
        let t = RouteTable::compile(&rc, &HashMap::new(), &Registry::default(), true).unwrap();
        assert_eq!(pick(&t, "a.com:8080"), Some("a"));
    }

    #[test]
    fn no_star_means_no_vhost() {
        let t = table(&format!(r#"{{"virtual_hosts":[{}]}}"#, vh(&["a.com"], "a"))).unwrap();
        assert!(t.vhost("b.com").is_none());
    }

    #[test]
    fn duplicate_domains_are_rejected() {
        let e = table(&format!(
            r#"{{"virtual_hosts":[{},{}]}}"#,
            vh(&["a.com"], "a"),
            vh(&["A.com"], "b")
        ))
        .unwrap_err();
        assert!(e.contains("a.com"), "{e}");
    }

    fn routes_table() -> RouteTable {
        table(
            r#"{"virtual_hosts":[{"name":"v","domains":["*"],"routes":[
              {"name":"exact","match":{"path":{"exact":"/health"}},"action":{"direct":{"status":200}}},
              {"name":"ci","match":{"path":{"prefix":"/CI/"},"case_sensitive":false},"action":{"direct":{"status":200}}},
              {"name":"re","match":{"path":{"regex":"/users/[0-9]+"}},"action":{"direct":{"status":200}}},
              {"name":"hdr","match":{"path":{"prefix":"/"},"headers":[
                 {"name":"x-canary","match":{"exact":"1"}},
                 {"name":"x-block","match":{"present":true},"invert":true}]},"action":{"direct":{"status":200}}},
              {"name":"inv","match":{"path":{"prefix":"/inv"},"headers":[{"name":"x-tier","match":{"exact":"banned"},"invert":true}]},"action":{"direct":{"status":200}}},
              {"name":"get","match":{"path":{"prefix":"/"},"headers":[{"name":":method","match":{"exact":"GET"}}]},"action":{"direct":{"status":200}}},
              {"name":"rest","match":{"path":{"prefix":"/"}},"action":{"direct":{"status":200}}}
            ]}]}"#,
        )
        .unwrap()
    }

    fn route_name(t: &RouteTable, method: &str, path: &str, headers: &[(&str, &str)]) -> String {
        let mut h = http::HeaderMap::new();
        for (k, v) in headers {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let input = RouteInput {
            host: "x",
            path,
            method: &m,
            path_and_query: path,
            headers: &h,
        };
        let v = t.vhost("x").unwrap();
        let r = v.route(&input).unwrap();
        let i = v.routes.iter().position(|x| std::ptr::eq(x, r)).unwrap();
        ["exact", "ci", "re", "hdr", "inv", "get", "rest"][i].to_owned()
    }

    #[test]
    fn routes_match_in_order() {
        let t = routes_table();
        assert_eq!(route_name(&t, "GET", "/health", &[]), "exact");
        assert_eq!(route_name(&t, "GET", "/healthz", &[]), "get");
        assert_eq!(route_name(&t, "GET", "/ci/x", &[]), "ci");
        assert_eq!(route_name(&t, "GET", "/users/42", &[]), "re");
        assert_eq!(
            route_name(&t, "POST", "/users/42x", &[]),
            "rest",
            "regex matches the whole path"
        );
        assert_eq!(route_name(&t, "POST", "/a", &[("x-canary", "1")]), "hdr");
        assert_eq!(
            route_name(&t, "POST", "/a", &[("x-canary", "1"), ("x-block", "")]),
            "rest"
        );
        assert_eq!(route_name(&t, "POST", "/a", &[("x-canary", "2")]), "rest");
        // An inverted matcher still fails on a missing header (Envoy).
        assert_eq!(route_name(&t, "GET", "/inv", &[]), "get");
        assert_eq!(route_name(&t, "POST", "/inv", &[("x-tier", "gold")]), "inv");
    }

    #[test]
    fn bad_regex_and_unknown_cluster_are_errors() {
        let e = table(r#"{"virtual_hosts":[{"name":"v","domains":["*"],"routes":[{"match":{"path":{"regex":"(("}},"action":{"direct":{"status":200}}}]}]}"#).unwrap_err();
        assert!(e.contains("bad regex"), "{e}");
        let e = table(r#"{"virtual_hosts":[{"name":"v","domains":["*"],"routes":[{"match":{"path":{"prefix":"/"}},"action":{"forward":{"cluster":"nope"}}}]}]}"#).unwrap_err();
        assert!(e.contains("unknown cluster \"nope\""), "{e}");
    }

    #[test]
    fn strip_port_handles_ipv6() {
        assert_eq!(strip_port("a.com:80"), "a.com");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("a.com"), "a.com");
    }
}
