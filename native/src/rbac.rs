//! Envoy's RBAC policy engine, shared by `envoy.filters.http.rbac`
//! (`http::filters::rbac`) and `envoy.filters.network.rbac` (`network_rbac`, run
//! by the listener once per connection): rules compiled once per snapshot,
//! evaluated per request or connection without allocating.
//!
//! Semantics are Envoy's (`filters/common/rbac`): a policy matches when any of
//! its permissions and any of its principals match; ALLOW rules allow exactly
//! what some policy matches, DENY rules deny exactly that, LOG rules allow
//! everything. Shadow rules are evaluated and counted, never enforced.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::config::{Permission, Principal, RbacAction, RbacConfig, RbacPolicy, RbacRules};
use crate::conn::ConnInfo;
use crate::http::router::{HeaderMatcherRt, RouteInput, StringMatcherRt};
use crate::stats::{rbac_enforced, rbac_shadow, Registry, StatGroup};

/// What rules look at: the connection, and in the HTTP filter the request.
#[derive(Clone, Copy)]
pub struct RbacInput<'a> {
    conn: &'a ConnInfo,
    /// `None` in the network filter: `url_path` never matches there, and header
    /// rules are refused when it is compiled (as Envoy does).
    request: Option<&'a RouteInput<'a>>,
}

impl<'a> RbacInput<'a> {
    pub fn http(conn: &'a ConnInfo, request: &'a RouteInput<'a>) -> Self {
        RbacInput {
            conn,
            request: Some(request),
        }
    }

    pub fn network(conn: &'a ConnInfo) -> Self {
        RbacInput {
            conn,
            request: None,
        }
    }

    fn header(&self, m: &HeaderMatcherRt) -> bool {
        self.request.is_some_and(|r| m.matches(r))
    }

    /// Envoy's `requestedServerName()`: empty without TLS or SNI.
    fn sni(&self) -> &str {
        self.conn
            .tls
            .as_ref()
            .and_then(|t| t.sni.as_deref())
            .unwrap_or("")
    }

    /// Envoy's `AuthenticatedMatcher`: any TLS connection is authenticated; a name
    /// matcher tries each URI SAN, then each DNS SAN, then the subject (empty
    /// without a client certificate).
    fn authenticated(&self, name: Option<&StringMatcherRt>) -> bool {
        let Some(tls) = &self.conn.tls else {
            return false;
        };
        let Some(m) = name else {
            return true;
        };
        match &tls.peer_cert {
            Some(c) => {
                c.uri_sans.iter().chain(&c.dns_sans).any(|s| m.matches(s)) || m.matches(&c.subject)
            }
            None => m.matches(""),
        }
    }
}

/// An address range from `ip/prefix_len`, host bits cleared. An address of the
/// other family is never in it (Envoy's `CidrRange`); IPv4-mapped IPv6 peers
/// count as IPv4, as Envoy sees them on a dual-stack socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("bad CIDR range {s:?}: {why}");
        let (ip, len) = s.split_once('/').ok_or_else(|| bad("want ip/prefix_len"))?;
        let ip: IpAddr = ip.parse().map_err(|_| bad("not an IP address"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix_len = len
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| bad(&format!("prefix_len must be 0..={max}")))?;
        Ok(Cidr {
            net: masked(ip, prefix_len),
            prefix_len,
        })
    }

    /// `parse`, with `what` naming the owner in errors.
    fn compile(s: &str, what: &str) -> Result<Self, String> {
        Cidr::parse(s).map_err(|e| format!("{what}: {e}"))
    }

    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.net.is_ipv4() && masked(ip, self.prefix_len) == self.net
    }
}

/// `ip` with all but its first `len` bits cleared (`len` within its family's width).
fn masked(ip: IpAddr, len: u8) -> IpAddr {
    let host_bits = |width: u32| width - u32::from(len);
    match ip {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(host_bits(32)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from_bits(a.to_bits() & mask))
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(host_bits(128)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from_bits(a.to_bits() & mask))
        }
    }
}

