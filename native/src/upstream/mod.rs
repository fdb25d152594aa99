//! Upstream side: clusters, their endpoints, load balancing and connection pools.

pub mod dns;
pub mod lb;
pub mod pool;

pub use pool::{ClusterRt, UpstreamError};
