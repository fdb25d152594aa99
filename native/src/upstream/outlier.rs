//! Outlier detection (passive health): hosts that fail in a row, or whose
//! success rate falls far below their peers', are ejected from load balancing
//! for a growing time. SKELETON: the interface the data path calls; the
//! detection itself is being built.

use std::sync::Arc;

use crate::config::OutlierDetection;
use crate::stats::StatGroup;
use crate::upstream::lb::EndpointRt;

/// How one request to a host ended, as outlier detection sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The host answered with this status.
    Status(u16),
    /// TCP connect failed or timed out.
    ConnectFailure,
    /// The connection broke before a response.
    Reset,
    /// No response within the (per-try) timeout.
    Timeout,
}

/// Per-endpoint outlier state, kept on `EndpointRt`.
#[derive(Debug, Default)]
pub struct EndpointOutlier {}

#[derive(Debug)]
pub struct OutlierDetector {
    #[allow(dead_code)]
    cfg: OutlierDetection,
    #[allow(dead_code)]
    stats: Arc<StatGroup>,
}

impl OutlierDetector {
    pub fn new(cfg: &OutlierDetection, stats: Arc<StatGroup>) -> Self {
        OutlierDetector {
            cfg: cfg.clone(),
            stats,
        }
    }

    /// Record one outcome; true when a host's ejection state changed.
    pub fn report(&self, _ep: &EndpointRt, _outcome: Outcome) -> bool {
        false
    }
}