/// A compiled `Permission`: what is being accessed.
#[derive(Debug)]
enum PermissionRt {
    Any,
    And(Vec<PermissionRt>),
    Or(Vec<PermissionRt>),
    Not(Box<PermissionRt>),
    Header(HeaderMatcherRt),
    UrlPath(StringMatcherRt),
    DestinationPort(u16),
    DestinationIp(Cidr),
    RequestedServerName(StringMatcherRt),
}

impl PermissionRt {
    fn compile(p: &Permission, what: &str) -> Result<Self, String> {
        let set = |ps: &[Permission], field: &str| -> Result<Vec<PermissionRt>, String> {
            if ps.is_empty() {
                return Err(format!("{what}: {field} must not be empty"));
            }
            ps.iter().map(|p| PermissionRt::compile(p, what)).collect()
        };
        Ok(match p {
            Permission::Any => PermissionRt::Any,
            Permission::AndRules(ps) => PermissionRt::And(set(ps, "and_rules")?),
            Permission::OrRules(ps) => PermissionRt::Or(set(ps, "or_rules")?),
            Permission::NotRule(p) => PermissionRt::Not(Box::new(PermissionRt::compile(p, what)?)),
            Permission::Header(h) => PermissionRt::Header(HeaderMatcherRt::compile(h, what)?),
            Permission::UrlPath(m) => PermissionRt::UrlPath(StringMatcherRt::compile(m, what)?),
            Permission::DestinationPort(port) => PermissionRt::DestinationPort(*port),
            Permission::DestinationIp(c) => PermissionRt::DestinationIp(Cidr::compile(c, what)?),
            Permission::RequestedServerName(m) => {
                PermissionRt::RequestedServerName(StringMatcherRt::compile(m, what)?)
            }
        })
    }

    fn matches(&self, i: &RbacInput<'_>) -> bool {
        match self {
            PermissionRt::Any => true,
            PermissionRt::And(ps) => ps.iter().all(|p| p.matches(i)),
            PermissionRt::Or(ps) => ps.iter().any(|p| p.matches(i)),
            PermissionRt::Not(p) => !p.matches(i),
            PermissionRt::Header(h) => i.header(h),
            PermissionRt::UrlPath(m) => i.request.is_some_and(|r| m.matches(r.path)),
            PermissionRt::DestinationPort(port) => i.conn.local.port() == *port,
            PermissionRt::DestinationIp(c) => c.contains(i.conn.local.ip()),
            PermissionRt::RequestedServerName(m) => m.matches(i.sni()),
        }
    }
}

/// A compiled `Principal`: who is accessing.
#[derive(Debug)]
enum PrincipalRt {
    Any,
    And(Vec<PrincipalRt>),
    Or(Vec<PrincipalRt>),
    Not(Box<PrincipalRt>),
    /// `None`: any TLS peer.
    Authenticated(Option<StringMatcherRt>),
    /// `direct_remote_ip` and `remote_ip` alike: without PROXY protocol or trusted
    /// `x-forwarded-for`, both are the connection's peer.
    PeerIp(Cidr),
    Header(HeaderMatcherRt),
}

impl PrincipalRt {
    fn compile(p: &Principal, what: &str) -> Result<Self, String> {
        let set = |ps: &[Principal], field: &str| -> Result<Vec<PrincipalRt>, String> {
            if ps.is_empty() {
                return Err(format!("{what}: {field} must not be empty"));
            }
            ps.iter().map(|p| PrincipalRt::compile(p, what)).collect()
        };
        Ok(match p {
            Principal::Any => PrincipalRt::Any,
            Principal::AndIds(ps) => PrincipalRt::And(set(ps, "and_ids")?),
            Principal::OrIds(ps) => PrincipalRt::Or(set(ps, "or_ids")?),
            Principal::NotId(p) => PrincipalRt::Not(Box::new(PrincipalRt::compile(p, what)?)),
            Principal::Authenticated(m) => PrincipalRt::Authenticated(
                m.as_ref()
                    .map(|m| StringMatcherRt::compile(m, what))
                    .transpose()?,
            ),
            Principal::DirectRemoteIp(c) | Principal::RemoteIp(c) => {
                PrincipalRt::PeerIp(Cidr::compile(c, what)?)
            }
            Principal::Header(h) => PrincipalRt::Header(HeaderMatcherRt::compile(h, what)?),
        })
    }

