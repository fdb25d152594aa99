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
    /// Envoy's `connection_balance_config.exact_balance`: each accepted connection
    /// goes to the worker with the fewest of this listener's connections, instead
    /// of the one whose `SO_REUSEPORT` socket the kernel's hash picked.
    #[serde(default)]
    pub exact_balance: bool,
    /// Terminate TLS on this listener (Envoy's `DownstreamTlsContext` transport socket).
    #[serde(default)]
    pub tls: Option<DownstreamTls>,
    /// Envoy's network RBAC filters (`envoy.filters.network.rbac`), in filter order,
    /// evaluated once per connection before the listener's filter; the first denial
    /// closes the connection.
    #[serde(default)]
    pub network_rbac: Vec<RbacConfig>,
    /// The default chain's filter (Envoy's filter chain without `server_names`;
    /// with `server_name_chains` and without `tls`, it gets plaintext and the TLS
    /// of unmatched names as they come). `None` only with `server_name_chains`: a
    /// connection whose SNI matches none of them is closed.
    #[serde(default)]
    pub filter: Option<ListenerFilter>,
    /// Envoy's filter chains with `filter_chain_match.server_names`, chosen by
    /// the ClientHello's SNI before the handshake (exact, then the longest
    /// `*.suffix`, then the default chain above).
    #[serde(default)]
    pub server_name_chains: Vec<ServerNameChain>,
    /// The default chain's identity (of its TLS side with `tls.allow_plaintext`):
    /// what binds a connection it accepted, as the translator digests it from the
    /// Envoy filter chain. When an apply keeps the listener, a connection whose
    /// chain identity the new snapshot lacks is drained. `None`: a digest of
    /// the native chain.
    #[serde(default)]
    pub chain_id: Option<String>,
    /// With `tls.allow_plaintext`: the identity of the plaintext side (Envoy's
    /// `raw_buffer` chain of the permissive pair), for the connections it
    /// accepted in plaintext.
    #[serde(default)]
    pub plaintext_chain_id: Option<String>,
}

/// A filter chain chosen by the SNI of the connection's ClientHello.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerNameChain {
    /// Lower-case names, exact (`a.example.com`) or wildcard (`*.example.com`:
    /// one or more labels in front of `.example.com`).
    pub server_names: Vec<String>,
    /// Terminate TLS; `None`: pass it through (the filter gets the ClientHello
    /// and everything after it, as Envoy's chain without a transport socket).
    #[serde(default)]
    pub tls: Option<DownstreamTls>,
    #[serde(default)]
    pub network_rbac: Vec<RbacConfig>,
    pub filter: ListenerFilter,
    /// As `Listener::chain_id`.
    #[serde(default)]
    pub chain_id: Option<String>,
}

/// Server-side TLS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownstreamTls {
    /// PEM certificate chain (leaf first) and PEM private key. The translator reads
    /// files and SDS secrets into these, so a rotation is a new snapshot.
    pub cert_chain_pem: String,
    pub private_key_pem: String,
    /// The certificate's name in `ssl.certificate.<name>.expiration_unix_time_seconds`
    /// (see `unnamed_cert`).
    #[serde(default = "unnamed_cert")]
    pub cert_name: String,
    /// ALPN protocols offered, in preference order (e.g. `["h2", "http/1.1"]`).
    #[serde(default)]
    pub alpn: Vec<String>,
    /// Refuse a handshake without a client certificate (Envoy `require_client_certificate`).
    #[serde(default)]
    pub require_client_certificate: bool,
    /// Client certificates must chain to these roots and match the SAN matchers.
    #[serde(default)]
    pub validation: Option<CertValidation>,
    /// `"1.2"` (default) or `"1.3"`.
    #[serde(default = "default_tls_min")]
    pub min_version: String,
    /// Istio's PERMISSIVE: a connection whose first bytes are not a TLS ClientHello
    /// is served in plaintext on the same port.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// An OCSP response stapled for clients that ask (Envoy's `ocsp_staple`).
    #[serde(default)]
    pub ocsp_staple: Option<OcspStaple>,
}

/// Envoy's name for a certificate that is not an SDS secret (a secret is named by its
/// name): `unnamed_cert_` and the first 8 hex digits of the SHA-256 of its
/// `inline_bytes`, which are empty when it comes from a file or `inline_string`.
fn unnamed_cert() -> String {
    "unnamed_cert_e3b0c442".to_owned()
}

