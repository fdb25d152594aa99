//! The native snapshot: the compact, validated config the engine runs on.
//!
//! Python's translator (`fastmesh.config`) turns Envoy's API (bootstrap YAML or
//! xDS) into this JSON shape; `Engine::apply` parses it once into these typed
//! structs and swaps it in atomically. Nothing here is re-read on the hot path.
//! Every field added later must carry `#[serde(default)]` so older snapshots
//! stay valid.

use serde::{Deserialize, Serialize};

/// A whole configuration: every listener and cluster the proxy runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Opaque version label shown in stats and logs (e.g. a file hash or xDS version).
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub listeners: Vec<Listener>,
    #[serde(default)]
    pub clusters: Vec<Cluster>,
}

/// A bound socket and what to do with its connections.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// Unique name; a listener keeps its socket across snapshots while its name and address stay.
    pub name: String,
    /// `ip:port`; port 0 binds an ephemeral port (see `Engine::listening`).
    pub address: String,
    /// Most concurrent downstream connections; further accepts wait. `None` = unlimited.
    #[serde(default)]
    pub max_connections: Option<u32>,
    pub filter: ListenerFilter,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[allow(clippy::large_enum_variant)] // parsed once per apply, never on the hot path
pub enum ListenerFilter {
    /// Envoy's `http_connection_manager`.
    Http(HttpConnectionManager),
    /// Envoy's `tcp_proxy`.
    Tcp(TcpProxy),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpProxy {
    /// Stats land under `tcp.<stat_prefix>.*`.
    pub stat_prefix: String,
    pub cluster: String,
    /// Close a connection with no bytes either way for this long; `None` = never. Envoy default 1 h.
    #[serde(default)]
    pub idle_timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodecType {
    /// HTTP/2 if the connection opens with the h2 preface, else HTTP/1.1.
    #[default]
    Auto,
    Http1,
    Http2,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConnectionManager {
    /// Stats land under `http.<stat_prefix>.*`.
    pub stat_prefix: String,
    #[serde(default)]
    pub codec_type: CodecType,
    /// Value of the `server` response header (Envoy: `server_name`; ours defaults to "fastmesh").
    #[serde(default = "default_server_name")]
    pub server_name: String,
    /// Largest total size of request headers, KiB (Envoy default 60). Larger gets 431.
    #[serde(default = "default_max_request_headers_kb")]
    pub max_request_headers_kb: u32,
    /// Most request headers (Envoy default 100). More gets 431.
    #[serde(default = "default_max_headers_count")]
    pub max_request_headers_count: u32,
    /// Connection idle timeout, ms (no active streams). `None` = Envoy's 1 h default.
    #[serde(default)]
    pub idle_timeout_ms: Option<u64>,
    /// Time allowed to receive the full request headers, ms; `None` = unlimited.
    #[serde(default)]
    pub request_headers_timeout_ms: Option<u64>,
    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS` advertised downstream (Envoy default 2147483647).
    #[serde(default)]
    pub max_concurrent_streams: Option<u32>,
    pub route_config: RouteConfiguration,
    /// Envoy `strip_any_host_port`: ignore the port of `host` when choosing a virtual host.
    /// Default false: `a.com:8080` matches only domains written with that port (or `*`).
    #[serde(default)]
    pub strip_any_host_port: bool,
    /// Envoy `use_remote_address`: append the peer IP to `x-forwarded-for`. Default false.
    #[serde(default)]
    pub use_remote_address: bool,
    /// Filter chain applied, in order, before the router. Empty = router only.
    #[serde(default)]
    pub http_filters: Vec<HttpFilterConfig>,
}

/// One HTTP filter ahead of the router. New native filters become new variants;
/// the Python bridge is one variant naming a registered Python filter.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum HttpFilterConfig {}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfiguration {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub virtual_hosts: Vec<VirtualHost>,
    #[serde(default)]
    pub headers: HeaderMutation,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualHost {
    pub name: String,
    /// Exact (`api.example.com`, optionally `:port`), suffix wildcard (`*.example.com`),
    /// prefix wildcard (`api.*`) or `*`. Most specific wins as in Envoy: exact, then
    /// longest suffix wildcard, then longest prefix wildcard, then `*`.
    pub domains: Vec<String>,
    pub routes: Vec<Route>,
    #[serde(default)]
    pub headers: HeaderMutation,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Stats name (Envoy's `route.name`); may be empty.
    #[serde(default)]
    pub name: String,
    #[serde(rename = "match")]
    pub matcher: RouteMatch,
    pub action: RouteAction,
    #[serde(default)]
    pub headers: HeaderMutation,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    pub path: PathMatch,
    /// Envoy default true; false lowercases both sides for prefix/exact.
    #[serde(default = "default_true")]
    pub case_sensitive: bool,
    /// All must match.
    #[serde(default)]
    pub headers: Vec<HeaderMatcher>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PathMatch {
    /// Path (without query) starts with this.
    Prefix(String),
    /// Path (without query) equals this.
    Exact(String),
    /// Whole path (without query) matches this RE2-compatible regex.
    Regex(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatcher {
    /// Lower-case header name; `:authority`, `:method`, `:path` are matched too.
    pub name: String,
    #[serde(rename = "match")]
    pub kind: HeaderMatchKind,
    /// Inverts the result (Envoy `invert_match`).
    #[serde(default)]
    pub invert: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HeaderMatchKind {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Regex(String),
    /// `true`: the header must be present; `false`: it must be absent.
    Present(bool),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RouteAction {
    Forward(ForwardAction),
    /// Answer locally (Envoy `direct_response`).
    Direct {
        status: u16,
        #[serde(default)]
        body: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAction {
    pub cluster: String,
    /// Whole-request timeout, ms; 0 disables. Envoy default 15000.
    #[serde(default = "default_route_timeout_ms")]
    pub timeout_ms: u64,
    /// Replace the matched prefix with this (Envoy `prefix_rewrite`).
    #[serde(default)]
    pub prefix_rewrite: Option<String>,
    /// Replace the `host`/`:authority` (Envoy `host_rewrite_literal`).
    #[serde(default)]
    pub host_rewrite: Option<String>,
}

/// Header additions and removals at one level (route config, virtual host, route).
/// Applied innermost first (route, then vhost, then route config), as Envoy does.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMutation {
    #[serde(default)]
    pub request_add: Vec<HeaderValueOption>,
    #[serde(default)]
    pub request_remove: Vec<String>,
    #[serde(default)]
    pub response_add: Vec<HeaderValueOption>,
    #[serde(default)]
    pub response_remove: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderValueOption {
    pub name: String,
    pub value: String,
    /// true: append another value; false: overwrite if present (Envoy `OVERWRITE_IF_EXISTS_OR_ADD`).
    #[serde(default = "default_true")]
    pub append: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscoveryType {
    /// Endpoints are IP literals.
    Static,
    /// Every A record of every endpoint hostname is an endpoint; re-resolved periodically.
    StrictDns,
    /// The first address the hostname resolves to; re-resolved periodically.
    LogicalDns,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LbPolicy {
    #[default]
    RoundRobin,
    /// Power of two random choices, fewest active requests wins.
    LeastRequest,
    Random,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub name: String,
    pub discovery: DiscoveryType,
    #[serde(default)]
    pub lb_policy: LbPolicy,
    pub endpoints: Vec<Endpoint>,
    /// Envoy default 5000.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Speak HTTP/2 (h2c prior knowledge) upstream.
    #[serde(default)]
    pub http2: bool,
    /// DNS re-resolution period for `*_dns`, ms. Envoy default 5000.
    #[serde(default = "default_dns_refresh_ms")]
    pub dns_refresh_ms: u64,
    /// Close pooled upstream connections idle this long, ms. Envoy default 1 h.
    #[serde(default)]
    pub idle_timeout_ms: Option<u64>,
    /// Most upstream connections per endpoint kept idle in the pool.
    #[serde(default)]
    pub max_idle_per_endpoint: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// IP literal (`static`) or hostname (`*_dns`).
    pub host: String,
    pub port: u16,
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_true() -> bool {
    true
}
fn default_server_name() -> String {
    "fastmesh".to_owned()
}
fn default_max_request_headers_kb() -> u32 {
    60
}
fn default_max_headers_count() -> u32 {
    100
}
fn default_route_timeout_ms() -> u64 {
    15_000
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_dns_refresh_ms() -> u64 {
    5_000
}
fn default_weight() -> u32 {
    1
}