    fn matches(&self, i: &RbacInput<'_>) -> bool {
        match self {
            PrincipalRt::Any => true,
            PrincipalRt::And(ps) => ps.iter().all(|p| p.matches(i)),
            PrincipalRt::Or(ps) => ps.iter().any(|p| p.matches(i)),
            PrincipalRt::Not(p) => !p.matches(i),
            PrincipalRt::Authenticated(m) => i.authenticated(m.as_ref()),
            PrincipalRt::PeerIp(c) => c.contains(i.conn.peer.ip()),
            PrincipalRt::Header(h) => i.header(h),
        }
    }
}

#[derive(Debug)]
struct PolicyRt {
    /// For the debug log of a denial, as Envoy's "matched policy".
    name: String,
    permissions: Vec<PermissionRt>,
    principals: Vec<PrincipalRt>,
}

impl PolicyRt {
    fn compile(name: &str, p: &RbacPolicy, what: &str) -> Result<Self, String> {
        let what = format!("{what}: policy {name:?}");
        if p.permissions.is_empty() || p.principals.is_empty() {
            return Err(format!(
                "{what}: needs at least one permission and one principal"
            ));
        }
        Ok(PolicyRt {
            name: name.to_owned(),
            permissions: p
                .permissions
                .iter()
                .map(|p| PermissionRt::compile(p, &what))
                .collect::<Result<_, _>>()?,
            principals: p
                .principals
                .iter()
                .map(|p| PrincipalRt::compile(p, &what))
                .collect::<Result<_, _>>()?,
        })
    }

    fn matches(&self, i: &RbacInput<'_>) -> bool {
        self.permissions.iter().any(|p| p.matches(i))
            && self.principals.iter().any(|p| p.matches(i))
    }
}

/// One compiled `RBAC` message: an action over policies, in name order (Envoy
/// keeps them in a sorted map and stops at the first match).
#[derive(Debug)]
struct RulesRt {
    action: RbacAction,
    policies: Vec<PolicyRt>,
}

impl RulesRt {
    fn compile(r: &RbacRules, what: &str) -> Result<Self, String> {
        Ok(RulesRt {
            action: r.action,
            policies: r
                .policies
                .iter()
                .map(|(name, p)| PolicyRt::compile(name, p, what))
                .collect::<Result<_, _>>()?,
        })
    }

    /// `None` when allowed, else the policy that denied (`"none"` when ALLOW
    /// rules matched nothing, as Envoy logs it).
    fn denial(&self, i: &RbacInput<'_>) -> Option<&str> {
        // LOG: Envoy only records a match for access logs, which fastmesh has none of.
        if self.action == RbacAction::Log {
            return None;
        }
        let matched = self.policies.iter().find(|p| p.matches(i));
        match (self.action, matched) {
            (RbacAction::Allow, None) => Some("none"),
            (RbacAction::Deny, Some(p)) => Some(&p.name),
            _ => None,
        }
    }
}

/// One compiled `RbacConfig`: an RBAC filter's own, or a route's override of it.
#[derive(Debug)]
pub struct Rbac {
    /// `None` allows everything and counts nothing (Envoy without `rules`).
    rules: Option<RulesRt>,
    shadow: Option<RulesRt>,
}

impl Rbac {
    /// `what` names the owner in errors.
    pub fn compile(c: &RbacConfig, what: &str) -> Result<Self, String> {
        let rules = |r: &Option<RbacRules>, which: &str| {
            r.as_ref()
                .map(|r| RulesRt::compile(r, &format!("{what}: rbac {which}")))
                .transpose()
        };
        Ok(Rbac {
            rules: rules(&c.rules, "rules")?,
            shadow: rules(&c.shadow_rules, "shadow_rules")?,
        })
    }