/// As `unnamed_cert`, for a validation context's `trusted_ca`.
fn unnamed_ca_cert() -> String {
    "unnamed_ca_cert_e3b0c442".to_owned()
}

/// A certificate's OCSP staple, checked by the translator (it is for this
/// certificate and says "successful").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OcspStaple {
    /// The DER OCSP response, hex.
    pub der_hex: String,
    /// Its `nextUpdate`, Unix seconds; after it (or without one) it is expired.
    #[serde(default)]
    pub next_update: Option<u64>,
    /// What an expired staple does (Envoy's `ocsp_staple_policy`).
    #[serde(default)]
    pub policy: StaplePolicy,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StaplePolicy {
    /// An expired staple is left out; the certificate still serves.
    #[default]
    Lenient,
    /// An expired staple fails the handshake (Envoy's STRICT_STAPLING).
    Strict,
    /// As strict; the translator also requires a staple (MUST_STAPLE).
    MustStaple,
}

/// Client-side TLS for a cluster (Envoy's `UpstreamTlsContext`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// Client certificate for mutual TLS; both or neither.
    #[serde(default)]
    pub cert_chain_pem: Option<String>,
    #[serde(default)]
    pub private_key_pem: Option<String>,
    /// The client certificate's name in its expiry gauge (see `unnamed_cert`).
    #[serde(default = "unnamed_cert")]
    pub cert_name: String,
    /// Server certificates must chain to these roots and match the SAN matchers.
    /// `None` = no verification (Envoy without a validation context).
    #[serde(default)]
    pub validation: Option<CertValidation>,
    /// SNI to send (Envoy `sni`); `None` sends none.
    #[serde(default)]
    pub sni: Option<String>,
    #[serde(default)]
    pub alpn: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertValidation {
    /// PEM bundle of trusted roots (during a root rotation: old and new); without
    /// one the peer is checked by its pins alone (`verify_certificate_*`).
    #[serde(default)]
    pub trusted_ca_pem: Option<String>,
    /// The roots' name in their expiry gauge (see `unnamed_ca_cert`).
    #[serde(default = "unnamed_ca_cert")]
    pub ca_name: String,
    /// The peer's certificate must have a SAN matching one of these (empty = any).
    #[serde(default)]
    pub match_subject_alt_names: Vec<SanMatcher>,
    /// PEM CRLs (Envoy's `crl`): a revoked peer certificate is refused. Every CA
    /// in the peer's chain (but the root) then needs a current CRL here, unless
    /// `only_verify_leaf_cert_crl`.
    #[serde(default)]
    pub crl_pem: Option<String>,
    /// Check only the leaf against the CRLs (Envoy's `only_verify_leaf_cert_crl`).
    #[serde(default)]
    pub only_verify_leaf_cert_crl: bool,
    /// SHA-256 digests of accepted peer certificates (DER), as Envoy spells them: 64
    /// hex digits, or 32 colon-separated pairs (`openssl x509 -fingerprint -sha256`).
    #[serde(default)]
    pub verify_certificate_hash: Vec<String>,
    /// SHA-256 digests of accepted peer public keys (the DER SubjectPublicKeyInfo),
    /// base64 (HPKP's pins). A certificate matching a hash or a pin is accepted.
    #[serde(default)]
    pub verify_certificate_spki: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SanMatcher {
    pub san_type: SanType,
    pub matcher: StringMatcher,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SanType {
    Uri,
    Dns,
    Email,
    IpAddress,
}

/// Envoy's `forward_client_cert_details`: what happens to `x-forwarded-client-cert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardClientCert {
    /// Remove it (Envoy's default).
    #[default]
    Sanitize,
    /// Pass the client's value on, only on mTLS connections.
    ForwardOnly,
    /// On mTLS: append this hop's details to the client's value.
    AppendForward,
    /// On mTLS: replace it with this hop's details.
    SanitizeSet,
    /// Pass it on whatever the connection.
    AlwaysForwardOnly,
}

/// Envoy's `set_current_client_cert_details`: the fields of this hop's XFCC element
/// besides `By` and `Hash`, which are always set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XfccDetails {
    #[serde(default)]
    pub subject: bool,
    #[serde(default)]
    pub uri: bool,
    #[serde(default)]
    pub dns: bool,
    #[serde(default)]
    pub cert: bool,
    #[serde(default)]
    pub chain: bool,
}

