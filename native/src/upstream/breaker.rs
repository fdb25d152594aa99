//! Circuit breakers: cluster-wide limits on connections, pending requests,
//! requests and retries (Envoy's DEFAULT-priority thresholds), plus the retry
//! budget. Counters are atomics shared by every worker; a permit releases its
//! slot when dropped. Overflowing a limit is the caller's 503.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::{CircuitBreakers, RetryBudget};
use crate::stats::{cluster as cs, StatGroup};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Connections,
    Pending,
    Requests,
    Retries,
}

impl Limit {
    fn slots(self) -> (usize, usize) {
        match self {
            Limit::Connections => (cs::CX_ACTIVE, cs::CB_CX_OPEN),
            Limit::Pending => (cs::RQ_PENDING_ACTIVE, cs::CB_RQ_PENDING_OPEN),
            Limit::Requests => (cs::RQ_ACTIVE, cs::CB_RQ_OPEN),
            Limit::Retries => (RETRIES_ACTIVE, cs::CB_RQ_RETRY_OPEN),
        }
    }
}

/// Active retries are not an Envoy stat; they get a slot outside the group.
const RETRIES_ACTIVE: usize = usize::MAX;

#[derive(Debug)]
pub struct Breakers {
    limits: CircuitBreakers,
    stats: Arc<StatGroup>,
    retries: Arc<AtomicU64>,
    /// Woken when a connection closes or goes idle: pending requests try again.
    pub freed: Arc<Notify>,
}

/// One occupied slot of a limit, released on drop. `'static` so a connection's
/// task can hold its permit.
#[derive(Debug)]
pub struct Permit {
    stats: Arc<StatGroup>,
    retries: Option<Arc<AtomicU64>>,
    /// Set for connection permits: their release may unblock a pending request.
    freed: Option<Arc<Notify>>,
    limit: Limit,
    max: u64,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let (active, open) = self.limit.slots();
        let now = match &self.retries {
            Some(r) => r.fetch_sub(1, Ordering::Relaxed) - 1,
            None => {
                self.stats.dec(active);
                self.stats.get(active)
            }
        };
        if now < self.max {
            self.stats.set(open, 0);
        }
        if let Some(f) = self.pending_waker() {
            f.notify_waiters();
        }
    }
}

impl Permit {
    /// For a connection permit, while requests are pending on the connection
    /// limit: the signal that wakes them. `None` in the common case, which
    /// then touches no lock.
    pub fn pending_waker(&self) -> Option<&Arc<Notify>> {
        self.freed
            .as_ref()
            .filter(|_| self.stats.get(cs::RQ_PENDING_ACTIVE) > 0)
    }
}

impl Breakers {
    pub fn new(limits: &CircuitBreakers, stats: Arc<StatGroup>) -> Self {
        Breakers {
            limits: limits.clone(),
            stats,
            retries: Arc::new(AtomicU64::new(0)),
            freed: Arc::new(Notify::new()),
        }
    }

    fn max(&self, limit: Limit) -> u64 {
        u64::from(match limit {
            Limit::Connections => self.limits.max_connections,
            Limit::Pending => self.limits.max_pending_requests,
            Limit::Requests => self.limits.max_requests,
            Limit::Retries => match &self.limits.retry_budget {
                None => self.limits.max_retries,
                Some(b) => return self.budget(b),
            },
        })
    }

    /// Envoy's retry budget: a share of the requests active (and pending) now,
    /// never below the minimum concurrency.
    fn budget(&self, b: &RetryBudget) -> u64 {
        let active = self.stats.get(cs::RQ_ACTIVE) + self.stats.get(cs::RQ_PENDING_ACTIVE);
        let share = (active as f64 * b.budget_percent / 100.0) as u64;
        share.max(u64::from(b.min_retry_concurrency))
    }

    /// Take a slot of `limit`, or `None` (and the overflow counted) when full.
    pub fn try_acquire(&self, limit: Limit) -> Option<Permit> {
        let max = self.max(limit);
        let (active, open) = limit.slots();
        let before = match limit {
            Limit::Retries => self.retries.fetch_add(1, Ordering::Relaxed),
            _ => {
                self.stats.inc(active);
                self.stats.get(active) - 1
            }
        };
        if before >= max {
            match limit {
                Limit::Retries => {
                    self.retries.fetch_sub(1, Ordering::Relaxed);
                }
                _ => self.stats.dec(active),
            }
            self.stats.set(open, 1);
            self.stats.inc(match limit {
                Limit::Connections => cs::CX_OVERFLOW,
                Limit::Pending => cs::RQ_PENDING_OVERFLOW,
                // Envoy 1.40 counts max_requests overflows apart from pending ones.
                Limit::Requests => cs::RQ_ACTIVE_OVERFLOW,
                Limit::Retries => cs::RQ_RETRY_OVERFLOW,
            });
            return None;
        }
        if before + 1 >= max {
            self.stats.set(open, 1);
        }
        Some(Permit {
            stats: self.stats.clone(),
            retries: (limit == Limit::Retries).then(|| self.retries.clone()),
            freed: (limit == Limit::Connections).then(|| self.freed.clone()),
            limit,
            max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Registry;

    fn breakers(json: &str) -> (Breakers, Arc<StatGroup>) {
        let limits: CircuitBreakers = serde_json::from_str(json).unwrap();
        let stats = Registry::default().group("cluster.c", cs::NAMES);
        (Breakers::new(&limits, stats.clone()), stats)
    }

    #[test]
    fn requests_overflow_at_the_limit_and_free_on_drop() {
        let (b, stats) = breakers(r#"{"max_requests": 2}"#);
        let p1 = b.try_acquire(Limit::Requests).unwrap();
        let p2 = b.try_acquire(Limit::Requests).unwrap();
        assert_eq!(stats.get(cs::CB_RQ_OPEN), 1);
        assert!(b.try_acquire(Limit::Requests).is_none());
        assert_eq!(stats.get(cs::RQ_ACTIVE_OVERFLOW), 1);
        drop(p1);
        assert_eq!(stats.get(cs::CB_RQ_OPEN), 0);
        let _p3 = b.try_acquire(Limit::Requests).unwrap();
        drop(p2);
        assert_eq!(stats.get(cs::RQ_ACTIVE), 1);
    }

    #[test]
    fn retry_budget_scales_with_active_requests() {
        let (b, _stats) =
            breakers(r#"{"retry_budget": {"budget_percent": 50, "min_retry_concurrency": 1}}"#);
        let _r1 = b.try_acquire(Limit::Retries).unwrap();
        assert!(b.try_acquire(Limit::Retries).is_none(), "min concurrency 1");
        let _rq: Vec<_> = (0..4)
            .map(|_| b.try_acquire(Limit::Requests).unwrap())
            .collect();
        // 50 % of 4 active requests: two retries at once.
        let _r2 = b.try_acquire(Limit::Retries).unwrap();
        assert!(b.try_acquire(Limit::Retries).is_none());
    }
}