    /// Whether access is allowed, counting the shadow verdict and the enforced one
    /// into `stats` (the filter's, whichever config applies, as in Envoy).
    pub fn check(&self, i: &RbacInput<'_>, stats: &RbacStats) -> bool {
        if let Some(shadow) = &self.shadow {
            stats.shadow.count(shadow.denial(i).is_none());
        }
        let Some(rules) = &self.rules else {
            return true;
        };
        let denial = rules.denial(i);
        if let Some(policy) = denial {
            tracing::debug!(policy, "rbac: access denied");
        }
        stats.enforced.count(denial.is_none());
        denial.is_none()
    }
}

/// An `allowed` counter and, in the next slot, its `denied`.
#[derive(Debug)]
struct Tally {
    group: Arc<StatGroup>,
    allowed: usize,
}

impl Tally {
    #[inline]
    fn count(&self, allowed: bool) {
        self.group.inc(self.allowed + usize::from(!allowed));
    }
}

/// Where one RBAC filter counts its verdicts, under Envoy's names.
#[derive(Debug)]
pub struct RbacStats {
    enforced: Tally,
    shadow: Tally,
}

impl RbacStats {
    /// `http.<hcm stat_prefix>.rbac.*`, the enforced counters under
    /// `rbac.<rules_stat_prefix>.*` when one is set (Envoy adds the `.`).
    pub fn http(stats: &Registry, hcm_stat_prefix: &str, rules_stat_prefix: &str) -> Self {
        let base = format!("http.{hcm_stat_prefix}.rbac");
        Self::new(stats, &base, rules_stat_prefix, "")
    }

    /// `<stat_prefix>.rbac.*` (a `stat_prefix` may end in its own `.`), the shadow
    /// counters under `rbac.<shadow_rules_stat_prefix>.*` when one is set.
    pub fn network(stats: &Registry, stat_prefix: &str, shadow_rules_stat_prefix: &str) -> Self {
        let base = match stat_prefix.strip_suffix('.').unwrap_or(stat_prefix) {
            "" => "rbac".to_owned(),
            p => format!("{p}.rbac"),
        };
        Self::new(stats, &base, "", shadow_rules_stat_prefix)
    }

