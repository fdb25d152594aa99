//! Upstream side: clusters, their endpoints, load balancing, connection pools,
//! circuit breakers and host health.

pub mod breaker;
pub mod cluster;
pub mod dns;
pub mod health_check;
pub mod lb;
pub mod outlier;
pub mod pool;

pub use cluster::ClusterRt;
pub use pool::UpstreamError;
