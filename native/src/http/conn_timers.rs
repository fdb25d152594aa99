//! Connection-level timers of a downstream HTTP connection that hyper does not
//! keep (or keeps without telling us): the HTTP/2 keepalive timeout, the idle
//! timeout (no active stream) and `max_connection_duration`. One task-local
//! loop sleeps until the earliest deadline; the connection's reads and streams
//! only store timestamps, so no timer is reset per request or per read.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// hyper's own PING timeout, made moot: `ConnTimers` closes a silent connection
/// itself, so that it is counted, and closed even when the peer does not read.
pub const HYPER_PING_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Why a connection's timers ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Nothing arrived for a keepalive interval plus its timeout: our PING went
    /// unanswered. Envoy closes such a connection without flushing.
    KeepaliveTimeout,
    /// No active stream for the idle timeout: drain.
    Idle,
    /// `max_connection_duration` reached: drain.
    MaxDuration,
}

/// What one connection's reads and streams last did, as ms since it opened.
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    last_read_ms: AtomicU64,
    active_streams: AtomicUsize,
    idle_since_ms: AtomicU64,
    /// Set by `abort`: the socket fails every further read and write.
    aborted: AtomicBool,
    reader: AtomicWaker,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            opened: Instant::now(),
            last_read_ms: AtomicU64::new(0),
            active_streams: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            aborted: AtomicBool::new(false),
            reader: AtomicWaker::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.opened + Duration::from_millis(ms)
    }

    /// Fail the connection's socket now, for a codec we cannot simply drop (hyper's
    /// HTTP/2 client runs the connection in a task of its own): its streams error out.
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
        self.reader.wake();
    }

    fn check(&self) -> io::Result<()> {
        if self.aborted.load(Ordering::Acquire) {
            return Err(io::ErrorKind::ConnectionAborted.into());
        }
        Ok(())
    }

    /// A stream (a request) began; the connection is no longer idle.
    pub fn stream_opened(&self) -> StreamGuard<'_> {
        self.active_streams.fetch_add(1, Ordering::AcqRel);
        StreamGuard(self)
    }
}

/// Ends one stream's activity when dropped.
pub struct StreamGuard<'a>(&'a Activity);

impl Drop for StreamGuard<'_> {
    fn drop(&mut self) {
        // Stamped on every close, before the count drops: whoever sees the count
        // reach zero also sees a stamp at least as recent as the last close.
        self.0
            .idle_since_ms
            .store(self.0.now_ms(), Ordering::Relaxed);
        self.0.active_streams.fetch_sub(1, Ordering::Release);
    }
}

/// The timers one listener arms on each connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnTimers {
    /// The keepalive interval plus its timeout: silence this long is fatal.
    pub keepalive: Option<Duration>,
    pub idle: Option<Duration>,
    pub max_duration: Option<Duration>,
}

impl ConnTimers {
    /// Resolves once one of the timers expires (never, if none is armed).
    pub async fn expired(&self, act: &Activity) -> Expiry {
        loop {
            let now = act.now_ms();
            let mut next = u64::MAX;
            let mut check = |deadline: u64, why: Expiry| -> Option<Expiry> {
                if now >= deadline {
                    return Some(why);
                }
                next = next.min(deadline);
                None
            };
            if let Some(d) = self.max_duration {
                if let Some(why) = check(ms(d), Expiry::MaxDuration) {
                    return why;
                }
            }
            if let Some(d) = self.keepalive {
                let last = act.last_read_ms.load(Ordering::Relaxed);
                if let Some(why) = check(last.saturating_add(ms(d)), Expiry::KeepaliveTimeout) {
                    return why;
                }
            }
            if let Some(d) = self.idle {
                // Busy: look again one idle period from now (the stamp will be newer).
                let since = if act.active_streams.load(Ordering::Acquire) > 0 {
                    now
                } else {
                    act.idle_since_ms.load(Ordering::Relaxed)
                };
                if let Some(why) = check(since.saturating_add(ms(d)), Expiry::Idle) {
                    return why;
                }
            }
            if next == u64::MAX {
                return std::future::pending().await;
            }
            tokio::time::sleep_until(act.at(next)).await;
        }
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

/// A connection's socket that stamps `Activity` with the time of each read that
/// brought bytes (any frame counts as a sign of life, as in Envoy).
#[derive(Debug)]
pub struct ReadStamped<S> {
    io: S,
    act: Arc<Activity>,
}

impl<S> ReadStamped<S> {
    pub fn new(io: S, act: Arc<Activity>) -> Self {
        ReadStamped { io, act }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadStamped<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        me.act.reader.register(cx.waker());
        me.act.check()?;
        let before = buf.filled().len();
        let r = Pin::new(&mut me.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            me.act
                .last_read_ms
                .store(me.act.now_ms(), Ordering::Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadStamped<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        self.act.check()?;
        Pin::new(&mut self.get_mut().io).poll_write(cx, b)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.act.check()?;
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
