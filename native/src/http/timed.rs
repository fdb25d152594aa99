//! A response body under a stream idle timeout and/or a max stream duration.
//! When one fires the body ends with an error: hyper then resets the h2
//! stream, or closes the HTTP/1.1 connection mid-body, as Envoy does.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::http::{BoxError, ProxyBody};
use crate::stats::{http as hs, StatGroup};

#[derive(Debug, thiserror::Error)]
pub enum StreamTimeout {
    #[error("stream idle timeout")]
    Idle,
    #[error("max stream duration reached")]
    MaxDuration,
}

#[derive(Debug)]
pub struct TimedBody {
    inner: ProxyBody,
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
    deadline: Option<Pin<Box<Sleep>>>,
    stats: Arc<StatGroup>,
}

impl TimedBody {
    /// `deadline` is when the whole stream must be over.
    pub fn new(
        inner: ProxyBody,
        idle: Option<Duration>,
        deadline: Option<Instant>,
        stats: Arc<StatGroup>,
    ) -> Self {
        TimedBody {
            inner,
            idle: idle.map(|d| (d, Box::pin(tokio::time::sleep(d)))),
            deadline: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
            stats,
        }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if let Some((d, sleep)) = &mut this.idle {
                sleep.as_mut().reset(Instant::now() + *d);
            }
            return Poll::Ready(frame);
        }
        if let Some(d) = &mut this.deadline {
            if d.as_mut().poll(cx).is_ready() {
                this.stats.inc(hs::RQ_MAX_DURATION);
                return Poll::Ready(Some(Err(StreamTimeout::MaxDuration.into())));
            }
        }
        if let Some((_, sleep)) = &mut this.idle {
            if sleep.as_mut().poll(cx).is_ready() {
                this.stats.inc(hs::RQ_IDLE_TIMEOUT);
                return Poll::Ready(Some(Err(StreamTimeout::Idle.into())));
            }
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
