//! The HTTP side of a listener: server codec, filter chain, router, headers.

pub mod action;
pub mod body;
pub(crate) mod conn_timers;
mod delayed_close;
mod desync;
pub mod filter;
pub mod filters;
mod forward;
pub mod hash;
pub mod headers;
mod premature;
pub mod router;
pub mod server;
mod timed;

pub use body::BoxError;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// A response or request body the proxy sends: a streamed peer body or a
/// fixed local one. An enum, not a box, so forwarding allocates nothing.
#[derive(Debug)]
pub enum ProxyBody {
    Stream(Incoming),
    /// An upstream HTTP/1.1 body whose connection goes back to the pool at its end.
    Pooled(Incoming, Option<crate::upstream::pool::PoolReturn>),
    Full(Option<Bytes>),
    /// A body under a route's idle timeout or max stream duration.
    Timed(Box<timed::TimedBody>),
}

impl ProxyBody {
    pub fn empty() -> Self {
        ProxyBody::Full(None)
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Stream(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            ProxyBody::Timed(b) => Pin::new(&mut **b).poll_frame(cx),
            ProxyBody::Pooled(b, ret) => {
                let r = Pin::new(&mut *b).poll_frame(cx);
                match &r {
                    Poll::Ready(None) => ret.take().map(|r| r.give_back()).unwrap_or(()),
                    Poll::Ready(Some(Ok(_))) if b.is_end_stream() => {
                        ret.take().map(|r| r.give_back()).unwrap_or(())
                    }
                    // A broken body's connection is not reused.
                    Poll::Ready(Some(Err(_))) => drop(ret.take()),
                    _ => {}
                }
                r.map_err(Into::into)
            }
            ProxyBody::Full(b) => Poll::Ready(b.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Stream(b) | ProxyBody::Pooled(b, _) => b.is_end_stream(),
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Timed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Stream(b) | ProxyBody::Pooled(b, _) => b.size_hint(),
            ProxyBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ProxyBody::Timed(b) => b.size_hint(),
        }
    }
}

impl From<Bytes> for ProxyBody {
    fn from(b: Bytes) -> Self {
        if b.is_empty() {
            ProxyBody::empty()
        } else {
            ProxyBody::Full(Some(b))
        }
    }
}

/// A plain-text local reply (Envoy's `sendLocalReply`).
pub fn local_reply(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(if body.is_empty() {
        ProxyBody::empty()
    } else {
        ProxyBody::Full(Some(Bytes::from_static(body.as_bytes())))
    });
    *r.status_mut() = status;
    if !body.is_empty() {
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
    }
    r
}
