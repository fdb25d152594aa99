//! Endpoint discovery: static IP literals, and `strict_dns` (every address) /
//! `logical_dns` (first address) hostnames re-resolved every `dns_refresh_ms`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::config::{Cluster, DiscoveryType};
use crate::upstream::cluster::ClusterRt;
use crate::upstream::lb::EndpointAddr;

/// Endpoint addresses of a static cluster, or an error naming the bad one.
pub fn static_endpoints(c: &Cluster) -> Result<Vec<EndpointAddr>, String> {
    c.endpoints
        .iter()
        .map(|e| {
            let ip: std::net::IpAddr = e.host.parse().map_err(|_| {
                format!(
                    "cluster {}: endpoint host {:?} is not an IP address (static)",
                    c.name, e.host
                )
            })?;
            Ok(EndpointAddr {
                addr: SocketAddr::new(ip, e.port),
                weight: e.weight,
                priority: e.priority,
            })
        })
        .collect()
}

/// Resolve a DNS cluster now, blocking (used once at apply). Failures give no endpoints.
pub fn resolve_blocking(c: &Cluster) -> Vec<EndpointAddr> {
    let mut out = Vec::new();
    for e in &c.endpoints {
        if let Ok(addrs) = (e.host.as_str(), e.port).to_socket_addrs() {
            push(&mut out, c.discovery, addrs, e);
        }
    }
    out
}

async fn resolve(c: &Cluster) -> Option<Vec<EndpointAddr>> {
    let mut out = Vec::new();
    for e in &c.endpoints {
        match tokio::net::lookup_host((e.host.as_str(), e.port)).await {
            Ok(addrs) => push(&mut out, c.discovery, addrs, e),
            // Keep the last good answer on a resolver failure, as Envoy does.
            Err(_) => return None,
        }
    }
    Some(out)
}

fn push(
    out: &mut Vec<EndpointAddr>,
    d: DiscoveryType,
    addrs: impl Iterator<Item = SocketAddr>,
    e: &crate::config::Endpoint,
) {
    let mut seen = Vec::new();
    for a in addrs {
        if !seen.contains(&a) {
            seen.push(a);
        }
    }
    if d == DiscoveryType::LogicalDns {
        seen.truncate(1);
    }
    out.extend(seen.into_iter().map(|addr| EndpointAddr {
        addr,
        weight: e.weight,
        priority: e.priority,
    }));
}

/// Re-resolve `cluster` periodically until the engine drops it.
pub fn spawn_refresh(rt: &tokio::runtime::Handle, cluster: &Arc<ClusterRt>) {
    let weak: Weak<ClusterRt> = Arc::downgrade(cluster);
    let period = Duration::from_millis(cluster.config.dns_refresh_ms.max(100));
    rt.spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            let Some(c) = weak.upgrade() else { return };
            if let Some(addrs) = resolve(&c.config).await {
                c.set_endpoints(addrs);
            }
        }
    });
}
