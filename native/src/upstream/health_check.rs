//! Active health checks (HTTP and TCP). SKELETON: being built.

use std::sync::Arc;

use crate::upstream::cluster::ClusterRt;

/// Start checking `cluster`'s hosts until the engine drops the cluster.
pub fn spawn(_rt: &tokio::runtime::Handle, _cluster: &Arc<ClusterRt>) {}