    /// Envoy's names: `<base>.<rules prefix>.allowed`, `<base>.<shadow prefix>.shadow_allowed`
    /// (each prefix may end in its own `.`; an empty one adds nothing).
    fn new(stats: &Registry, base: &str, rules_prefix: &str, shadow_prefix: &str) -> Self {
        let under = |prefix: &str| match prefix.strip_suffix('.').unwrap_or(prefix) {
            "" => base.to_owned(),
            p => format!("{base}.{p}"),
        };
        RbacStats {
            enforced: Tally {
                group: stats.group(&under(rules_prefix), rbac_enforced::NAMES),
                allowed: rbac_enforced::ALLOWED,
            },
            shadow: Tally {
                group: stats.group(&under(shadow_prefix), rbac_shadow::NAMES),
                allowed: rbac_shadow::SHADOW_ALLOWED,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::{PeerCert, TlsInfo};
    use serde_json::{json, Value};

    /// Peer 10.1.2.3:5555, local 192.168.0.10:8443.
    fn conn(tls: Option<TlsInfo>) -> ConnInfo {
        ConnInfo {
            tls,
            ..ConnInfo::plain(
                "10.1.2.3:5555".parse().unwrap(),
                "192.168.0.10:8443".parse().unwrap(),
            )
        }
    }

    fn mtls(uri_sans: &[&str], dns_sans: &[&str], subject: &str) -> ConnInfo {
        conn(Some(TlsInfo {
            sni: Some("api.mesh.local".to_owned()),
            peer_cert: Some(PeerCert {
                uri_sans: uri_sans.iter().map(|s| s.to_string()).collect(),
                dns_sans: dns_sans.iter().map(|s| s.to_string()).collect(),
                subject: subject.to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn compile(config: Value) -> Rbac {
        Rbac::compile(&serde_json::from_value(config).unwrap(), "test").unwrap()
    }

    /// ALLOW rules with one policy: `permission` for anyone, or `principal` for anything.
    fn allow_if(permission: Value, principal: Value) -> Rbac {
        compile(json!({"rules": {"action": "allow", "policies": {
            "p": {"permissions": [permission], "principals": [principal]},
        }}}))
    }

    /// Whether `rbac` lets the request (or, with `None`, the bare connection) through.
    fn allows(rbac: &Rbac, conn: &ConnInfo, req: Option<&http::request::Parts>) -> bool {
        let stats = RbacStats::http(&Registry::default(), "t", "");
        match req {
            Some(r) => rbac.check(&RbacInput::http(conn, &RouteInput::from_request(r)), &stats),
            None => rbac.check(&RbacInput::network(conn), &stats),
        }
    }

    fn permits(permission: Value, conn: &ConnInfo, req: Option<&http::request::Parts>) -> bool {
        allows(&allow_if(permission, json!("any")), conn, req)
    }

    fn admits(principal: Value, conn: &ConnInfo, req: Option<&http::request::Parts>) -> bool {
        allows(&allow_if(json!("any"), principal), conn, req)
    }

    fn exact(s: &str) -> Value {
        json!({"kind": {"exact": s}})
    }

    fn header(name: &str, m: Value) -> Value {
        json!({"header": {"name": name, "match": m}})
    }

    #[test]
    fn header_permissions_see_pseudo_headers_and_joined_values() {
        let c = conn(None);
        let get = request("GET", "http://shop.local:8080/cart?id=7", &[("x-a", "1")]);
        let post = request("POST", "/cart", &[("host", "shop.local"), ("x-a", "1")]);
        let twice = request("GET", "/", &[("x-a", "1"), ("x-a", "2")]);
        let method = header(":method", json!({"exact": "GET"}));
        assert!(permits(method.clone(), &c, Some(&get)));
        assert!(!permits(method, &c, Some(&post)));
        let path = header(":path", json!({"exact": "/cart?id=7"}));
        assert!(permits(path, &c, Some(&get)), ":path keeps the query");
        let authority = header(":authority", json!({"exact": "shop.local:8080"}));
        assert!(permits(authority, &c, Some(&get)));
        let host = header("host", json!({"exact": "shop.local"}));
        assert!(
            permits(host, &c, Some(&post)),
            "HTTP/1.1 Host is :authority"
        );
        let joined = header("x-a", json!({"exact": "1,2"}));
        assert!(permits(joined.clone(), &c, Some(&twice)));
        assert!(!permits(joined, &c, Some(&get)));
    }

    #[test]
    fn url_path_ignores_the_query() {
        let c = conn(None);
        let m = json!({"url_path": {"kind": {"prefix": "/admin/"}}});
        assert!(permits(
            m.clone(),
            &c,
            Some(&request("GET", "/admin/x?y=1", &[]))
        ));
        assert!(!permits(
            m.clone(),
            &c,
            Some(&request("GET", "/public?/admin/", &[]))
        ));
        let whole = json!({"url_path": exact("/admin")});
        assert!(permits(
            whole,
            &c,
            Some(&request("GET", "/admin?debug=1", &[]))
        ));
    }

    #[test]
    fn destination_port_and_ip_are_the_local_address() {
        let c = conn(None);
        let r = request("GET", "/", &[]);
        assert!(permits(json!({"destination_port": 8443}), &c, Some(&r)));
        assert!(
            !permits(json!({"destination_port": 5555}), &c, Some(&r)),
            "that is the peer's"
        );
        assert!(permits(
            json!({"destination_ip": "192.168.0.0/16"}),
            &c,
            Some(&r)
        ));
        assert!(permits(
            json!({"destination_ip": "192.168.0.10/32"}),
            &c,
            Some(&r)
        ));
        assert!(!permits(
            json!({"destination_ip": "10.0.0.0/8"}),
            &c,
            Some(&r)
        ));
    }

    #[test]
    fn requested_server_name_is_the_sni_or_empty() {
        let r = request("GET", "/", &[]);
        let sni = json!({"requested_server_name": {"kind": {"suffix": ".mesh.local"}}});
        assert!(permits(sni.clone(), &mtls(&[], &[], ""), Some(&r)));
        assert!(!permits(sni, &conn(None), Some(&r)));
        let empty = json!({"requested_server_name": exact("")});
        assert!(
            permits(empty.clone(), &conn(None), Some(&r)),
            "Envoy matches \"\""
        );
        assert!(!permits(empty, &mtls(&[], &[], ""), Some(&r)));
    }

    #[test]
    fn permission_combinators() {
        let c = conn(None);
        let r = request("GET", "/a", &[]);
        let (yes, no) = (
            json!({"destination_port": 8443}),
            json!({"destination_port": 1}),
        );
        let and = |a: &Value, b: &Value| json!({"and_rules": [a, b]});
        let or = |a: &Value, b: &Value| json!({"or_rules": [a, b]});
        assert!(permits(and(&yes, &yes), &c, Some(&r)));
        assert!(!permits(and(&yes, &no), &c, Some(&r)));
        assert!(permits(or(&no, &yes), &c, Some(&r)));
        assert!(!permits(or(&no, &no), &c, Some(&r)));
        assert!(permits(json!({"not_rule": no}), &c, Some(&r)));
        assert!(!permits(json!({"not_rule": yes}), &c, Some(&r)));
        assert!(permits(
            json!({"not_rule": {"not_rule": yes}}),
            &c,
            Some(&r)
        ));
    }

    #[test]
    fn authenticated_needs_tls_and_tries_every_san_then_the_subject() {
        let r = request("GET", "/", &[]);
        let spiffe = "spiffe://td/ns/shop/sa/cart";
        let anyone = json!({"authenticated": null});
        assert!(!admits(anyone.clone(), &conn(None), Some(&r)), "plaintext");
        assert!(admits(anyone.clone(), &mtls(&[spiffe], &[], ""), Some(&r)));
        let tls_no_cert = conn(Some(TlsInfo::default()));
        assert!(
            admits(anyone, &tls_no_cert, Some(&r)),
            "Envoy: any TLS peer"
        );

        let named = |m: Value| json!({"authenticated": m});
        let cart = named(exact(spiffe));
        assert!(admits(
            cart.clone(),
            &mtls(&[spiffe], &[], "CN=x"),
            Some(&r)
        ));
        assert!(admits(
            cart.clone(),
            &mtls(&["spiffe://td/other", spiffe], &[], ""),
            Some(&r)
        ));
        assert!(!admits(
            cart.clone(),
            &mtls(&["spiffe://td/ns/shop/sa/pay"], &[], ""),
            Some(&r)
        ));
        assert!(!admits(cart, &tls_no_cert, Some(&r)));
        let dns = named(exact("cart.shop.svc"));
        assert!(admits(
            dns,
            &mtls(&[spiffe], &["cart.shop.svc"], ""),
            Some(&r)
        ));
        // RFC 2253 order, as Envoy prints a subject.
        let subject = named(json!({"kind": {"suffix": "cn=cart"}, "ignore_case": true}));
        assert!(admits(
            subject.clone(),
            &mtls(&[spiffe], &[], "O=shop,CN=cart"),
            Some(&r)
        ));
        assert!(!admits(
            subject,
            &mtls(&[spiffe], &[], "O=shop,CN=pay"),
            Some(&r)
        ));
        let ns = named(json!({"kind": {"regex": "spiffe://td/ns/shop/sa/.+"}}));
        assert!(admits(ns, &mtls(&[spiffe], &[], ""), Some(&r)));
    }

    #[test]
    fn remote_ip_principals_are_the_peer_address() {
        let c = conn(None);
        let r = request("GET", "/", &[]);
        for field in ["direct_remote_ip", "remote_ip"] {
            assert!(
                admits(json!({field: "10.0.0.0/8"}), &c, Some(&r)),
                "{field}"
            );
            assert!(
                !admits(json!({field: "10.1.2.4/32"}), &c, Some(&r)),
                "{field}"
            );
            assert!(
                !admits(json!({field: "192.168.0.10/32"}), &c, Some(&r)),
                "{field}: local"
            );
        }
    }

    #[test]
    fn principal_combinators_and_headers() {
        let c = mtls(&["spiffe://td/a"], &[], "");
        let r = request("GET", "/", &[("x-user", "alice")]);
        let ip = json!({"remote_ip": "10.1.0.0/16"});
        let user = header("x-user", json!({"exact": "alice"}));
        let bob = header("x-user", json!({"exact": "bob"}));
        assert!(admits(json!({"and_ids": [ip, user]}), &c, Some(&r)));
        assert!(!admits(json!({"and_ids": [ip, bob]}), &c, Some(&r)));
        assert!(admits(json!({"or_ids": [bob, user]}), &c, Some(&r)));
        assert!(!admits(
            json!({"or_ids": [bob, {"not_id": ip}]}),
            &c,
            Some(&r)
        ));
        assert!(admits(json!({"not_id": bob}), &c, Some(&r)));
    }

    #[test]
    fn a_policy_needs_a_permission_and_a_principal_to_match() {
        let c = conn(None);
        let r = request("GET", "/", &[]);
        let rbac = compile(json!({"rules": {"action": "allow", "policies": {"p": {
            "permissions": [{"destination_port": 1}, {"destination_port": 8443}],
            "principals": [{"remote_ip": "1.1.1.1/32"}, {"remote_ip": "10.1.2.3/32"}],
        }}}}));
        assert!(allows(&rbac, &c, Some(&r)), "any of each");
        let other_peer = ConnInfo::plain("10.9.9.9:1".parse().unwrap(), c.local);
        assert!(!allows(&rbac, &other_peer, Some(&r)), "permission alone");
        let other_port = ConnInfo::plain(c.peer, "192.168.0.10:80".parse().unwrap());
        assert!(!allows(&rbac, &other_port, Some(&r)), "principal alone");
    }

    /// Rules with `action` and one policy (of two) matching requests carrying `x-match`.
    fn marked(action: &str) -> Value {
        json!({"action": action, "policies": {
            "other": {"permissions": [{"destination_port": 1}], "principals": ["any"]},
            "marked": {"permissions": [header("x-match", json!({"present": true}))], "principals": ["any"]},
        }})
    }

    fn action(action: &str) -> Rbac {
        compile(json!({ "rules": marked(action) }))
    }

    #[test]
    fn allow_deny_and_log_actions() {
        let c = conn(None);
        let (marked, plain) = (
            request("GET", "/", &[("x-match", "")]),
            request("GET", "/", &[]),
        );
        let verdicts = |a: &str| {
            let rbac = action(a);
            (
                allows(&rbac, &c, Some(&marked)),
                allows(&rbac, &c, Some(&plain)),
            )
        };
        assert_eq!(verdicts("allow"), (true, false));
        assert_eq!(verdicts("deny"), (false, true));
        assert_eq!(verdicts("log"), (true, true));
        let empty = |a: &str| compile(json!({"rules": {"action": a}}));
        assert!(!allows(&empty("allow"), &c, Some(&plain)), "ALLOW nothing");
        assert!(allows(&empty("deny"), &c, Some(&plain)), "DENY nothing");
        assert!(allows(&compile(json!({})), &c, Some(&plain)), "no rules");
    }

    fn snapshot(r: &Registry) -> std::collections::BTreeMap<String, u64> {
        r.snapshot().into_iter().collect()
    }

    #[test]
    fn shadow_rules_are_counted_never_enforced() {
        let registry = Registry::default();
        let stats = RbacStats::http(&registry, "in", "");
        let c = conn(None);
        let shadow_deny_all = json!({"action": "allow"});
        let shadow_only = compile(json!({ "shadow_rules": shadow_deny_all }));
        let both = compile(json!({"rules": marked("deny"), "shadow_rules": shadow_deny_all}));
        let check = |rbac: &Rbac, r: &http::request::Parts| {
            rbac.check(&RbacInput::http(&c, &RouteInput::from_request(r)), &stats)
        };
        let plain = request("GET", "/", &[]);
        let marked = request("GET", "/", &[("x-match", "")]);

        assert!(
            check(&shadow_only, &plain),
            "a shadow denial lets it through"
        );
        assert!(check(&both, &plain));
        assert!(!check(&both, &marked));
        let s = snapshot(&registry);
        assert_eq!(s["http.in.rbac.shadow_denied"], 3);
        assert_eq!(s["http.in.rbac.shadow_allowed"], 0);
        assert_eq!(s["http.in.rbac.allowed"], 1);
        assert_eq!(s["http.in.rbac.denied"], 1);
    }

    #[test]
    fn rules_stat_prefix_moves_only_the_enforced_counters() {
        let registry = Registry::default();
        let rbac = compile(json!({
            "rules": {"action": "deny"},
            "shadow_rules": {"action": "allow"},
        }));
        let c = conn(None);
        let r = request("GET", "/", &[]);
        for (hcm, rules_stat_prefix) in [("a", "mine_"), ("b", "mine.")] {
            let stats = RbacStats::http(&registry, hcm, rules_stat_prefix);
            assert!(rbac.check(&RbacInput::http(&c, &RouteInput::from_request(&r)), &stats));
        }
        let s = snapshot(&registry);
        // Envoy 1.40's names for these two prefixes.
        assert_eq!(s["http.a.rbac.mine_.allowed"], 1);
        assert_eq!(s["http.b.rbac.mine.allowed"], 1);
        assert_eq!(s["http.a.rbac.shadow_denied"], 1);
        assert!(!s.contains_key("http.a.rbac.allowed"), "{s:?}");
        assert_eq!(s.len(), 8, "{s:?}");
    }

    #[test]
    fn network_rules_see_no_request() {
        let c = conn(None);
        assert!(!permits(
            json!({"url_path": {"kind": {"prefix": ""}}}),
            &c,
            None
        ));
        assert!(permits(json!({"destination_port": 8443}), &c, None));
    }

    #[test]
    fn cidr_ranges_mask_host_bits_and_keep_families_apart() {
        let c = Cidr::parse("10.1.2.3/8").unwrap();
        assert_eq!(c, Cidr::parse("10.0.0.0/8").unwrap());
        assert!(c.contains("10.255.0.1".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(
            c.contains("::ffff:10.9.9.9".parse().unwrap()),
            "v4-mapped is v4"
        );
        assert!(
            !c.contains("a00::1".parse().unwrap()),
            "same bits, other family"
        );
        let all4 = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all4.contains("255.255.255.255".parse().unwrap()));
        assert!(!all4.contains("::1".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        let host = Cidr::parse("::1/128").unwrap();
        assert!(host.contains("::1".parse().unwrap()));
        assert!(!host.contains("::2".parse().unwrap()));
        assert!(
            !host.contains("127.0.0.1".parse().unwrap()),
            "a v6 length on a v4 address"
        );
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "::/129",
            "x/8",
            "10.0.0.0/-1",
            "10.0.0.0/",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_configs_are_refused_with_their_place() {
        let err = |config: Value| {
            Rbac::compile(&serde_json::from_value(config).unwrap(), "route r").unwrap_err()
        };
        let policy = |permissions: Value, principals: Value| {
            json!({"shadow_rules": {"action": "deny", "policies": {
                "p1": {"permissions": permissions, "principals": principals},
            }}})
        };
        let e = err(policy(json!([]), json!(["any"])));
        assert!(
            e.starts_with("route r: rbac shadow_rules: policy \"p1\""),
            "{e}"
        );
        let e = err(policy(
            json!(["any"]),
            json!([{"remote_ip": "10.0.0.0/99"}]),
        ));
        assert!(e.contains("bad CIDR range \"10.0.0.0/99\""), "{e}");
        let e = err(policy(json!([{"destination_ip": "nope"}]), json!(["any"])));
        assert!(e.contains("bad CIDR range \"nope\""), "{e}");
        let e = err(policy(json!([{"and_rules": []}]), json!(["any"])));
        assert!(e.contains("and_rules must not be empty"), "{e}");
        let e = err(policy(json!(["any"]), json!([{"not_id": {"or_ids": []}}])));
        assert!(e.contains("or_ids must not be empty"), "{e}");
        let e = err(policy(
            json!([{"url_path": {"kind": {"regex": "(("}}}]),
            json!(["any"]),
        ));
        assert!(e.contains("bad regex"), "{e}");
    }
}
