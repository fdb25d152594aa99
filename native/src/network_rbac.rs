//! Envoy's `envoy.filters.network.rbac`: a filter chain's network RBAC filters,
//! judged in order once per connection before its terminal filter (the
//! listener closes a denied connection). Each filter counts under its own
//! `<stat_prefix>.rbac.*` (the shadow counters under its `shadow_rules_stat_prefix`);
//! filters sharing a prefix share the counters, as in Envoy.

use crate::config::{Permission, Principal, RbacConfig};
use crate::conn::ConnInfo;
use crate::rbac::{Rbac, RbacInput, RbacStats};
use crate::stats::Registry;

/// One network RBAC filter: one verdict per connection.
#[derive(Debug)]
struct NetworkRbac {
    rbac: Rbac,
    stats: RbacStats,
}

impl NetworkRbac {
    /// Stats land under `<c.stat_prefix>.rbac.*`; `what` names the owner in errors.
    /// Header rules are refused, as Envoy refuses them: a connection has no headers.
    fn compile(c: &RbacConfig, stats: &Registry, what: &str) -> Result<Self, String> {
        for (which, rules) in [("rules", &c.rules), ("shadow_rules", &c.shadow_rules)] {
            let policies = rules.iter().flat_map(|r| &r.policies);
            for (name, p) in policies {
                if p.permissions.iter().any(permission_reads_headers)
                    || p.principals.iter().any(principal_reads_headers)
                {
                    return Err(format!(
                        "{what}: rbac {which}: policy {name:?}: header rules are not \
                         supported by the network RBAC filter"
                    ));
                }
            }
        }
        Ok(NetworkRbac {
            rbac: Rbac::compile(c, what)?,
            stats: RbacStats::network(stats, &c.stat_prefix, &c.shadow_rules_stat_prefix),
        })
    }

    /// Whether `conn` may proceed; counts `allowed`/`denied` (and the shadow pair).
    fn allows(&self, conn: &ConnInfo) -> bool {
        self.rbac.check(&RbacInput::network(conn), &self.stats)
    }
}

/// A filter chain's network RBAC filters, in their order in `filters`.
#[derive(Debug, Default)]
pub struct NetworkRbacs(Vec<NetworkRbac>);

impl NetworkRbacs {
    /// `what` names the owner in errors; the `[i]` of a filter is added to it.
    pub fn compile(configs: &[RbacConfig], stats: &Registry, what: &str) -> Result<Self, String> {
        configs
            .iter()
            .enumerate()
            .map(|(i, c)| NetworkRbac::compile(c, stats, &format!("{what}: network_rbac[{i}]")))
            .collect::<Result<_, _>>()
            .map(NetworkRbacs)
    }

    /// Whether every filter lets `conn` through. As Envoy's filter chain, the
    /// first denial stops it: the filters after it neither judge nor count.
    pub fn allow(&self, conn: &ConnInfo) -> bool {
        self.0.iter().all(|f| f.allows(conn))
    }
}

fn permission_reads_headers(p: &Permission) -> bool {
    match p {
        Permission::Header(_) => true,
        Permission::AndRules(ps) | Permission::OrRules(ps) => {
            ps.iter().any(permission_reads_headers)
        }
        Permission::NotRule(p) => permission_reads_headers(p),
        _ => false,
    }
}