/// Envoy's RBAC filter config (HTTP or network).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RbacConfig {
    /// Stats land under `http.<hcm stat_prefix>.rbac.*` (HTTP) or
    /// `<stat_prefix>.rbac.*` (network), as in Envoy; this is the filter's own prefix
    /// (Envoy `stat_prefix`, may be empty).
    #[serde(default)]
    pub stat_prefix: String,
    /// Network filter: Envoy's `shadow_rules_stat_prefix`, which moves the shadow
    /// counters to `<stat_prefix>.rbac.<it>.*` (Istio's dry-run filters set it).
    #[serde(default)]
    pub shadow_rules_stat_prefix: String,
    /// Enforced rules; `None` allows everything.
    #[serde(default)]
    pub rules: Option<RbacRules>,
    /// Evaluated and counted (`shadow_allowed`/`shadow_denied`) but never enforced.
    #[serde(default)]
    pub shadow_rules: Option<RbacRules>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RbacRules {
    pub action: RbacAction,
    /// Policy name -> policy; a request matches the rules when any policy matches.
    #[serde(default)]
    pub policies: std::collections::BTreeMap<String, RbacPolicy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RbacAction {
    /// Allow only what matches a policy.
    Allow,
    /// Deny what matches a policy.
    Deny,
    /// Allow everything; count what matches (Envoy `LOG`).
    Log,
}

/// A policy matches when any permission and any principal match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RbacPolicy {
    pub permissions: Vec<Permission>,
    pub principals: Vec<Principal>,
}

/// What is being accessed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Permission {
    Any,
    AndRules(Vec<Permission>),
    OrRules(Vec<Permission>),
    NotRule(Box<Permission>),
    /// A request header (`:authority`, `:method`, `:path` included); HTTP only.
    Header(HeaderMatcher),
    /// The path without query (Envoy `url_path`); HTTP only.
    UrlPath(StringMatcher),
    DestinationPort(u16),
    /// `ip/prefix_len`.
    DestinationIp(String),
    /// The TLS SNI (Envoy `requested_server_name`).
    RequestedServerName(StringMatcher),
}

/// Who is accessing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Principal {
    Any,
    AndIds(Vec<Principal>),
    OrIds(Vec<Principal>),
    NotId(Box<Principal>),
    /// A verified client certificate whose URI SAN (else DNS SAN, else subject)
    /// matches; `None` = any authenticated peer (Envoy `authenticated: {}`).
    Authenticated(Option<StringMatcher>),
    /// The connection's peer address, `ip/prefix_len` (Envoy `direct_remote_ip`).
    DirectRemoteIp(String),
    /// Same as `direct_remote_ip` while fastmesh has no PROXY protocol / XFF trust
    /// (Envoy `remote_ip` and the deprecated `source_ip`).
    RemoteIp(String),
    /// A request header; HTTP only.
    Header(HeaderMatcher),
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
    /// Exactly one of `cluster` and `weighted_clusters` is set.
    #[serde(default)]
    pub cluster: String,
    /// Envoy `weighted_clusters.clusters`: each connection picks one by weight.
    #[serde(default)]
    pub weighted_clusters: Vec<TcpWeightedCluster>,
    /// Close a connection with no bytes either way for this long; `None` = never. Envoy default 1 h.
    #[serde(default)]
    pub idle_timeout_ms: Option<u64>,
}

/// One side of a `tcp_proxy` split.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpWeightedCluster {
    pub name: String,
    pub weight: u32,
}

/// Envoy `http2_protocol_options.connection_keepalive`: PING every interval; a
/// connection that then sends nothing at all (no ACK, no other frame) for `timeout_ms`
/// is closed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http2Keepalive {
    /// PING period, ms; 0 = no interval PINGs (and so no timeout).
    pub interval_ms: u64,
    /// How long to wait for anything after a PING, ms.
    pub timeout_ms: u64,
    /// Random extra on each connection's interval, percent of it (Envoy default 15).
    #[serde(default = "default_keepalive_jitter")]
    pub interval_jitter_percent: f64,
}

fn default_keepalive_jitter() -> f64 {
    15.0
}

