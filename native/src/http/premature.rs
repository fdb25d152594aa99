//! Envoy's defence against HTTP/2 Rapid Reset (CVE-2023-44487): a connection whose
//! client cancels too many of its requests right after opening them is closed.
//!
//! h2 itself only bounds streams reset *before* hyper accepts them; a client that
//! paces HEADERS + RST_STREAM gets every stream accepted, so each one starts upstream
//! work and is cancelled again. Envoy's rule, with its runtime defaults
//! (`overload.premature_reset_total_stream_count` = 500,
//! `overload.premature_reset_min_stream_lifetime_seconds` = 1): a request cancelled
//! by the client within 1 s of starting is premature; the connection is closed once
//! premature resets reach half of 500, or, past 500 requests, half of all requests.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Requests a connection may close before its premature share is judged.
const TOTAL_STREAM_COUNT: u32 = 500;
/// Cancelled sooner than this after it started, a request counts as premature.
const MIN_STREAM_LIFETIME: Duration = Duration::from_secs(1);

/// One connection's tally; shared by its in-flight requests.
#[derive(Debug, Default)]
pub struct PrematureResets {
    closed: AtomicU32,
    premature: AtomicU32,
    tripped: Notify,
}

impl PrematureResets {
    /// Watch one request from now until it answers (or is dropped unanswered).
    pub fn watch(self: &Arc<Self>) -> RequestWatch {
        RequestWatch {
            tally: self.clone(),
            started: Instant::now(),
            answered: false,
        }
    }

    /// Completes once the connection has too many premature resets.
    pub async fn tripped(&self) {
        self.tripped.notified().await
    }

    fn record(&self, premature: bool) {
        let closed = self.closed.fetch_add(1, Ordering::Relaxed) + 1;
        let premature = if premature {
            self.premature.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.premature.load(Ordering::Relaxed)
        };
        // Envoy's `maybeDrainDueToPrematureResets`.
        let judged_over = closed.max(TOTAL_STREAM_COUNT);
        if premature.saturating_mul(2) >= judged_over {
            // `notify_one` keeps the permit if `tripped` is not awaited yet.
            self.tripped.notify_one();
        }
    }
}

/// Dropped with its request: counts it, premature unless it was answered.
#[derive(Debug)]
pub struct RequestWatch {
    tally: Arc<PrematureResets>,
    started: Instant,
    answered: bool,
}

impl RequestWatch {
    /// The service produced a response: not a premature reset, whatever follows.
    pub fn answered(mut self) {
        self.answered = true;
    }
}

impl Drop for RequestWatch {
    fn drop(&mut self) {
        let premature = !self.answered && self.started.elapsed() < MIN_STREAM_LIFETIME;
        self.tally.record(premature);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tally: &Arc<PrematureResets>, answered: u32, cancelled: u32) {
        for _ in 0..answered {
            tally.watch().answered();
        }
        for _ in 0..cancelled {
            drop(tally.watch());
        }
    }

    fn is_tripped(tally: &PrematureResets) -> bool {
        let f = tally.tripped();
        futures_util::pin_mut!(f);
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        f.poll(&mut cx).is_ready()
    }

    use std::future::Future;

    #[tokio::test(start_paused = true)]
    async fn half_of_the_first_500_cancelled_trips() {
        let tally = Arc::new(PrematureResets::default());
        run(&tally, 0, TOTAL_STREAM_COUNT / 2 - 1);
        assert!(!is_tripped(&tally));
        run(&tally, 0, 1);
        assert!(is_tripped(&tally));
    }

    #[tokio::test(start_paused = true)]
    async fn answered_requests_never_trip() {
        let tally = Arc::new(PrematureResets::default());
        run(&tally, 10 * TOTAL_STREAM_COUNT, 0);
        assert!(!is_tripped(&tally));
    }

    #[tokio::test(start_paused = true)]
    async fn past_500_the_share_of_cancelled_decides() {
        let tally = Arc::new(PrematureResets::default());
        run(&tally, 1000, 0);
        run(&tally, 0, 999);
        assert!(!is_tripped(&tally));
        run(&tally, 0, 1);
        assert!(is_tripped(&tally));
    }

    #[tokio::test(start_paused = true)]
    async fn cancelled_after_a_second_is_not_premature() {
        let tally = Arc::new(PrematureResets::default());
        let slow: Vec<_> = (0..TOTAL_STREAM_COUNT).map(|_| tally.watch()).collect();
        tokio::time::advance(MIN_STREAM_LIFETIME).await;
        drop(slow);
        assert!(!is_tripped(&tally));
    }
}
