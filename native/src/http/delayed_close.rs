//! Envoy's delayed close for downstream connections: once the codec drops the
//! socket, half-close it and discard what the client still sends, for at most
//! `DELAYED_CLOSE_TIMEOUT` (Envoy's `delayed_close_timeout` default), before the
//! real close. Closing with unread input makes the kernel answer RST, which can
//! destroy the last thing we wrote (a 400, a GOAWAY) before the client reads it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::listener::DownstreamIo;

const DELAYED_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// A downstream stream (TCP, or TLS over it) that lingers as above when dropped
/// (on a runtime).
#[derive(Debug)]
pub struct DelayedClose<S: DownstreamIo>(Option<S>);

impl<S: DownstreamIo> DelayedClose<S> {
    pub fn new(stream: S) -> Self {
        DelayedClose(Some(stream))
    }

    fn io(&mut self) -> Pin<&mut S> {
        Pin::new(self.0.as_mut().expect("taken only on drop"))
    }
}

impl<S: DownstreamIo> Drop for DelayedClose<S> {
    fn drop(&mut self) {
        let (Some(stream), Ok(rt)) = (self.0.take(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        rt.spawn(linger(stream));
    }
}

async fn linger<S: DownstreamIo>(mut stream: S) {
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(DELAYED_CLOSE_TIMEOUT, async {
        // Half-close (TLS sends close_notify first), then drain until the peer closes.
        let _ = stream.shutdown().await;
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

impl<S: DownstreamIo> AsyncRead for DelayedClose<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_read(cx, buf)
    }
}

impl<S: DownstreamIo> AsyncWrite for DelayedClose<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().io().poll_write(cx, b)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().io().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_shutdown(cx)
    }
}