impl Http2Keepalive {
    /// This connection's interval: the configured one plus up to `jitter` percent, so
    /// connections opened together do not PING together. `None` = no PINGs.
    pub fn jittered_interval(&self) -> Option<std::time::Duration> {
        if self.interval_ms == 0 {
            return None;
        }
        let extra = self.interval_ms as f64 * self.interval_jitter_percent / 100.0;
        let ms = self.interval_ms as f64 + fastrand::f64() * extra.max(0.0);
        Some(std::time::Duration::from_secs_f64(ms / 1000.0))
    }
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
    /// Connection idle timeout, ms (no active streams): drain (GOAWAY on h2), then close.
    /// `None` = Envoy's 1 h default; 0 disables.
    #[serde(default)]
    pub idle_timeout_ms: Option<u64>,
    /// Envoy `common_http_protocol_options.max_connection_duration`: drain a connection
    /// this long after it opened, ms. `None` or 0 = unlimited.
    #[serde(default)]
    pub max_connection_duration_ms: Option<u64>,
    /// Envoy `http2_protocol_options.connection_keepalive` for downstream HTTP/2.
    #[serde(default)]
    pub connection_keepalive: Option<Http2Keepalive>,
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
    /// Envoy `forward_client_cert_details`.
    #[serde(default)]
    pub forward_client_cert: ForwardClientCert,
    /// Envoy `set_current_client_cert_details` (with `append_forward` / `sanitize_set`).
    #[serde(default)]
    pub client_cert_details: XfccDetails,
    /// Envoy `stream_idle_timeout`: reset a stream with no body activity either way for
    /// this long, ms. `None` = Envoy's 5 min default; 0 disables. A route's `idle_timeout_ms`
    /// overrides it.
    #[serde(default)]
    pub stream_idle_timeout_ms: Option<u64>,
}

/// One HTTP filter ahead of the router. New native filters become new variants;
/// the Python bridge is one variant naming a registered Python filter.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum HttpFilterConfig {
    /// Envoy `envoy.filters.http.fault`; a route's or virtual host's
    /// `filter_overrides.fault` replaces this config for its requests.
    Fault(FaultConfig),
    /// Envoy `envoy.filters.http.local_ratelimit`; a route's or virtual host's
    /// `filter_overrides.local_rate_limit` replaces it (with its own bucket).
    LocalRateLimit(LocalRateLimitConfig),
    /// Envoy `envoy.filters.http.cors`: the policy itself comes from the route's or
    /// virtual host's `filter_overrides.cors`; without one the filter does nothing.
    Cors,
    /// Envoy `envoy.filters.http.rbac`; a route's `filter_overrides.rbac` replaces it.
    Rbac(RbacConfig),
}

/// A share of requests: `numerator / denominator` (Envoy `FractionalPercent`; the
/// denominator is 100, 10000 or 1000000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fraction {
    pub numerator: u32,
    #[serde(default = "default_hundred")]
    pub denominator: u32,
}

impl Fraction {
    pub const ALL: Fraction = Fraction {
        numerator: 100,
        denominator: 100,
    };

    /// Whether this request falls in the share (a random roll; 0 and 100 % are certain).
    #[inline]
    pub fn roll(self) -> bool {
        self.numerator > 0
            && (self.numerator >= self.denominator
                || fastrand::u32(..self.denominator.max(1)) < self.numerator)
    }

    /// A whole-percent share (Envoy's `enforcing_*` fields).
    pub fn percent(p: u32) -> Fraction {
        Fraction {
            numerator: p,
            denominator: 100,
        }
    }
}

/// Envoy's fault filter config.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    #[serde(default)]
    pub delay: Option<FaultDelay>,
    #[serde(default)]
    pub abort: Option<FaultAbort>,
    /// Only requests matching all of these are faulted (Envoy `headers`).
    #[serde(default)]
    pub headers: Vec<HeaderMatcher>,
    /// Most requests faulted at once (Envoy `max_active_faults`); `None` = unlimited.
    #[serde(default)]
    pub max_active_faults: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultDelay {
    /// Fixed delay, ms. `None` with `header_controlled`: the delay comes from the
    /// request's `x-envoy-fault-delay-request` header (ms).
    #[serde(default)]
    pub fixed_ms: Option<u64>,
    #[serde(default)]
    pub header_controlled: bool,
    /// Share of requests delayed; `x-envoy-fault-delay-request-percentage` may lower it
    /// when header-controlled.
    pub percent: Fraction,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultAbort {
    /// HTTP status to answer with (200..599).
    #[serde(default)]
    pub http_status: Option<u16>,
    /// gRPC status to answer with (HTTP 200 + `grpc-status` trailers-only response).
    #[serde(default)]
    pub grpc_status: Option<u32>,
    /// Status from `x-envoy-fault-abort-request` (HTTP) or
    /// `x-envoy-fault-abort-grpc-request` (gRPC).
    #[serde(default)]
    pub header_controlled: bool,
    pub percent: Fraction,
}

/// Envoy's local rate-limit filter config: one token bucket per config instance
/// (the filter's, or each route's / virtual host's override), shared by all workers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalRateLimitConfig {
    /// Stats land under `<stat_prefix>.http_local_rate_limit.*`, as in Envoy.
    pub stat_prefix: String,
    /// `None`: the filter is installed but limits nothing (Envoy without a bucket).
    #[serde(default)]
    pub token_bucket: Option<TokenBucket>,
    /// Share of requests checked against the bucket (Envoy `filter_enabled`, default 0 %).
    #[serde(default = "Fraction::none")]
    pub enabled: Fraction,
    /// Share of checked requests actually refused when over the limit (Envoy
    /// `filter_enforced`, default 0 %); the rest only count `rate_limited`.
    #[serde(default = "Fraction::none")]
    pub enforced: Fraction,
    /// Status of the local reply (Envoy `status`, default 429).
    #[serde(default = "default_rate_limited_status")]
    pub status: u16,
    /// Added to limited responses (Envoy `response_headers_to_add`).
    #[serde(default)]
    pub response_headers_to_add: Vec<HeaderValueOption>,
    /// Envoy `enable_x_ratelimit_headers: DRAFT_VERSION_03`: `x-ratelimit-limit`,
    /// `x-ratelimit-remaining`, `x-ratelimit-reset` on every checked response.
    #[serde(default)]
    pub x_ratelimit_headers: bool,
}

