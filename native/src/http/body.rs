//! Request bodies on their way upstream.
//!
//! Most requests stream their body straight through (`UpstreamBody::Direct`).
//! A route that may retry or mirror needs to send the same body more than once,
//! so its body becomes a `Replay`: every reader shares one recording of the
//! downstream body. Only the primary reader (the current attempt) pulls new
//! frames from downstream and records them; a retry replays what the failed
//! attempt already sent and then carries on, and a mirror follows the primary
//! without ever making it wait. Past `limit` bytes recording stops: the body is
//! no longer replayable (no further retries), and a secondary reader that still
//! needs data fails, never the primary. Shape after
//! linkerd2-proxy's `ReplayBody`, simplified for single-threaded workers.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Envoy buffers at most this much of a request for retries and shadows
/// (its default connection buffer limit).
pub const REPLAY_LIMIT: usize = 1 << 20;

/// A request body as sent to an upstream.
#[derive(Debug)]
pub enum UpstreamBody {
    /// Streamed through once; cannot be re-sent once polled.
    Direct(Incoming),
    /// Empty: trivially re-sendable.
    Empty,
    Replay(ReplayBody),
}

/// Mints more copies of a request body: retries and shadows.
#[derive(Debug)]
pub enum Replayer {
    Empty,
    Recorded(ReplayBody),
}

impl Replayer {
    /// The body for a retry (it becomes the primary reader), unless recording stopped.
    pub fn retry(&self) -> Option<UpstreamBody> {
        match self {
            Replayer::Empty => Some(UpstreamBody::Empty),
            Replayer::Recorded(r) => r.reader(true).map(UpstreamBody::Replay),
        }
    }

    /// A copy for a mirror, which follows the primary and never disturbs it.
    pub fn shadow(&self) -> Option<UpstreamBody> {
        match self {
            Replayer::Empty => Some(UpstreamBody::Empty),
            Replayer::Recorded(r) => r.reader(false).map(UpstreamBody::Replay),
        }
    }
}

/// The body for the first attempt, and a replayer when `replayable` is asked
/// for (an empty body is always replayable: it costs nothing).
pub fn split(body: Incoming, replayable: bool) -> (UpstreamBody, Option<Replayer>) {
    if body.is_end_stream() {
        (UpstreamBody::Empty, Some(Replayer::Empty))
    } else if replayable {
        let first = ReplayBody::new(body, REPLAY_LIMIT);
        let handle = first.handle();
        (
            UpstreamBody::Replay(first),
            Some(Replayer::Recorded(handle)),
        )
    } else {
        (UpstreamBody::Direct(body), None)
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpstreamBody::Direct(b) => Pin::new(b).poll_frame(cx).map_err(|e| e.into()),
            UpstreamBody::Empty => Poll::Ready(None),
            UpstreamBody::Replay(r) => Pin::new(r).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Direct(b) => b.is_end_stream(),
            UpstreamBody::Empty => true,
            UpstreamBody::Replay(r) => r.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Direct(b) => b.size_hint(),
            UpstreamBody::Empty => SizeHint::with_exact(0),
            UpstreamBody::Replay(r) => r.hint,
        }
    }
}

/// The shared recording.
#[derive(Debug)]
struct Recording {
    source: Option<Incoming>,
    chunks: Vec<Bytes>,
    recorded: usize,
    limit: usize,
    /// Recording stopped at `limit`: `chunks` is a prefix of the body.
    overflowed: bool,
    trailers: Option<HeaderMap>,
    /// The downstream body ended (cleanly, or with `failed`).
    done: bool,
    failed: bool,
    /// The reader allowed to pull from the source once recording stopped.
    primary: u64,
    next_id: u64,
    /// Readers waiting on the source; all are woken when it makes progress.
    waiters: Arc<Waiters>,
}

#[derive(Debug, Default)]
struct Waiters(Mutex<Vec<Waker>>);

impl Waiters {
    fn register(&self, w: &Waker) {
        let mut ws = self.0.lock().unwrap();
        if !ws.iter().any(|x| x.will_wake(w)) {
            ws.push(w.clone());
        }
    }
}

impl Wake for Waiters {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        for w in self.0.lock().unwrap().drain(..) {
            w.wake();
        }
    }
}

/// One reader of a recorded body.
#[derive(Debug)]
pub struct ReplayBody {
    shared: Arc<Mutex<Recording>>,
    id: u64,
    /// Next chunk of the recording this reader yields.
    cursor: usize,
    trailers_sent: bool,
    hint: SizeHint,
}