fn principal_reads_headers(p: &Principal) -> bool {
    match p {
        Principal::Header(_) => true,
        Principal::AndIds(ps) | Principal::OrIds(ps) => ps.iter().any(principal_reads_headers),
        Principal::NotId(p) => principal_reads_headers(p),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::collections::BTreeMap;

    /// Peer 10.1.2.3:5555, local 192.168.0.10:8443.
    fn conn() -> ConnInfo {
        ConnInfo::plain(
            "10.1.2.3:5555".parse().unwrap(),
            "192.168.0.10:8443".parse().unwrap(),
        )
    }

    fn outsider() -> ConnInfo {
        ConnInfo::plain("172.16.0.1:1".parse().unwrap(), conn().local)
    }

    fn config(c: Value) -> RbacConfig {
        serde_json::from_value(c).unwrap()
    }

    fn snapshot(r: &Registry) -> BTreeMap<String, u64> {
        r.snapshot().into_iter().collect()
    }

    fn header(name: &str, m: Value) -> Value {
        json!({"header": {"name": name, "match": m}})
    }

    /// Rules with `action` over one policy: peers in 10.0.0.0/8.
    fn inside(action: &str) -> Value {
        json!({"action": action, "policies": {
            "inside": {"permissions": ["any"], "principals": [{"direct_remote_ip": "10.0.0.0/8"}]},
        }})
    }

    #[test]
    fn header_rules_are_refused_wherever_they_hide() {
        let refused = |permission: Value, principal: Value| {
            let c = config(json!({"shadow_rules": {"action": "deny", "policies": {
                "ok": {"permissions": ["any"], "principals": ["any"]},
                "hdr": {"permissions": [permission], "principals": [principal]},
            }}}));
            NetworkRbac::compile(&c, &Registry::default(), "listener l").err()
        };
        let h = header("x-a", json!({"present": false}));
        let e = refused(json!({"or_rules": [{"not_rule": h}]}), json!("any")).unwrap();
        assert_eq!(
            e,
            "listener l: rbac shadow_rules: policy \"hdr\": header rules are not \
             supported by the network RBAC filter"
        );
        assert!(refused(json!("any"), json!({"and_ids": ["any", h]})).is_some());
        let path = json!({"url_path": {"kind": {"exact": "/"}}});
        assert!(refused(json!({ "not_rule": path }), json!("any")).is_none());
    }

    #[test]
    fn a_filter_counts_under_its_stat_prefix() {
        let registry = Registry::default();
        let cfg = |prefix: &str| config(json!({"stat_prefix": prefix, "rules": inside("allow")}));
        let net = NetworkRbac::compile(&cfg("tcp_in"), &registry, "listener l").unwrap();
        assert!(net.allows(&conn()));
        assert!(!net.allows(&outsider()));
        assert!(!net.allows(&outsider()));
        let dotted = NetworkRbac::compile(&cfg("dotted."), &registry, "listener l").unwrap();
        assert!(dotted.allows(&conn()));
        let s = snapshot(&registry);
        assert_eq!(s["tcp_in.rbac.allowed"], 1);
        assert_eq!(s["tcp_in.rbac.denied"], 2);
        assert_eq!(s["dotted.rbac.allowed"], 1);
    }

    /// Istio's pair (a DENY filter, then an ALLOW one, both under `tcp.`) and a
    /// shadow-only filter: Envoy 1.40 counts these values for these connections.
    #[test]
    fn filters_judge_in_order_and_the_first_denial_stops_the_rest() {
        let registry = Registry::default();
        let filters = NetworkRbacs::compile(
            &[
                config(
                    json!({"stat_prefix": "tcp.", "rules": {"action": "deny", "policies": {
                        "port": {"permissions": [{"destination_port": 1}], "principals": ["any"]},
                    }}}),
                ),
                config(json!({"stat_prefix": "tcp.", "rules": inside("allow")})),
                config(json!({"stat_prefix": "dry", "shadow_rules": inside("deny")})),
            ],
            &registry,
            "listener l",
        )
        .unwrap();
        assert!(filters.allow(&conn()));
        assert!(!filters.allow(&outsider()));
        let on_port_1 = ConnInfo::plain(conn().peer, "192.168.0.10:1".parse().unwrap());
        assert!(!filters.allow(&on_port_1));
        let s = snapshot(&registry);
        let got: Vec<_> = s.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            got,
            [
                ("dry.rbac.allowed", 0),
                ("dry.rbac.denied", 0),
                ("dry.rbac.shadow_allowed", 0),
                ("dry.rbac.shadow_denied", 1),
                // conn: allowed by both; outsider: by the DENY filter only; port 1:
                // denied by the first, never seen by the second.
                ("tcp.rbac.allowed", 3),
                ("tcp.rbac.denied", 2),
                ("tcp.rbac.shadow_allowed", 0),
                ("tcp.rbac.shadow_denied", 0),
            ]
        );
    }

    /// Istio's dry-run filter (shadow rules only, `shadow_rules_stat_prefix`) after its
    /// ALLOW filter, both under `tcp.`: Envoy 1.40's names and values.
    #[test]
    fn a_shadow_stat_prefix_moves_only_the_shadow_counters() {
        let registry = Registry::default();
        let filters = NetworkRbacs::compile(
            &[
                config(json!({"stat_prefix": "tcp.", "rules": inside("allow")})),
                config(json!({
                    "stat_prefix": "tcp.",
                    "shadow_rules_stat_prefix": "istio_dry_run_allow_",
                    "shadow_rules": inside("deny"),
                })),
            ],
            &registry,
            "listener l",
        )
        .unwrap();
        assert!(filters.allow(&conn()));
        assert!(!filters.allow(&outsider()));
        let s = snapshot(&registry);
        let got: Vec<_> = s.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            got,
            [
                ("tcp.rbac.allowed", 1),
                ("tcp.rbac.denied", 1),
                ("tcp.rbac.istio_dry_run_allow_.shadow_allowed", 0),
                ("tcp.rbac.istio_dry_run_allow_.shadow_denied", 1),
                ("tcp.rbac.shadow_allowed", 0),
                ("tcp.rbac.shadow_denied", 0),
            ]
        );
    }

    #[test]
    fn an_error_names_the_filter() {
        let header_rule = json!({"action": "deny", "policies": {
            "h": {"permissions": [header("x", json!({"present": true}))], "principals": ["any"]},
        }});
        let ok = config(json!({"stat_prefix": "a"}));
        let bad = config(json!({"stat_prefix": "b", "rules": header_rule}));
        let e = NetworkRbacs::compile(&[ok, bad], &Registry::default(), "listener l").unwrap_err();
        assert!(
            e.starts_with("listener l: network_rbac[1]: rbac rules"),
            "{e}"
        );
        assert!(NetworkRbacs::default().allow(&conn()), "no filter");
    }
}