impl Fraction {
    pub fn none() -> Fraction {
        Fraction {
            numerator: 0,
            denominator: 100,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBucket {
    pub max_tokens: u32,
    /// Default 1.
    #[serde(default = "default_one")]
    pub tokens_per_fill: u32,
    pub fill_interval_ms: u64,
}

/// A CORS policy (Envoy `CorsPolicy`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsPolicy {
    /// An `origin` matching any of these is allowed.
    #[serde(default)]
    pub allow_origin: Vec<StringMatcher>,
    /// Verbatim header values (comma-separated lists), empty = not sent.
    #[serde(default)]
    pub allow_methods: String,
    #[serde(default)]
    pub allow_headers: String,
    #[serde(default)]
    pub expose_headers: String,
    #[serde(default)]
    pub max_age: String,
    #[serde(default)]
    pub allow_credentials: bool,
    /// Envoy `allow_private_network_access`.
    #[serde(default)]
    pub allow_private_network_access: bool,
    /// Share of requests the policy is enforced for (Envoy `filter_enabled`, default 100 %).
    #[serde(default = "Fraction::all")]
    pub enabled: Fraction,
    /// Envoy `forward_not_matching_preflights` (default true): false answers a preflight
    /// from an origin not allowed here, without `access-control-allow-origin`.
    #[serde(default = "default_true")]
    pub forward_not_matching_preflights: bool,
}

impl Fraction {
    pub fn all() -> Fraction {
        Fraction::ALL
    }
}

/// Envoy's `StringMatcher`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StringMatcher {
    pub kind: StringMatch,
    #[serde(default)]
    pub ignore_case: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    /// Whole value matches (RE2 syntax).
    Regex(String),
}

/// Per-route or per-virtual-host filter configs (Envoy `typed_per_filter_config`, and
/// the deprecated `cors` fields). The engine uses the route's, else its virtual host's,
/// else the filter's own config.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterOverrides {
    // Boxed: every route and virtual host carries this, almost always empty.
    #[serde(default)]
    pub fault: Option<Box<FaultConfig>>,
    #[serde(default)]
    pub local_rate_limit: Option<Box<LocalRateLimitConfig>>,
    #[serde(default)]
    pub cors: Option<Box<CorsPolicy>>,
    #[serde(default)]
    pub rbac: Option<Box<RbacConfig>>,
}

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
    #[serde(default)]
    pub filter_overrides: FilterOverrides,
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
    #[serde(default)]
    pub filter_overrides: FilterOverrides,
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
    /// All must match (Envoy `query_parameters`).
    #[serde(default)]
    pub query_parameters: Vec<QueryParameterMatcher>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryParameterMatcher {
    /// Exact, case-sensitive parameter name.
    pub name: String,
    /// `None`: the parameter only has to be present (Envoy `present_match: true`).
    #[serde(default)]
    pub value: Option<StringMatcher>,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    // Boxed: a 10k-service config holds tens of thousands of routes while it is applied.
    Forward(Box<ForwardAction>),
    /// Answer locally (Envoy `direct_response`).
    Direct {
        status: u16,
        #[serde(default)]
        body: String,
    },
    /// Answer with a redirect (Envoy `redirect`).
    Redirect(Box<RedirectAction>),
}