/// A reader that fell behind after recording stopped.
#[derive(Debug, thiserror::Error)]
#[error("request body no longer replayable (over {0} bytes)")]
pub struct ReplayOverflow(usize);

impl ReplayBody {
    pub fn new(source: Incoming, limit: usize) -> Self {
        let hint = source.size_hint();
        ReplayBody {
            shared: Arc::new(Mutex::new(Recording {
                source: Some(source),
                chunks: Vec::new(),
                recorded: 0,
                limit,
                overflowed: false,
                trailers: None,
                done: false,
                failed: false,
                primary: 0,
                next_id: 1,
                waiters: Arc::default(),
            })),
            id: 0,
            cursor: 0,
            trailers_sent: false,
            hint,
        }
    }

    /// A non-reading handle on the recording, for minting readers later.
    fn handle(&self) -> ReplayBody {
        ReplayBody {
            shared: self.shared.clone(),
            id: u64::MAX,
            cursor: 0,
            trailers_sent: false,
            hint: self.hint,
        }
    }

    fn reader(&self, primary: bool) -> Option<ReplayBody> {
        let mut rec = self.shared.lock().unwrap();
        if rec.overflowed || rec.failed {
            return None;
        }
        let id = rec.next_id;
        rec.next_id += 1;
        if primary {
            rec.primary = id;
        }
        Some(ReplayBody {
            shared: self.shared.clone(),
            id,
            cursor: 0,
            trailers_sent: false,
            hint: self.hint,
        })
    }

    fn is_end_stream(&self) -> bool {
        let rec = self.shared.lock().unwrap();
        rec.done && !rec.failed && self.cursor >= rec.chunks.len() && {
            rec.trailers.is_none() || self.trailers_sent
        }
    }
}

impl Body for ReplayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let mut guard = this.shared.lock().unwrap();
        let rec: &mut Recording = &mut guard;
        if this.cursor < rec.chunks.len() {
            let chunk = rec.chunks[this.cursor].clone();
            this.cursor += 1;
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if rec.done {
            if rec.failed {
                return Poll::Ready(Some(Err("downstream request body failed".into())));
            }
            if !this.trailers_sent {
                if let Some(t) = &rec.trailers {
                    this.trailers_sent = true;
                    return Poll::Ready(Some(Ok(Frame::trailers(t.clone()))));
                }
            }
            return Poll::Ready(None);
        }
        if this.id != rec.primary {
            // Only the primary pulls from downstream: a shadow or a superseded
            // attempt waits for it, so it can never slow or break the primary.
            if rec.overflowed {
                return Poll::Ready(Some(Err(ReplayOverflow(rec.limit).into())));
            }
            rec.waiters.register(cx.waker());
            return Poll::Pending;
        }
        let Some(source) = rec.source.as_mut() else {
            return Poll::Ready(None);
        };
        // Readers waiting on the recording hear of progress through this waker too.
        rec.waiters.register(cx.waker());
        let waker = Waker::from(rec.waiters.clone());
        let polled = Pin::new(source).poll_frame(&mut Context::from_waker(&waker));
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                rec.done = true;
                rec.source = None;
                rec.waiters.wake_by_ref();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                rec.done = true;
                rec.failed = true;
                rec.source = None;
                rec.waiters.wake_by_ref();
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(Some(Ok(frame))) => {
                rec.waiters.wake_by_ref();
                let frame = match frame.into_data() {
                    Ok(data) => {
                        if !rec.overflowed && rec.recorded + data.len() <= rec.limit {
                            rec.recorded += data.len();
                            rec.chunks.push(data.clone());
                            this.cursor += 1;
                        } else if !rec.overflowed {
                            rec.overflowed = true;
                            // Nobody can replay a prefix: free it. The primary only
                            // pulls once it has yielded every recorded chunk.
                            rec.chunks = Vec::new();
                            this.cursor = 0;
                        }
                        Frame::data(data)
                    }
                    Err(frame) => match frame.into_trailers() {
                        Ok(t) => {
                            rec.done = true;
                            rec.source = None;
                            rec.trailers = Some(t.clone());
                            this.trailers_sent = true;
                            Frame::trailers(t)
                        }
                        Err(other) => other,
                    },
                };
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        ReplayBody::is_end_stream(self)
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}