/// Envoy `RedirectAction`: each part unset keeps the request's own.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectAction {
    /// `https_redirect: true` becomes `"https"`.
    #[serde(default)]
    pub scheme: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    /// Replace the whole path (it may carry its own query).
    #[serde(default)]
    pub path: Option<String>,
    /// Replace the matched prefix (needs a prefix match).
    #[serde(default)]
    pub prefix_rewrite: Option<String>,
    #[serde(default)]
    pub regex_rewrite: Option<RegexRewrite>,
    #[serde(default)]
    pub strip_query: bool,
    /// 301 (default), 302, 303, 307 or 308.
    #[serde(default = "default_redirect_code")]
    pub response_code: u16,
}

/// Envoy `regex_rewrite`: every match of `pattern` in the path (without query)
/// is replaced by `substitution` (`\1`-style group references).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexRewrite {
    pub pattern: String,
    pub substitution: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAction {
    /// The upstream cluster; empty when `weighted_clusters` is set (exactly one of the two).
    #[serde(default)]
    pub cluster: String,
    /// Split by weight (Envoy `weighted_clusters`); weights need not sum to 100.
    #[serde(default)]
    pub weighted_clusters: Vec<WeightedCluster>,
    /// Whole-request timeout, ms; 0 disables. Envoy default 15000.
    #[serde(default = "default_route_timeout_ms")]
    pub timeout_ms: u64,
    /// Replace the matched prefix with this (Envoy `prefix_rewrite`).
    #[serde(default)]
    pub prefix_rewrite: Option<String>,
    /// Replace the `host`/`:authority` (Envoy `host_rewrite_literal`).
    #[serde(default)]
    pub host_rewrite: Option<String>,
    #[serde(default)]
    pub regex_rewrite: Option<RegexRewrite>,
    /// Route-level retry policy; the translator folds a virtual host's policy in here
    /// for routes without their own, as Envoy's precedence says.
    #[serde(default)]
    pub retry_policy: Option<RetryPolicy>,
    /// Hash policies for ring hash / Maglev clusters, evaluated in order.
    #[serde(default)]
    pub hash_policy: Vec<HashPolicy>,
    /// Per-stream idle timeout (Envoy route `idle_timeout`), ms; 0 disables. Overrides
    /// the connection manager's `stream_idle_timeout_ms`.
    #[serde(default)]
    pub idle_timeout_ms: Option<u64>,
    /// Longest a stream may live, ms (Envoy `max_stream_duration.max_stream_duration`).
    #[serde(default)]
    pub max_stream_duration_ms: Option<u64>,
    /// Shadow copies of requests, fire-and-forget (Envoy `request_mirror_policies`).
    #[serde(default)]
    pub mirrors: Vec<MirrorPolicy>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedCluster {
    pub name: String,
    pub weight: u32,
    /// Request/response header mutations for requests sent to this cluster; applied
    /// before the route's own, as Envoy does.
    #[serde(default)]
    pub headers: HeaderMutation,
    #[serde(default)]
    pub host_rewrite: Option<String>,
}

/// Envoy `RetryPolicy`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    pub retry_on: Vec<RetryOn>,
    /// Retries after the first attempt (Envoy default 1).
    #[serde(default = "default_one")]
    pub num_retries: u32,
    /// Deadline for each attempt, ms; `None` = only the route timeout.
    #[serde(default)]
    pub per_try_timeout_ms: Option<u64>,
    /// For `retriable_status_codes`.
    #[serde(default)]
    pub retriable_status_codes: Vec<u16>,
    /// Back-off base, ms (Envoy default 25): attempt n waits a random time in
    /// `[0, min(base * 2^n, max))`, as Envoy's jittered exponential back-off.
    #[serde(default = "default_retry_base_ms")]
    pub base_interval_ms: u64,
    /// Back-off cap, ms; `None` = 10 x base.
    #[serde(default)]
    pub max_interval_ms: Option<u64>,
    /// Envoy's `envoy.retry_host_predicates.previous_hosts`: a retry avoids hosts
    /// already tried when it can.
    #[serde(default)]
    pub avoid_previous_hosts: bool,
}

/// Envoy's `retry_on` conditions (the names as Envoy writes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryOn {
    #[serde(rename = "5xx")]
    FiveXx,
    GatewayError,
    Reset,
    ConnectFailure,
    RetriableStatusCodes,
    #[serde(rename = "retriable-4xx")]
    Retriable4xx,
    RefusedStream,
    // gRPC: on the `grpc-status` of a headers-only (trailers-only) response.
    Cancelled,
    DeadlineExceeded,
    Internal,
    ResourceExhausted,
    Unavailable,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashPolicy {
    pub kind: HashPolicyKind,
    /// Stop at this policy when it produced a hash (Envoy `terminal`).
    #[serde(default)]
    pub terminal: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HashPolicyKind {
    /// Value of this request header (lower-case name).
    Header(String),
    /// Value of this cookie (an absent cookie yields no hash; no cookie is generated).
    Cookie(String),
    /// The downstream peer's IP.
    SourceIp,
    /// Value of this query parameter.
    QueryParameter(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorPolicy {
    pub cluster: String,
    /// Share of requests mirrored (Envoy `runtime_fraction.default_value`; default all).
    #[serde(default = "Fraction::all")]
    pub percent: Fraction,
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
    /// Ketama-style consistent hash ring over the route's hash policy.
    RingHash,
    /// Maglev consistent hashing over the route's hash policy.
    Maglev,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub name: String,
    pub discovery: DiscoveryType,
    /// Originate TLS to the endpoints (Envoy's `UpstreamTlsContext` transport socket).
    #[serde(default)]
    pub tls: Option<UpstreamTls>,
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
    /// Envoy `http2_protocol_options.connection_keepalive` for upstream HTTP/2. `None` =
    /// ours: PING every 30 s, close after 20 s without an answer (Envoy sends none).
    #[serde(default)]
    pub http2_keepalive: Option<Http2Keepalive>,
    /// Most upstream connections per endpoint kept idle in the pool.
    #[serde(default)]
    pub max_idle_per_endpoint: Option<u32>,
    /// Envoy `ring_hash_lb_config` (min, max ring size); defaults 1024 and 8M.
    #[serde(default)]
    pub ring_hash: Option<RingHashConfig>,
    /// Envoy `maglev_lb_config.table_size` (a prime); default 65537.
    #[serde(default)]
    pub maglev_table_size: Option<u64>,
    /// Envoy `circuit_breakers.thresholds` for the DEFAULT priority.
    #[serde(default)]
    pub circuit_breakers: CircuitBreakers,
    #[serde(default)]
    pub outlier_detection: Option<OutlierDetection>,
    /// Active health checks (Envoy allows several; each must pass).
    #[serde(default)]
    pub health_checks: Vec<HealthCheck>,
    /// Envoy `common_lb_config.healthy_panic_threshold`, percent (default 50): below
    /// this healthy share the balancer ignores health and uses every host.
    #[serde(default = "default_panic_threshold")]
    pub healthy_panic_threshold: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingHashConfig {
    #[serde(default = "default_min_ring")]
    pub min_ring_size: u64,
    #[serde(default = "default_max_ring")]
    pub max_ring_size: u64,
}

/// Limits with Envoy's defaults; exceeding one answers 503 with
/// `x-envoy-overloaded: true` and counts an overflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreakers {
    #[serde(default = "default_1024")]
    pub max_connections: u32,
    #[serde(default = "default_1024")]
    pub max_pending_requests: u32,
    #[serde(default = "default_1024")]
    pub max_requests: u32,
    #[serde(default = "default_three")]
    pub max_retries: u32,
    /// When set, replaces `max_retries` with a share of active requests.
    #[serde(default)]
    pub retry_budget: Option<RetryBudget>,
}

impl Default for CircuitBreakers {
    fn default() -> Self {
        CircuitBreakers {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
            retry_budget: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryBudget {
    /// Active retries may be at most this percent of active requests (default 20).
    #[serde(default = "default_budget_percent")]
    pub budget_percent: f64,
    /// ... but at least this many at once (default 3).
    #[serde(default = "default_three")]
    pub min_retry_concurrency: u32,
}

/// Envoy `OutlierDetection`, with Envoy's defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierDetection {
    #[serde(default = "default_five")]
    pub consecutive_5xx: u32,
    #[serde(default = "default_five")]
    pub consecutive_gateway_failure: u32,
    /// Sweep period: un-ejection and success-rate evaluation, ms (default 10 s).
    #[serde(default = "default_od_interval_ms")]
    pub interval_ms: u64,
    /// Ejection time = base x times ejected, capped by `max_ejection_time_ms` (default 30 s).
    #[serde(default = "default_od_base_ejection_ms")]
    pub base_ejection_time_ms: u64,
    #[serde(default = "default_od_max_ejection_ms")]
    pub max_ejection_time_ms: u64,
    /// At most this percent of hosts ejected at once, but always at least one (default 10).
    #[serde(default = "default_ten")]
    pub max_ejection_percent: u32,
    /// Percent of detections actually enforced (defaults 100, 0, 100 as in Envoy).
    #[serde(default = "default_hundred")]
    pub enforcing_consecutive_5xx: u32,
    #[serde(default)]
    pub enforcing_consecutive_gateway_failure: u32,
    #[serde(default = "default_hundred")]
    pub enforcing_success_rate: u32,
    /// Success-rate ejection needs this many hosts with enough requests (default 5)...
    #[serde(default = "default_five")]
    pub success_rate_minimum_hosts: u32,
    /// ... each with at least this many requests in the interval (default 100).
    #[serde(default = "default_hundred")]
    pub success_rate_request_volume: u32,
    /// Eject below mean - stdev x factor / 1000 (default 1900).
    #[serde(default = "default_stdev_factor")]
    pub success_rate_stdev_factor: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub timeout_ms: u64,
    pub interval_ms: u64,
    /// Extra random delay added to each interval, ms.
    #[serde(default)]
    pub interval_jitter_ms: u64,
    /// Interval while the cluster has never sent a request (Envoy `no_traffic_interval`,
    /// 60 s there by default); `None` = `interval_ms` always.
    #[serde(default)]
    pub no_traffic_interval_ms: Option<u64>,
    /// Failed checks in a row before a host is marked unhealthy.
    pub unhealthy_threshold: u32,
    /// Passed checks in a row before an unhealthy host is healthy again.
    pub healthy_threshold: u32,
    pub kind: HealthCheckKind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HealthCheckKind {
    Http {
        path: String,
        /// `host` header; `None` = the cluster name, as in Envoy.
        #[serde(default)]
        host: Option<String>,
        /// Half-open ranges `[start, end)`; empty = `[[200, 201]]`.
        #[serde(default)]
        expected_statuses: Vec<(u16, u16)>,
        /// Check over h2c instead of HTTP/1.1.
        #[serde(default)]
        http2: bool,
    },
    Tcp {
        /// Bytes to send after connecting (hex-decoded by the translator); empty = connect only.
        #[serde(default)]
        send: Vec<u8>,
        /// Bytes that must all arrive (in order, as one blob), empty = none awaited.
        #[serde(default)]
        receive: Vec<u8>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// IP literal (`static`) or hostname (`*_dns`).
    pub host: String,
    pub port: u16,
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Envoy locality priority: 0 is used first; higher ones take the load the
    /// unhealthy share of lower ones cannot.
    #[serde(default)]
    pub priority: u32,
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
fn default_one() -> u32 {
    1
}
fn default_three() -> u32 {
    3
}
fn default_five() -> u32 {
    5
}
fn default_ten() -> u32 {
    10
}
fn default_hundred() -> u32 {
    100
}
fn default_1024() -> u32 {
    1024
}
fn default_stdev_factor() -> u32 {
    1900
}
fn default_rate_limited_status() -> u16 {
    429
}
fn default_redirect_code() -> u16 {
    301
}
fn default_retry_base_ms() -> u64 {
    25
}
fn default_budget_percent() -> f64 {
    20.0
}
fn default_panic_threshold() -> f64 {
    50.0
}
fn default_min_ring() -> u64 {
    1024
}
fn default_max_ring() -> u64 {
    8 * 1024 * 1024
}
fn default_tls_min() -> String {
    "1.2".to_owned()
}
fn default_od_interval_ms() -> u64 {
    10_000
}
fn default_od_base_ejection_ms() -> u64 {
    30_000
}
fn default_od_max_ejection_ms() -> u64 {
    300_000
}

#[cfg(test)]
mod tests {
    use super::Fraction;

    #[test]
    fn fraction_rolls_are_certain_at_the_edges() {
        let f = |numerator, denominator| Fraction {
            numerator,
            denominator,
        };
        assert!((0..1000).all(|_| f(100, 100).roll()));
        assert!((0..1000).all(|_| f(1_000_000, 1_000_000).roll()));
        assert!((0..1000).all(|_| !f(0, 100).roll()));
        let half = (0..10_000).filter(|_| f(5000, 10_000).roll()).count();
        assert!((4000..6000).contains(&half), "{half}");
    }
}
